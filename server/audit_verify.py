"""``perseverance-server audit verify RUN_DIR``: is a run folder's record as written?

It checks the ministry's audit log against the ministry's records key, and, in a
simulation run folder, every centre's records (``state/centre-*``, each with its own
key beside it) against their keys and against the heads the ministry recorded from the
centres' replies (``centre_records`` events, filed under the identity of the node that
sent each reply). A centre whose records the ministry anchored but whose folder is gone
is reported too, and so is a ministry log rewritten since the centres recorded its head
from their instructions (``common.records.chain``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from common.errors import ExitCode
from common.i18n.catalogue import N_, sentence
from common.i18n.cli import error_line, shown
from common.records.chain import (
    RecordsUnverifiable,
    read_anchors,
    report,
    verify_centre,
)
from common.records.key import RecordsKeyError, read_key
from common.records.trail import Tampering, check_trail, key_problem
from server.federation.audit_log import AUDIT_FILE, KEY_ENV, ministry_key_path

STATE = "state"
# The help names the key's variable (KEY_ENV) in full: a help text is a catalogue message.
HELP = (
    "Check a run folder's records: the ministry's audit.jsonl against the ministry's "
    "records key ($PERSEVERANCE_MINISTRY_KEY), and in a simulation run folder every "
    "state/centre-* audit log and privacy ledger against its key and the heads the ministry "
    "recorded. "
    "Reads only.\n\nExit codes: 0 intact; 4 altered (the first bad entry is named on "
    "stderr, then the others); 2 no such run folder, or a key missing or not the one that "
    "signed the records (each line names its key by a key id)."
)

audit_app = typer.Typer(no_args_is_help=True, help="A run folder's records: check them.")


def verify_run(run_dir: Path) -> tuple[list[Tampering], list[str]]:
    """Every problem (ministry first, then the centres by folder name) and the notes."""
    log = run_dir / AUDIT_FILE
    key_file = ministry_key_path()
    key = read_key(key_file)
    ministry = check_trail(log, key)
    if (problem := key_problem(ministry, key, key_file, f"${KEY_ENV}")) is not None:
        raise RecordsUnverifiable(problem)
    anchors = read_anchors(log) if log.is_file() else []
    problems, notes = list(ministry.problems), [N_(
        "ministry: audit log %(lines)s lines (%(unkeyed)s unkeyed), %(anchors)s centre "
        "anchors.", lines=len(ministry.links), unkeyed=ministry.unkeyed, anchors=len(anchors))]
    seen: set[str] = set()
    for folder in sorted((run_dir / STATE).glob("centre-*")):
        if folder.is_dir():
            check = verify_centre(folder, anchors=anchors)
            seen.add(check.actor)
            problems += check.problems
            notes += check.notes
    if (run_dir / STATE).is_dir():
        for actor in sorted({str(a.event.get("actor")) for a in anchors} - seen):
            first = next(a for a in anchors if a.event.get("actor") == actor)
            problems.append(Tampering(run_dir / STATE, actor, N_(
                "no centre folder holds its records, but the ministry recorded them "
                "(%(where)s): they were deleted.", where=first.where())))
    return problems, notes


@audit_app.command("verify", help=HELP)
def verify(
    run_dir: Annotated[Path, typer.Argument(help="The run folder.", show_default=False)],
) -> None:
    out, err = Console(highlight=False), Console(stderr=True, highlight=False)
    if not run_dir.is_dir():
        err.print(error_line(N_("there is no run folder %(path)s.", path=run_dir)),
                  soft_wrap=True)
        raise typer.Exit(ExitCode.UNUSABLE)
    try:
        problems, notes = verify_run(run_dir)
    except (RecordsUnverifiable, RecordsKeyError) as exc:
        err.print(error_line(sentence(exc)), soft_wrap=True)
        raise typer.Exit(ExitCode.UNUSABLE) from None
    raise typer.Exit(report(problems, notes, out, err, shown))
