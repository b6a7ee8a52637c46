"""A centre's records that prove themselves: their heads for the ministry, and their check.

Each reply of a centre carries :func:`records_head` (the MAC and length of its audit log
and of its privacy ledger, and its lifetime epsilon); the ministry writes it to its own
audit log as a ``centre_records`` event (with ``node``, ``round`` and ``phase``). Those
anchors sit outside the centre: :func:`verify_centre` checks the centre's audit log and
ledger against its key, against the ledger heads its own log recorded after each
booking, and against the anchors, and names the first entry that is not what was
written. What it can and cannot see: ``docs/PRIVACY.md``, "Records that prove themselves".
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from client.audit_log import AUDIT_FILE
from client.ledger import LEDGER_FILE, PrivacyLedger, check_ledger, ledger_head
from common.audit_trail import Tampering, check_trail, trail_head
from common.records_key import KEY_FILE, read_key

ANCHOR_EVENT = "centre_records"


class RecordsUnverifiable(Exception):
    """The records cannot be checked (no key for keyed records, no anchors file). One
    sentence; exit code 2."""

    exit_code = 2


def records_head(state_dir: Path, delta: float) -> dict[str, str | int | float]:
    """What a reply carries about the centre's records, read from their tails only.

    ``audit_head`` and ``ledger_head`` are the MACs of the last line and row (for a line
    or row written before keying, its SHA-256), ``""`` if there is none.
    """
    trail = trail_head(state_dir / AUDIT_FILE)
    link, rows, last_delta, last_epsilon = ledger_head(state_dir / LEDGER_FILE)
    if rows == 0:
        epsilon = 0.0
    elif last_delta == delta:  # the last booking composed the whole history at this delta
        epsilon = last_epsilon
    else:
        epsilon = PrivacyLedger(state_dir).epsilon_spent(delta)
    return {"actor": trail.actor or state_dir.name, "audit_head": trail.link,
            "audit_lines": trail.lines, "ledger_head": link, "ledger_rows": rows,
            "epsilon_lifetime": float(epsilon)}


@dataclass(frozen=True)
class Anchor:
    """One ``centre_records`` event of the ministry's audit log, and its line there."""

    source: Path
    line: int
    event: dict[str, Any]

    def where(self) -> str:
        return (f"{self.source} line {self.line} (round {self.event.get('round')}, "
                f"{self.event.get('phase')})")


def _events(path: Path) -> Iterable[tuple[int, dict[str, Any]]]:
    """The JSON objects of a trail with their line numbers (a broken line is skipped:
    the trail's own check reports it)."""
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    for number, line in enumerate(text.splitlines(), start=1):
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict):
            yield number, entry


def read_anchors(source: Path) -> list[Anchor]:
    """The anchors in a ministry audit log, or in the one of a run folder."""
    path = source / AUDIT_FILE if source.is_dir() else source
    if not path.is_file():
        raise RecordsUnverifiable(f"There is no ministry audit log at {path}: give a run "
                                  "folder or its audit.jsonl.")
    return [Anchor(path, number, entry) for number, entry in _events(path)
            if entry.get("event") == ANCHOR_EVENT]


@dataclass
class CentreCheck:
    """What :func:`verify_centre` found for one centre."""

    state_dir: Path
    actor: str
    problems: list[Tampering] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _against(
    check: CentreCheck, path: Path, links: list[str], kind: str, count: int, head: str,
    recorded_by: str,
) -> None:
    """Entry ``count`` of a chain must still be there with MAC ``head``."""
    if count <= 0:
        return
    entry = f"{kind} {count}"
    if len(links) < count:
        reason = (f"missing: there are {len(links)} {kind}s, but {recorded_by} recorded "
                  f"{kind} {count} with MAC {head[:12]}: {kind}s were deleted.")
    elif links[count - 1] != head:
        reason = (f"its MAC is {links[count - 1][:12]}, but {recorded_by} recorded "
                  f"{head[:12]}: the records were rewritten.")
    else:
        return
    if all((p.path, p.entry) != (path, entry) for p in check.problems):
        check.problems.append(Tampering(path, entry, reason))


