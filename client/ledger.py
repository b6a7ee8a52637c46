"""The centre's privacy ledger: every release it ever made, in an append-only SQLite file.

A release is booked BEFORE it leaves the centre (a crash after sending can only
over-count), inside one SQLite transaction with full fsync, and rows can never be
updated or deleted (triggers refuse it). The epsilon spent is the composition of every
booked release with Opacus's RDP accountant, at the centre's delta, per student. This
lifetime figure composes training and evaluation releases as if they touched the same
students, which over-counts (held-out students never enter training) but stays safe if
pseudonyms change between years.

Every row carries ``mac``: HMAC-SHA256, with the centre's records key
(``common.records_key``), of the row's fields and of the MAC of the row before, so that
a row edited or deleted (triggers dropped first) breaks the chain at that row. A deleted
tail leaves the chain intact: after each booking the ledger writes its head (rows, MAC)
to the centre's audit log (``ledger_booked``), and the ministry records the heads it
receives, so that :func:`client.records.verify_centre` finds missing rows. Rows booked
before keying (``mac`` NULL) are reported as unkeyed; they may only precede keyed rows.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from common.audit_trail import AuditTrail, trail_head
from common.errors import ExitCode, PerseveranceError
from common.privacy import composed_epsilon
from common.records import (
    AUDIT_FILE,
    LEDGER_FIELDS,
    LEDGER_FILE,
    row_content,
    row_link,
)
from common.records_key import GENESIS, KEY_FILE, chain_mac, load_or_create_key

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


class BudgetExceeded(Exception):
    """The release would take the centre past its cap. One sentence."""


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
                db.executescript(_SCHEMA)
                columns = [row[1] for row in db.execute("PRAGMA table_info(releases)")]
                if "mac" not in columns:  # a ledger from before keying: its rows stay unkeyed
                    db.execute("ALTER TABLE releases ADD COLUMN mac TEXT")
        except sqlite3.DatabaseError as exc:
            raise LedgerError(f"The privacy ledger {self.path} cannot be used: {exc}.") from exc

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            yield db
        finally:
            db.close()

    def releases(self) -> list[Release]:
        with self._connect() as db:
            rows = db.execute(
                "SELECT booked_at, run_id, server_round, kind, noise_multiplier, sample_rate, "
                "steps, delta, epsilon_after FROM releases ORDER BY id"
            ).fetchall()
        return [Release(*row) for row in rows]

    def epsilon_spent(self, delta: float) -> float:
        """Lifetime epsilon at ``delta`` over every booked release."""
        return composed_epsilon(
            [(r.noise_multiplier, r.sample_rate, r.steps) for r in self.releases()], delta
        )

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
        rate, steps), if the lifetime epsilon stays within ``cap``; returns the new
        lifetime epsilon. Raises ``BudgetExceeded`` (nothing booked) otherwise.

        The check and the inserts happen in one exclusive transaction, so two processes
        of the same centre cannot both pass the check with the last of the budget.
        """
        key = load_or_create_key(self.key_path)
        with self._connect() as db:
            db.execute("BEGIN EXCLUSIVE")
            try:
                history = db.execute(
                    "SELECT noise_multiplier, sample_rate, steps FROM releases"
                ).fetchall()
                after = composed_epsilon([*history, *mechanisms], delta)
                if after > cap:
                    raise BudgetExceeded(
                        f"This release would bring the centre's lifetime epsilon to "
                        f"{after:.3f} (delta {delta:g}), past its cap of {cap:g}."
                    )
                booked_at = datetime.now(UTC).isoformat(timespec="seconds")
                last = db.execute(f"SELECT {LEDGER_FIELDS}, mac FROM releases "
                                  "ORDER BY id DESC LIMIT 1").fetchone()
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
        audit = self.path.parent / AUDIT_FILE
        actor = self.actor or trail_head(audit).actor or self.path.parent.name
        AuditTrail(audit, actor, self.key_path).record(
            "ledger_booked", ledger_rows=count, ledger_head=previous, run_id=run_id,
            round=server_round, kind=kind, delta=delta, epsilon_after=after)
        return after
