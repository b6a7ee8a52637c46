"""Checking that records prove themselves: a centre's audit log and privacy ledger
against its records key, against the ledger heads its own log recorded after each
booking, and against the heads the ministry recorded from its replies (the
``centre_records`` events of the ministry's audit log).

Flower-free and read-only, below both sides: the centre's ``perseverance-client audit
verify`` and the ministry's ``perseverance-server audit verify`` (which checks the
centres' folders of a simulation run) call the same functions. The ledger's file and
row format (``client.privacy.ledger`` writes it) are read here. What the checks can and cannot
see: ``docs/PRIVACY.md``, "Records that prove themselves".
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common.errors import ExitCode, PerseveranceError
from common.i18n.catalogue import N_, word
from common.records.key import GENESIS, KEY_FILE, chain_mac, read_key, same
from common.records.trail import Tampering, check_trail, key_problem

AUDIT_FILE = "audit.jsonl"  # a centre's audit log, beside its ledger (client.privacy.audit_log)
LEDGER_FILE = "privacy-ledger.sqlite"  # a centre's privacy ledger (client.privacy.ledger)
TRIGGERS = ("releases_no_update", "releases_no_delete")
LEDGER_FIELDS = ("id, booked_at, run_id, server_round, kind, noise_multiplier, sample_rate, steps, "
           "delta, epsilon_after")
ANCHOR_EVENT = "centre_records"


def row_content(row: tuple[object, ...]) -> str:
    """The text a row's MAC covers: its fields (id first) in a fixed order and form."""
    return json.dumps(list(row), allow_nan=False)


def row_link(row: tuple[object, ...], mac: str | None) -> str:
    """What the next row's MAC chains to: this row's MAC, or the digest of an unkeyed row."""
    return mac if mac else hashlib.sha256(row_content(row).encode()).hexdigest()


@dataclass
class LedgerCheck:
    """What :func:`check_ledger` found: every row's link in order, unkeyed rows, problems."""

    path: Path
    links: list[str] = field(default_factory=list)
    unkeyed: int = 0
    problems: list[Tampering] = field(default_factory=list)


def _read_only(path: Path) -> sqlite3.Connection:
    """A connection that writes nothing beside ``path``: SQLite opens a WAL database
    read-only by creating its ``-wal`` and ``-shm`` files, so a database with no
    writer (no ``-wal`` file) is opened immutable; one being written is read through
    the writer's own files."""
    immutable = "" if path.with_name(path.name + "-wal").exists() else "&immutable=1"
    return sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro{immutable}", uri=True,
                           timeout=30)