def verify_centre(
    state_dir: Path, key_path: Path | None = None, anchors: list[Anchor] | None = None,
    actor: str | None = None,
) -> CentreCheck:
    """Check a centre's audit log and ledger.

    Parameters
    ----------
    state_dir : Path
        The centre's state folder.
    key_path : Path | None
        Its records key; default ``records.key`` in ``state_dir``.
    anchors : list[Anchor] | None
        The ministry's ``centre_records`` events; those of this centre's actor are used.
    actor : str | None
        The centre's name in the anchors; default the actor of its audit log.

    Raises
    ------
    RecordsUnverifiable
        The records are keyed but the key is not there.
    """
    audit, ledger_path = state_dir / AUDIT_FILE, state_dir / LEDGER_FILE
    key_file = key_path or state_dir / KEY_FILE
    key = read_key(key_file)
    trail = check_trail(audit, key)
    ledger = check_ledger(ledger_path, key)
    if key is None and (len(trail.links) > trail.unkeyed or len(ledger.links) > ledger.unkeyed):
        raise RecordsUnverifiable(f"The records of {state_dir} are keyed but there is no key "
                                  f"at {key_file}: give the centre's records key (--key).")
    check = CentreCheck(state_dir, actor or trail.actor or state_dir.name,
                        [*trail.problems, *ledger.problems])
    for number, entry in _events(audit):
        if entry.get("event") == "ledger_booked":
            _against(check, ledger_path, ledger.links, "row", int(entry.get("ledger_rows", 0)),
                     str(entry.get("ledger_head", "")), f"{AUDIT_FILE} line {number}")
    mine = [a for a in anchors or [] if a.event.get("actor") == check.actor]
    for anchor in mine:
        _against(check, audit, trail.links, "line", int(anchor.event.get("audit_lines", 0)),
                 str(anchor.event.get("audit_head", "")), f"the ministry ({anchor.where()})")
        _against(check, ledger_path, ledger.links, "row",
                 int(anchor.event.get("ledger_rows", 0)),
                 str(anchor.event.get("ledger_head", "")), f"the ministry ({anchor.where()})")
    check.notes.append(f"{check.actor}: audit log {len(trail.links)} lines, ledger "
                       f"{len(ledger.links)} rows, {len(mine)} ministry anchors checked.")
    if trail.unkeyed or ledger.unkeyed:
        check.notes.append(f"{check.actor}: {trail.unkeyed} lines and {ledger.unkeyed} rows "
                           "are unkeyed, booked before keying (their chain is checked, "
                           "not who wrote them).")
    return check


EXIT_INTACT, EXIT_UNVERIFIABLE, EXIT_TAMPERED = 0, 2, 4
# Operator-facing sentences of the audit commands (one place, for the translation catalogue).
INTACT = "Records intact: every line and row carries its MAC, and every recorded head is there."
ALTERED = "error: the records were altered: {first}"
ALSO = "Also not as written ({count}):"


def report(problems: list[Tampering], notes: list[str], out: Any, err: Any) -> int:
    """Print a check (``out``/``err``: rich consoles) and return the exit code: the first
    bad entry in one sentence on stderr, every other one listed under it."""
    for note in notes:
        out.print(note, soft_wrap=True)
    if not problems:
        out.print(INTACT, soft_wrap=True)
        return EXIT_INTACT
    first, *rest = problems
    err.print(ALTERED.format(first=first.sentence()), soft_wrap=True, markup=False)
    if rest:
        err.print(ALSO.format(count=len(rest)), soft_wrap=True)
        for problem in rest:
            err.print(f"- {problem.sentence()}", soft_wrap=True, markup=False)
    return EXIT_TAMPERED
