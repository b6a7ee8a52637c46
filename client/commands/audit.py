"""``perseverance-client audit verify``: are the centre's audit log and ledger as written?"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from client.commands.language import LangOption
from common.errors import ExitCode
from common.i18n.catalogue import N_, sentence
from common.i18n.cli import error_line, shown
from common.records.chain import (
    RecordsUnverifiable,
    read_anchors,
    report,
    verify_centre,
)
from common.records.key import RecordsKeyError

HELP = (
    "Check the centre's audit log and privacy ledger: every line and row against the "
    "centre's records key, the ledger against the heads its own log recorded, and, with "
    "--anchors, both against the heads the ministry recorded from the centre's replies "
    "(a cut-off tail, deleted rows). Reads only.\n\n"
    "Exit codes: 0 intact; 4 altered (the first bad entry is named on stderr, then the "
    "others); 2 no such folder, no key for keyed records, or no anchors file."
)

audit_app = typer.Typer(no_args_is_help=True, help="The centre's records: check them.")


@audit_app.command("verify", help=HELP)
def verify(
    state: Annotated[Path, typer.Option("--state", "-s", help="The centre's state folder "
                                        "(the SuperNode's state-dir).", show_default=False)],
    anchors: Annotated[Path | None, typer.Option(
        "--anchors", help="The ministry's run folder, or its audit.jsonl, holding the heads "
        "it recorded from this centre's replies.")] = None,
    key: Annotated[Path | None, typer.Option(
        "--key", help="The centre's records key (node config records-key-path); default "
        "records.key in the state folder.")] = None,
    actor: Annotated[str | None, typer.Option(
        "--actor", help="The centre's name in the ministry's log; default the one in its "
        "own audit log.")] = None,
    lang: LangOption = None,
) -> None:
    out, err = Console(highlight=False), Console(stderr=True, highlight=False)
    if not state.is_dir():
        err.print(error_line(N_("there is no state folder %(path)s; give the centre's "
                                "state-dir.", path=state)), soft_wrap=True)
        raise typer.Exit(ExitCode.UNUSABLE)
    try:
        found = read_anchors(anchors) if anchors is not None else []
        check = verify_centre(state, key, found, actor)
    except (RecordsUnverifiable, RecordsKeyError) as exc:
        err.print(error_line(sentence(exc)), soft_wrap=True)
        raise typer.Exit(ExitCode.UNUSABLE) from None
    raise typer.Exit(report(check.problems, check.notes, out, err, shown))


def register(app: typer.Typer) -> None:
    app.add_typer(audit_app, name="audit")