def check_ledger(path: Path, key: bytes | None) -> LedgerCheck:
    """Check a ledger row by row, without writing to it. Without ``key`` the MACs are not
    checked (only ids and triggers)."""
    check = LedgerCheck(path)
    if not path.is_file():
        return check
    try:
        db = _read_only(path)
        try:
            triggers = {row[0] for row in db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'trigger'")}
            columns = [row[1] for row in db.execute("PRAGMA table_info(releases)")]
            mac = "mac" if "mac" in columns else "NULL"
            rows = db.execute(f"SELECT {LEDGER_FIELDS}, {mac} FROM releases ORDER BY id").fetchall()
        finally:
            db.close()
    except sqlite3.DatabaseError as exc:
        check.problems.append(Tampering(path, word(N_("file")), N_(
            "it cannot be read as a ledger (%(problem)s).", problem=exc)))
        return check
    if missing := [name for name in TRIGGERS if name not in triggers]:
        check.problems.append(Tampering(path, word(N_("triggers")), N_(
            "%(names)s were dropped: rows could be deleted or rewritten.",
            names=", ".join(missing))))
    keyed = False
    for position, (*fields, row_mac) in enumerate(rows, start=1):
        row, where = tuple(fields), N_("row %(number)s", number=position)
        previous = check.links[-1] if check.links else GENESIS
        check.links.append(row_link(row, row_mac))
        if row[0] != position:
            check.problems.append(Tampering(path, where, N_(
                "its id is %(id)s: rows before it were deleted.", id=row[0])))
        elif row_mac is None:
            check.unkeyed += 1
            if keyed:
                check.problems.append(Tampering(path, where, N_(
                    "it carries no MAC after keyed rows: it was written without the key.")))
        elif key is not None and not same(row_mac, chain_mac(key, previous, row_content(row))):
            check.problems.append(Tampering(path, where, N_(
                "its MAC does not match its fields: the row was edited, or the one before it "
                "deleted.")))
        keyed = keyed or row_mac is not None
    return check


def ledger_head(path: Path) -> tuple[str, int, float, float]:
    """(link of the last row, number of rows, its delta, its lifetime epsilon after), read
    from the last row only; ``("", 0, 0.0, 0.0)`` without a ledger."""
    if not path.is_file():
        return "", 0, 0.0, 0.0
    db = _read_only(path)
    try:
        columns = [row[1] for row in db.execute("PRAGMA table_info(releases)")]
        if not columns:
            return "", 0, 0.0, 0.0
        mac = "mac" if "mac" in columns else "NULL"
        last = db.execute(f"SELECT {LEDGER_FIELDS}, {mac} FROM releases "
                          "ORDER BY id DESC LIMIT 1").fetchone()
        count = db.execute("SELECT count(*) FROM releases").fetchone()[0]
    finally:
        db.close()
    if last is None:
        return "", 0, 0.0, 0.0
    return row_link(tuple(last[:-1]), last[-1]), int(count), float(last[8]), float(last[9])


class RecordsUnverifiable(PerseveranceError):
    """The records cannot be checked (no key for keyed records, no anchors file). One
    sentence; exit code 2."""

    exit_code = ExitCode.UNUSABLE


@dataclass(frozen=True)
class Anchor:
    """One ``centre_records`` event of the ministry's audit log, and its line there."""

    source: Path
    line: int
    event: dict[str, Any]

    def where(self) -> str:
        return N_("%(source)s line %(line)s (round %(round)s, %(phase)s)", source=self.source,
                  line=self.line, round=self.event.get("round"),
                  phase=word(str(self.event.get("phase"))))


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
        raise RecordsUnverifiable(N_("There is no ministry audit log at %(path)s: give a run "
                                     "folder or its audit.jsonl.", path=path))
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
    rows = kind == "row"
    entry = N_("row %(number)s", number=count) if rows else \
        N_("line %(number)s", number=count)
    if len(links) < count:
        # The first missing entry is named too: one past what is left (issue 31).
        reason = N_("missing: there are %(there)s rows, the first missing is row %(first)s, "
                    "but %(who)s recorded row %(number)s with MAC %(mac)s: rows were "
                    "deleted.", there=len(links), first=len(links) + 1, who=recorded_by,
                    number=count, mac=head[:12]) if rows else \
            N_("missing: there are %(there)s lines, the first missing is line %(first)s, "
               "but %(who)s recorded line %(number)s with MAC %(mac)s: lines were deleted.",
               there=len(links), first=len(links) + 1, who=recorded_by, number=count,
               mac=head[:12])
    elif links[count - 1] != head:
        reason = N_("its MAC is %(mac)s, but %(who)s recorded %(head)s: the records were "
                    "rewritten.", mac=links[count - 1][:12], who=recorded_by, head=head[:12])
    else:
        return
    if all((p.path, p.entry) != (path, entry) for p in check.problems):
        check.problems.append(Tampering(path, entry, reason))


def _ministry_heads(check: CentreCheck, audit: Path, ministry_log: Path) -> None:
    """The ministry's log must still hold, at the line each task's instruction named,
    the MAC the centre recorded in its ``task_received`` line (``ministry_head``): a
    log the ministry rewrote, even re-keyed whole with its own key, no longer does.
    Only the tasks of the runs that log started are compared."""
    ministry = dict(_events(ministry_log))
    runs = {e.get("run_name") for e in ministry.values()
            if e.get("event") in ("run_started", "run_resumed")}
    macs = [str(ministry.get(n, {}).get("mac", "")) for n in range(1, max(ministry, default=0) + 1)]
    for number, entry in _events(audit):
        if entry.get("event") == "task_received" and entry.get("run_name") in runs and \
                isinstance(entry.get("ministry_lines"), int):
            _against(check, ministry_log, macs, "line", entry["ministry_lines"],
                     str(entry.get("ministry_head", "")),
                     N_("%(file)s line %(number)s", file=audit, number=number))


def verify_centre(
    state_dir: Path, key_path: Path | None = None, anchors: list[Anchor] | None = None,
    actor: str | None = None, ministry_log: Path | None = None,
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
    ministry_log : Path | None
        The ministry's audit log to check against the heads the centre recorded from
        its instructions; default the one ``anchors`` were read from.

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
    if (problem := key_problem(trail, key, key_file, "--key")) is not None:
        raise RecordsUnverifiable(problem)
    if key is None and len(ledger.links) > ledger.unkeyed:
        raise RecordsUnverifiable(N_("The records of %(folder)s are keyed but there is no "
                                     "key at %(key)s: give the centre's records key (--key).",
                                     folder=state_dir, key=key_file))
    check = CentreCheck(state_dir, actor or trail.actor or state_dir.name,
                        [*trail.problems, *ledger.problems])
    for number, entry in _events(audit):
        if entry.get("event") == "ledger_booked":
            _against(check, ledger_path, ledger.links, "row", int(entry.get("ledger_rows", 0)),
                     str(entry.get("ledger_head", "")),
                     N_("%(file)s line %(number)s", file=AUDIT_FILE, number=number))
    mine = [a for a in anchors or [] if a.event.get("actor") == check.actor]
    for anchor in mine:
        _against(check, audit, trail.links, "line", int(anchor.event.get("audit_lines", 0)),
                 str(anchor.event.get("audit_head", "")),
                 N_("the ministry (%(where)s)", where=anchor.where()))
        _against(check, ledger_path, ledger.links, "row",
                 int(anchor.event.get("ledger_rows", 0)),
                 str(anchor.event.get("ledger_head", "")),
                 N_("the ministry (%(where)s)", where=anchor.where()))
    ministry_log = ministry_log or (anchors[0].source if anchors else None)
    if ministry_log is not None and ministry_log.is_file():
        _ministry_heads(check, audit, ministry_log)
    check.notes.append(N_("%(actor)s: audit log %(lines)s lines, ledger %(rows)s rows, "
                          "%(anchors)s ministry anchors checked.", actor=check.actor,
                          lines=len(trail.links), rows=len(ledger.links), anchors=len(mine)))
    if trail.unkeyed or ledger.unkeyed:
        check.notes.append(N_("%(actor)s: %(lines)s lines and %(rows)s rows are unkeyed, "
                              "booked before keying (their chain is checked, not who wrote "
                              "them).", actor=check.actor, lines=trail.unkeyed,
                              rows=ledger.unkeyed))
    return check


# Operator-facing sentences of the audit commands (one place, for the translation catalogue).
INTACT = N_("Records intact: every line and row carries its MAC, and every recorded head "
            "is there.")


def report(problems: list[Tampering], notes: list[str], out: Any, err: Any,
           shown: Callable[[str], str] = str) -> int:
    """Print a check (``out``/``err``: rich consoles) and return the exit code: the first
    bad entry in one sentence on stderr, every other one listed under it. ``shown``
    puts a catalogue sentence in the command's language (``common.i18n.cli``)."""
    for note in notes:
        out.print(shown(note), soft_wrap=True, markup=False)
    if not problems:
        out.print(shown(INTACT), soft_wrap=True)
        return ExitCode.SUCCESS
    first, *rest = problems
    err.print(shown(N_("error: the records were altered: %(first)s", first=first.sentence())),
              soft_wrap=True, markup=False)
    if rest:
        err.print(shown(N_("Also not as written (%(count)s):", count=len(rest))),
                  soft_wrap=True)
        for problem in rest:
            err.print(f"- {shown(problem.sentence())}", soft_wrap=True, markup=False)
    return ExitCode.TAMPERED
