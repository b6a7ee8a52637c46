"""``perseverance-client validate``: check an extract exactly as the ClientApp will read it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from client.commands.language import LangOption, chosen
from common.errors import ExitCode

HELP = (
    "Map and validate a centre's extract and print its data-quality report, exactly as "
    "the ClientApp will read it. Nothing is written anywhere.\n\n"
    "Exit codes: 0 the extract is usable; 2 it is not, or the command is misused: one "
    "sentence first says what is wrong and what to do, then the details follow. The "
    "report is in French unless --lang en or the locale says English."
)


def validate(
    data: Annotated[
        Path,
        typer.Option(
            "--data",
            "-d",
            help="The extract: CSV (any common delimiter and encoding) or Parquet.",
            show_default=False,
        ),
    ],
    mapping: Annotated[
        Path | None,
        typer.Option(
            "--mapping",
            "-m",
            help="Mapping TOML from the centre's columns to the "
            "harmonised record; omit for a file already in harmonised columns.",
        ),
    ] = None,
    policy: Annotated[
        Path | None,
        typer.Option("--policy", "-p", help="Site policy TOML; default: built-in defaults."),
    ] = None,
    max_problems: Annotated[
        int, typer.Option("--max-problems", min=0, help="Invalid rows listed in full.")
    ] = 20,
    lang: LangOption = None,
) -> None:
    """Map and validate a centre's extract and print its data-quality report (see HELP)."""
    # Here, not at the top: --help must not wait for pandas and torch (issue 28).
    from client.commands.quality_view import render_error, render_report
    from client.ingest import ensure_usable, ingest_file, load_policy
    from client.ingest.centre_data import DataError, SitePolicy

    language = chosen(lang)
    out, err = (
        Console(highlight=False, markup=False),
        Console(stderr=True, highlight=False, markup=False),
    )
    try:
        site_policy = load_policy(policy) if policy else SitePolicy()
        result = ingest_file(data, mapping, site_policy)
        ensure_usable(result.report)
    except DataError as exc:
        render_error(err, exc, max_problems, language)
        raise typer.Exit(ExitCode.UNUSABLE) from None
    render_report(out, result.report, max_problems, lang=language)
    raise typer.Exit(ExitCode.SUCCESS)


def register(app: typer.Typer) -> None:
    """Add the command to the ``perseverance-client`` app."""
    app.command("validate", help=HELP)(validate)
