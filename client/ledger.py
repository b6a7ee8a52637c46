"""The centre's privacy ledger: every release it ever made, in an append-only SQLite file.

A release is booked BEFORE it leaves the centre (a crash after sending can only
over-count), inside one SQLite transaction with full fsync, and rows can never be
updated or deleted (triggers refuse it). The epsilon spent is the composition of every
booked release with Opacus's RDP accountant, at the centre's delta, per student. This
lifetime figure composes training and evaluation releases as if they touched the same
students, which over-counts (held-out students never enter training) but stays safe if
pseudonyms change between years.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from common.privacy import composed_epsilon

LEDGER_FILE = "privacy-ledger.sqlite"
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
    epsilon_after REAL NOT NULL
);
CREATE TRIGGER IF NOT EXISTS releases_no_update BEFORE UPDATE ON releases
BEGIN SELECT RAISE(ABORT, 'the privacy ledger is append-only'); END;
CREATE TRIGGER IF NOT EXISTS releases_no_delete BEFORE DELETE ON releases
BEGIN SELECT RAISE(ABORT, 'the privacy ledger is append-only'); END;
"""


class BudgetExceeded(Exception):
    """The release would take the centre past its cap. One sentence."""


class LedgerError(Exception):
    """The ledger file cannot be used (corrupt, unreadable). One sentence."""

    exit_code = 2


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
    """Append-only record of a centre's releases, stored in ``state_dir``."""

    def __init__(self, state_dir: Path) -> None:
        state_dir.mkdir(parents=True, exist_ok=True)
        self.path = state_dir / LEDGER_FILE
        try:
            with self._connect() as db:
                db.executescript(_SCHEMA)
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
                db.executemany(
                    "INSERT INTO releases (booked_at, run_id, server_round, kind, "
                    "noise_multiplier, sample_rate, steps, delta, epsilon_after) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [(booked_at, run_id, server_round, kind, z, q, t, delta, after)
                     for z, q, t in mechanisms],
                )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return after
