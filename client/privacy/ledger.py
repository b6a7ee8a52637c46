"""The centre's privacy ledger: every release it ever made, in an append-only SQLite file.

A release is booked BEFORE it leaves the centre (a crash after sending can only
over-count), inside one SQLite transaction with full fsync, and rows can never be
updated or deleted (triggers refuse it). The epsilon spent is the composition of every
booked release with Opacus's RDP accountant, at the centre's delta, per student. This
lifetime figure composes training and evaluation releases as if they touched the same
students, which over-counts (held-out students never enter training) but stays safe if
pseudonyms change between years.

Every row carries ``mac``: HMAC-SHA256, with the centre's records key
(``common.records.key``), of the row's fields and of the MAC of the row before, so that
a row edited or deleted (triggers dropped first) breaks the chain at that row. A deleted
tail leaves the chain intact: after each booking the ledger writes its head (rows, MAC)
to the centre's audit log (``ledger_booked``), and the ministry records the heads it
receives, so that :func:`client.privacy.records.verify_centre` finds missing rows. Rows booked
before keying (``mac`` NULL) are reported as unkeyed; they may only precede keyed rows.

Per student (``client.privacy.cohorts``): each release is made over a cohort of records, booked
before it (the ``cohorts`` table), and the cap holds per student: a release is refused if
it would take any member of its cohort past the cap. A release no cohort covers (from
before per-student accounting) counts against every student until :meth:`migrate`.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from client.privacy.cohorts import (
    COHORT_SCHEMA,
    Booked,
    Cohort,
    CohortTampered,
    covering,
    insert_cohort,
    largest_student_epsilon,
    read_cohorts,
    uncovered,
)
from common.errors import ExitCode, PerseveranceError
from common.i18n.catalogue import N_
from common.privacy.accounting import filter_epsilon
from common.records.chain import (
    AUDIT_FILE,
    LEDGER_FIELDS,
    LEDGER_FILE,
    row_content,
    row_link,
)
from common.records.key import GENESIS, KEY_FILE, chain_mac, load_or_create_key, read_key
from common.records.trail import AuditTrail, trail_head

_SCHEMA = """
CREATE TABLE IF NOT EXISTS releases (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    booked_at TEXT NOT NULL,
    run_id TEXT NOT NULL,
    server_round INTEGER NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('train', 'evaluate')),
    noise_multiplier REAL NOT NULL CHECK (noise_multiplier > 0),
    sample_rate REAL NOT NULL CHECK (sample_rate > 0 AND sample_rate <= 1),
    steps INTEGER NOT NULL CHECK (steps > 0),
    delta REAL NOT NULL,
    epsilon_after REAL NOT NULL,
    mac TEXT
);
CREATE TRIGGER IF NOT EXISTS releases_no_update BEFORE UPDATE ON releases
BEGIN SELECT RAISE(ABORT, 'the privacy ledger is append-only'); END;
CREATE TRIGGER IF NOT EXISTS releases_no_delete BEFORE DELETE ON releases
BEGIN SELECT RAISE(ABORT, 'the privacy ledger is append-only'); END;
"""


_SCHEMA_OBJECTS = ("releases", "releases_no_update", "releases_no_delete", "cohorts",
                   "cohorts_no_update", "cohorts_no_delete")
#: This process's connection to each ledger, with the file it was opened on (by path).
_CONNECTIONS: dict[str, tuple[tuple[int, int, int], sqlite3.Connection]] = {}
_LOCK = threading.RLock()  # one connection, used by one thread at a time
#: Each ledger's cohorts this process read and checked, with their MACs (by path).
_COHORTS: dict[str, list[tuple[Cohort, str]]] = {}


class BudgetExceeded(PerseveranceError):
    """The release would take a student (or the centre, for a release no cohort covers)
    past its cap. One sentence."""


class LedgerError(PerseveranceError):
    """The ledger file cannot be used (corrupt, unreadable). One sentence."""

    exit_code = ExitCode.UNUSABLE


@dataclass(frozen=True)
class Release:
    """One booked release: a Gaussian mechanism run ``steps`` times at ``sample_rate``
    with noise multiplier ``noise_multiplier`` (std / sensitivity)."""

    booked_at: str
    run_id: str
    server_round: int
    kind: str
    noise_multiplier: float
    sample_rate: float
    steps: int
    delta: float
    epsilon_after: float


class PrivacyLedger:
    """Append-only, keyed record of a centre's releases, stored in ``state_dir``.

    Parameters
    ----------
    state_dir : Path
        The centre's state folder (ledger and audit log).
    key_path : Path | None
        The centre's records key (node config ``records-key-path``), created on first
        booking; default ``records.key`` in ``state_dir``.
    actor : str | None
        The centre's name in its audit log; default the actor of its last line.
    """

    def __init__(self, state_dir: Path, key_path: Path | None = None,
                 actor: str | None = None) -> None:
        state_dir.mkdir(parents=True, exist_ok=True)
        self.path = state_dir / LEDGER_FILE
        self.key_path = key_path or state_dir / KEY_FILE
        self.actor = actor
        try:
            with self._connect() as db:
                # The schema, and triggers dropped by hand put back (CREATE IF NOT EXISTS).
                if db.execute(f"SELECT count(*) FROM sqlite_master WHERE name IN "
                              f"{_SCHEMA_OBJECTS}").fetchone()[0] < len(_SCHEMA_OBJECTS):
                    # In one transaction (issue 32): the schema whole or not at all, and
                    # one fsync of the journal instead of one per statement (eight).
                    try:
                        db.executescript(f"BEGIN IMMEDIATE;{_SCHEMA}{COHORT_SCHEMA}COMMIT;")
                    except BaseException:
                        if db.in_transaction:
                            db.execute("ROLLBACK")
                        raise
                columns = [row[1] for row in db.execute("PRAGMA table_info(releases)")]
                if "mac" not in columns:  # a ledger from before keying: its rows stay unkeyed
                    db.execute("ALTER TABLE releases ADD COLUMN mac TEXT")
        except sqlite3.DatabaseError as exc:
            _CONNECTIONS.pop(str(self.path), None)
            raise LedgerError(N_("The privacy ledger %(path)s cannot be used: %(problem)s.",
                                 path=self.path, problem=exc)) from exc

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """This process's connection to the ledger, opened once (WAL journal, full fsync
        at every commit): opening and closing per booking cost more than the booking.
        Reopened when the file at the path is another one (replaced, restored) or the
        process forked."""
        name = str(self.path)
        stat = os.stat(self.path) if self.path.exists() else None
        identity = (os.getpid(), stat.st_dev, stat.st_ino) if stat else None
        cached = _CONNECTIONS.get(name)
        if cached is None or identity is None or cached[0] != identity:
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None,
                                 check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            stat = os.stat(self.path)
            cached = ((os.getpid(), stat.st_dev, stat.st_ino), db)
            _CONNECTIONS[name] = cached
        with _LOCK:
            yield cached[1]

    def releases(self) -> list[Release]:
        with self._connect() as db:
            rows = db.execute(
                "SELECT booked_at, run_id, server_round, kind, noise_multiplier, sample_rate, "
                "steps, delta, epsilon_after FROM releases ORDER BY id"
            ).fetchall()
        return [Release(*row) for row in rows]

    def booked(self) -> list[Booked]:
        """Every booked row as (run id, kind, round, mechanism)."""
        return [(r.run_id, r.kind, r.server_round,
                 (r.noise_multiplier, r.sample_rate, r.steps)) for r in self.releases()]

    def cohorts(self) -> list[Cohort]:
        """Every cohort booked, checked against its MAC (``LedgerError`` if one fails)."""
        with self._connect() as db:
            return self._read_cohorts(db)

    def _read_cohorts(self, db: sqlite3.Connection) -> list[Cohort]:
        """The cohorts, from this process's cache when the table has not changed since
        (cohorts are append-only: only new rows are read and checked; a new process reads
        and checks every row)."""
        key = read_key(self.key_path)
        cache_key = str(self.path.resolve())
        known = _COHORTS.get(cache_key, [])
        if known:
            last = db.execute("SELECT mac FROM cohorts WHERE id = ?",
                              (known[-1][0].id,)).fetchone()
            if last is None or last[0] != known[-1][1]:
                known = []  # not the table this process read: read it all again
        try:
            read = read_cohorts(db, key, known)
        except CohortTampered as exc:
            raise LedgerError(N_("The privacy ledger %(path)s cannot be trusted: %(problem)s.",
                                 path=self.path, problem=exc)) from exc
        if read and key is None:
            raise LedgerError(N_("The privacy ledger %(path)s has cohorts but its records key "
                                 "%(key)s is missing: they cannot be checked.",
                                 path=self.path, key=self.key_path))
        _COHORTS[cache_key] = read
        return [cohort for cohort, _ in read]

    def epsilon_spent(self, delta: float) -> float:
        """The largest lifetime epsilon at ``delta`` of any student the ledger knows (every
        booked release composed when no cohort says over whom)."""
        cohorts, booked = self.cohorts(), self.booked()
        if not cohorts:
            return filter_epsilon([b[3] for b in booked], delta)
        return largest_student_epsilon(set().union(*(c.members for c in cohorts)),
                                       cohorts, booked, delta)

    def book_cohort(self, *, run_id: str, kind: str, first_round: int, label: str,
                    members: list[bytes], retired: int) -> Cohort:
        """Book the cohort of a run's releases of ``kind`` from ``first_round`` on, before
        the first of them; the one already booked if there is one (a retried task)."""
        key = load_or_create_key(self.key_path)
        with self._connect() as db:
            db.execute("BEGIN EXCLUSIVE")
            try:
                existing = [c for c in self._read_cohorts(db) if (c.run_id, c.kind,
                            c.first_round) == (run_id, kind, first_round)]
                cohort = existing[0] if existing else insert_cohort(
                    db, key, _now(), run_id, kind, first_round, label, members, retired)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        if not existing:  # durable with the task's last line, as ledger_booked (book)
            self._log("cohort_booked", sync=False, run_id=run_id, kind=kind,
                      first_round=first_round, label=label, records=cohort.records,
                      retired=retired)
        return cohort

    def migrate(self, present: list[bytes]) -> int:
        """Give every release no cohort covers (booked before per-student accounting) a
        cohort: the students ``present`` now, who are charged with it; students who come
        later are not. Returns the number of cohorts booked (0: nothing to migrate)."""
        key = load_or_create_key(self.key_path)
        with self._connect() as db:
            db.execute("BEGIN EXCLUSIVE")
            try:
                cohorts = self._read_cohorts(db)
                pending: dict[tuple[str, str], int] = {}
                for run_id, kind, server_round, _ in uncovered(cohorts, self.booked()):
                    start = pending.get((run_id, kind), server_round)
                    pending[(run_id, kind)] = min(start, server_round)
                booked_at = _now()
                for (run_id, kind), first_round in sorted(pending.items()):
                    insert_cohort(db, key, booked_at, run_id, kind, first_round, "migrated",
                                  present, 0)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        if pending:
            self._log("ledger_migrated", cohorts=len(pending), students=len(set(present)))
        return len(pending)

    def _log(self, event: str, *, sync: bool = True, **fields: object) -> None:
        audit = self.path.parent / AUDIT_FILE
        actor = self.actor or trail_head(audit).actor or self.path.parent.name
        AuditTrail(audit, actor, self.key_path).record(event, sync=sync, **fields)

    def book(
        self,
        *,
        run_id: str,
        server_round: int,
        kind: str,
        mechanisms: list[tuple[float, float, int]],
        delta: float,
        cap: float,
    ) -> float:
        """Book one release, made of Gaussian ``mechanisms`` (noise multiplier, sample
        rate, steps), if every student of the cohort it is made over (``client.privacy.cohorts``)
        stays within ``cap``; without a cohort, if the composition of every release
        does. Returns the largest lifetime epsilon of any student after it. Raises
        ``BudgetExceeded`` (nothing booked) otherwise.

        The check and the inserts happen in one exclusive transaction, so two processes
        of the same centre cannot both pass the check with the last of the budget.
        """
        key = load_or_create_key(self.key_path)
        with self._connect() as db:
            db.execute("BEGIN EXCLUSIVE")
            try:
                last = db.execute(f"SELECT {LEDGER_FIELDS}, mac FROM releases "
                                  "ORDER BY id DESC LIMIT 1").fetchone()
                after = self._epsilon_after(db, run_id, server_round, kind, mechanisms,
                                            delta, cap, last)
                booked_at = _now()
                # Ids are given, not left to AUTOINCREMENT: the MAC covers the id.
                sequence = db.execute("SELECT max(seq) FROM sqlite_sequence "
                                      "WHERE name = 'releases'").fetchone()[0]
                next_id = 1 + max(last[0] if last else 0, sequence or 0)
                previous = row_link(tuple(last[:-1]), last[-1]) if last else GENESIS
                rows = []
                for offset, (z, q, t) in enumerate(mechanisms):
                    row = (next_id + offset, booked_at, run_id, int(server_round), kind,
                           float(z), float(q), int(t), float(delta), float(after))
                    previous = chain_mac(key, previous, row_content(row))
                    rows.append((*row, previous))
                db.executemany(f"INSERT INTO releases ({LEDGER_FIELDS}, mac) "
                               "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
                count = db.execute("SELECT count(*) FROM releases").fetchone()[0]
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        # The head, in the audit log: a deleted tail of rows is then seen locally too.
        # (A crash just before this line leaves rows the log does not mention: harmless,
        # the check is that every head the log mentions is still in the ledger.)
        # The rows themselves are durable at COMMIT above (WAL, synchronous=FULL: the
        # journal is fsynced before COMMIT returns), before the release is computed, so a
        # crash can only over-count. This line is not fsynced on its own (issue 32): for
        # the same reason a crash may lose it harmlessly, and a task's reply_sent line
        # (synced) makes it durable before the reply that anchors it leaves.
        self._log("ledger_booked", sync=False, ledger_rows=count, ledger_head=previous,
                  run_id=run_id, round=server_round, kind=kind, delta=delta,
                  epsilon_after=after)
        return after

    def _epsilon_after(self, db: sqlite3.Connection, run_id: str, server_round: int,
                       kind: str, mechanisms: list[tuple[float, float, int]], delta: float,
                       cap: float, last: tuple[object, ...] | None) -> float:
        """The largest lifetime epsilon of any student once ``mechanisms`` are booked;
        raises ``BudgetExceeded`` if a student of the release's cohort (every student,
        without one) would pass ``cap``."""
        booked: list[Booked] = [
            (r, k, t, (z, q, n)) for r, k, t, z, q, n in db.execute(
                "SELECT run_id, kind, server_round, noise_multiplier, sample_rate, steps "
                "FROM releases ORDER BY id")]
        cohorts = self._read_cohorts(db)
        cohort = covering(cohorts, run_id, kind, server_round)
        if cohort is None:
            after = filter_epsilon([*(b[3] for b in booked), *mechanisms], delta)
            who = "the centre's lifetime epsilon"
        else:
            after = largest_student_epsilon(cohort.members, cohorts, booked, delta,
                                            extra=mechanisms)
            who = f"the lifetime epsilon of a student of this release ({cohort.label})"
        if after > cap:
            raise BudgetExceeded(f"This release would bring {who} to {after:.3f} (delta "
                                 f"{delta:g}), past its cap of {cap:g}.")
        if cohort is None:
            return after
        # The largest over every student: the students of this release changed, the others
        # kept what the last row recorded (recomputed when that row is at another delta).
        if last is not None and float(last[8]) == delta:  # type: ignore[arg-type]
            return max(after, float(last[9]))  # type: ignore[arg-type]
        everyone = largest_student_epsilon(set().union(*(c.members for c in cohorts)),
                                           cohorts, booked, delta)
        return max(after, everyone)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
