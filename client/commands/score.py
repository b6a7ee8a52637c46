"""``perseverance-client score``: support priorities and their factors, at the centre only."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from client.commands.language import LangOption, chosen
from common.errors import ExitCode
from common.i18n import catalogue as i18n
from common.i18n.catalogue import N_
from common.i18n.cli import error_line
from common.i18n.waits import TerminalWaits

SHOWN = 10  # rows left out listed on the terminal; rows-left-out.csv has them all

HELP = (
    "Score a centre's students with the global model: a support priority per student "
    "(high / moderate / low, from the thresholds of the site policy's [support] table), "
    "the factors that raise it and the protective ones (Integrated Gradients). Writes "
    "support-priorities.csv, support-priorities.xlsx (the spreadsheet for the school "
    "team) and support-report.html into --out, and rows-left-out.csv when rows of the "
    "extract have invalid values (their students get no priority); nothing is ever "
    "uploaded.\n\n"
    "Exit codes: 0 success; 2 unusable input (model file, data, mapping, policy) or "
    "wrong usage, after one sentence saying what is wrong. The report and the messages "
    "are in French unless --lang en or the locale says English."
)


def score(
    model: Annotated[
        Path,
        typer.Option("--model", help="The global model (model.pt of a run).", show_default=False),
    ],
    data: Annotated[
        Path, typer.Option("--data", "-d", help="The extract: CSV or Parquet.", show_default=False)
    ],
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            "-o",
            help="Folder for the CSV, the spreadsheet and the HTML report (created; kept at "
            "the centre).",
            show_default=False,
        ),
    ],
    mapping: Annotated[
        Path | None,
        typer.Option(
            "--mapping",
            "-m",
            help="Mapping TOML from the centre's columns to the harmonised "
            "record; omit for a file already in harmonised columns.",
        ),
    ] = None,
    policy: Annotated[
        Path | None,
        typer.Option(
            "--policy",
            "-p",
            help="Site policy TOML (with an optional [support] table: high, "
            "moderate); default: built-in defaults (0.5 and 0.25).",
        ),
    ] = None,
    lang: LangOption = None,
    explain: Annotated[
        bool,
        typer.Option("--explain/--no-explain", help="Compute the factors (slower than scoring)."),
    ] = True,
    top: Annotated[
        int, typer.Option("--top", min=1, max=10, help="Factors listed per student and kind.")
    ] = 3,
    xlsx: Annotated[
        bool,
        typer.Option("--xlsx/--no-xlsx",
                     help="Also write the list as a spreadsheet (support-priorities.xlsx)."),
    ] = True,
    machine_csv: Annotated[
        bool,
        typer.Option(
            "--machine-csv",
            help="Write the CSV for programs (commas, decimal points, no byte-order mark) "
            "instead of for the spreadsheets of the chosen language (French: semicolons, "
            "decimal commas).",
        ),
    ] = False,
) -> None:
    """Score a centre's students and write the local support report (see HELP)."""
    language = chosen(lang)
    _ = i18n.gettext(language)
    out_console = Console(highlight=False, markup=False)
    err = Console(stderr=True, highlight=False, markup=False)
    # Loading torch and Captum takes seconds (the first 4 s, measured): said at once. On a
    # large extract reading, the factors and the spreadsheet take seconds too. Each wait
    # is said on stderr: a spinner on a terminal, elsewhere one line (those that are
    # often short, once they have lasted a second).
    waits = TerminalWaits(err, after=1.0)
    with TerminalWaits(err)(N_("Loading the scoring tools (PyTorch, Captum)")):
        import torch

        from client.commands.left_out import (
            LEFT_OUT_NAME,
            left_out_sentence,
            print_problems,
            print_wrapped,
            write_left_out,
        )
        from client.ingest import ensure_usable, ingest_file
        from client.ingest.centre_data import DataError
        from client.scoring.explain import attribute, top_factors
        from client.scoring.scores import load_model, load_scoring_policy, score_frame
        from client.scoring.support_report import (
            Explanations,
            LeftOut,
            support_table,
            write_support_report,
        )
        from common.csv_output import csv_style

    try:
        site_policy, thresholds = load_scoring_policy(policy)
        risk_model = load_model(model)
        with waits(N_("Reading and checking the extract %(data)s", data=str(data))):
            ingested = ingest_file(data, mapping, site_policy)
        ensure_usable(ingested.report)
    except DataError as exc:
        err.print(error_line(exc.args[0] if exc.args else str(exc), language), soft_wrap=True)
        report = getattr(exc, "report", None)
        if report is not None:  # past the policy's share: the rows to correct
            print_problems(err, report, SHOWN, language)
        raise typer.Exit(ExitCode.UNUSABLE) from None
    frame, report = ingested.frame, ingested.report

    # The model is tiny: one intra-op thread is as fast on an idle machine and many
    # times faster on a busy one (measured: IG 0.06 s instead of 1-2.6 s per 1,000
    # students with two threads on two shared cores).
    torch.set_num_threads(1)
    started = time.perf_counter()
    scored = score_frame(risk_model, frame, site_policy, thresholds)
    scoring_seconds = time.perf_counter() - started
    explanations, explain_seconds = None, 0.0
    if explain:
        started = time.perf_counter()
        with waits(N_("Computing each student's factors (Integrated Gradients)")):
            raising, protective = top_factors(attribute(risk_model, scored.x).per_predictor,
                                              k=top)
        explanations = Explanations(raising, protective)
        explain_seconds = time.perf_counter() - started

    fingerprint = hashlib.sha256(model.read_bytes()).hexdigest()[:12]
    table = support_table(scored, frame, explanations, language)
    try:
        style = csv_style(language, machine=machine_csv)
        with waits(N_("Writing the list, the spreadsheet and the report into %(out)s",
                      out=str(out))):
            written = write_support_report(
                out, table, scored, language, fingerprint, style, xlsx=xlsx,
                left_out=LeftOut(report.rows_invalid, report.rows_read, LEFT_OUT_NAME))
        left_out = out / LEFT_OUT_NAME
        if report.problems:
            written.append(write_left_out(left_out, report, language, style))
        else:
            left_out.unlink(missing_ok=True)  # an earlier run's list is not this one's
    except OSError as exc:
        err.print(error_line(
            _("Cannot write the report into %(out)s (%(reason)s); give a folder this "
              "account may write to.") % {"out": out, "reason": exc.strerror}, language),
            soft_wrap=True)
        raise typer.Exit(ExitCode.UNUSABLE) from None

    counts = scored.counts()
    rate = len(scored) / scoring_seconds if scoring_seconds > 0 else float("inf")
    print_wrapped(
        out_console,
        _("Scored %(students)s students in %(seconds)s s (%(rate)s per second): high "
          "%(high)s, moderate %(moderate)s, low %(low)s (thresholds %(t_high)s and "
          "%(t_moderate)s).") % {
            "students": len(scored), "seconds": i18n.number(scoring_seconds, 3, language),
            "rate": i18n.number(rate, 0, language) if rate != float("inf") else "∞",
            "high": counts["high"], "moderate": counts["moderate"], "low": counts["low"],
            "t_high": i18n.number(thresholds.high, 2, language),
            "t_moderate": i18n.number(thresholds.moderate, 2, language)},
        indent="",
    )
    if explain:
        out_console.print(_("Factors (Integrated Gradients) in %(seconds)s s.") % {
            "seconds": i18n.number(explain_seconds, 1, language)})
    if report.problems:
        print_wrapped(out_console, left_out_sentence(report, language), indent="")
        print_problems(out_console, report, SHOWN, language, full_list=out / LEFT_OUT_NAME)
    out_console.print(_("Kept at the centre, never uploaded:"))
    for path in written:
        out_console.print(f"  {path}", soft_wrap=True)
    raise typer.Exit(ExitCode.SUCCESS)


def register(app: typer.Typer) -> None:
    """Add the command to the ``perseverance-client`` app."""
    app.command("score", help=HELP)(score)
