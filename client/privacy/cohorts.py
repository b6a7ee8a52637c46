"""Which students each release used, and each student's composed epsilon.

The ledger's ``releases`` rows say what was released (a Gaussian mechanism, its rate,
its steps); its ``cohorts`` rows say over whom. A cohort is the set of records one run
used for one kind of release from one round on: ``(run_id, kind, first_round)``, with
the members as keyed hashes of the student pseudonyms (``HASH_BYTES`` bytes each, HMAC
with a key derived from the centre's records key: the pseudonym itself never enters the
ledger, and the hashes are worthless without the centre's key). A release row of
``(run_id, kind, server_round)`` is covered by the cohort of that run and kind with the
largest ``first_round`` not after ``server_round``. A row no cohort covers (a ledger
from before per-student accounting, until :meth:`client.privacy.ledger.PrivacyLedger.migrate`)
counts against every student.

A student's composed epsilon is then the composition (Opacus's RDP accountant) of the
rows of every cohort it is a member of, plus the uncovered rows, as the individual filter
checks it against the cap: the best of a fixed grid of orders, each converted at the
centre's delta shared among them (``common.privacy.accounting.filter_epsilon``; the
union bound that makes the filter sound: docs/PRIVACY.md, "The argument").
Students with the same memberships have the same epsilon, so it is computed once per
distinct membership (a handful per centre), not once per student.

Cohort rows are append-only (triggers) and chained by HMAC like the release rows, so a
member removed from a cohort (which would give a student budget back) breaks the chain.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from common.errors import PerseveranceError
from common.privacy.accounting import filter_epsilon
from common.records.key import GENESIS, chain_mac, same

#: Bytes of a student's keyed hash: 128 bits, no collision among a centre's students.
HASH_BYTES = 16
#: What the key that hashes pseudonyms is derived from the records key with.
_PSEUDONYM_CONTEXT = b"perseverance/student-pseudonym/v1"

COHORT_SCHEMA = """
CREATE TABLE IF NOT EXISTS cohorts (
    id INTEGER PRIMARY KEY,
    booked_at TEXT NOT NULL,
    run_id TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('train', 'evaluate')),
    first_round INTEGER NOT NULL,
    label TEXT NOT NULL,
    records INTEGER NOT NULL CHECK (records >= 0),
    retired INTEGER NOT NULL CHECK (retired >= 0),
    members BLOB NOT NULL,
    mac TEXT NOT NULL,
    UNIQUE (run_id, kind, first_round)
);
CREATE TRIGGER IF NOT EXISTS cohorts_no_update BEFORE UPDATE ON cohorts
BEGIN SELECT RAISE(ABORT, 'the privacy ledger is append-only'); END;
CREATE TRIGGER IF NOT EXISTS cohorts_no_delete BEFORE DELETE ON cohorts
BEGIN SELECT RAISE(ABORT, 'the privacy ledger is append-only'); END;
"""
_FIELDS = "id, booked_at, run_id, kind, first_round, label, records, retired, members, mac"

Mechanism = tuple[float, float, int]  # noise multiplier, sample rate, steps
Booked = tuple[str, str, int, Mechanism]  # run_id, kind, server_round, mechanism


class CohortTampered(PerseveranceError, ValueError):
    """A cohort row does not match its MAC: the ledger was edited. One sentence."""


@dataclass(frozen=True)
class Cohort:
    """The records one run used for one kind of release, from ``first_round`` on.

    ``label``: ``size`` (the run's size release), ``train``, ``evaluate`` or
    ``migrated`` (a release booked before per-student accounting, charged to the
    students present at migration). ``retired``: records left out for budget."""

    id: int
    booked_at: str
    run_id: str
    kind: str
    first_round: int
    label: str
    records: int
    retired: int
    members: frozenset[bytes]


def pseudonym_key(records_key: bytes) -> bytes:
    """The key that hashes pseudonyms, derived from the centre's records key (so a
    ledger and its key travel together, and one never serves for the other's MACs)."""
    return hmac.new(records_key, _PSEUDONYM_CONTEXT, hashlib.sha256).digest()


def student_hashes(pseudonyms: Iterable[str], key: bytes) -> list[bytes]:
    """Each pseudonym's keyed hash (``HASH_BYTES`` bytes), in order."""
    return [hmac.new(key, str(p).encode("utf-8"), hashlib.sha256).digest()[:HASH_BYTES]
            for p in pseudonyms]


def _pack(members: Iterable[bytes]) -> bytes:
    return b"".join(sorted(set(members)))


def _unpack(blob: bytes) -> frozenset[bytes]:
    return frozenset(blob[i:i + HASH_BYTES] for i in range(0, len(blob), HASH_BYTES))


def _content(row: Sequence[Any]) -> str:
    """What a cohort's MAC covers: its fields, the members by their digest."""
    *fields, members = row
    return json.dumps([*fields, hashlib.sha256(bytes(members)).hexdigest()])


def read_cohorts(db: sqlite3.Connection, key: bytes | None,
                 known: Sequence[tuple[Cohort, str]] = ()) -> list[tuple[Cohort, str]]:
    """Every cohort with its MAC, in booking order, each checked against its MAC when
    ``key`` is given. ``known``: the cohorts already read and checked (a prefix of the
    table): only the rows after them are read, chained to the last of them. Raises
    ``CohortTampered`` at the first row that does not match."""
    last_id, previous = (known[-1][0].id, known[-1][1]) if known else (0, GENESIS)
    cohorts = list(known)
    for row in db.execute(f"SELECT {_FIELDS} FROM cohorts WHERE id > ? ORDER BY id",
                          (last_id,)):
        *fields, mac = row
        if key is not None:
            expected = chain_mac(key, previous, _content(fields))
            if not same(expected, mac):
                raise CohortTampered(f"cohort row {fields[0]} of the privacy ledger does not "
                                     "match its MAC: the ledger was edited")
        previous = mac
        cohorts.append((_cohort(fields), mac))
    return cohorts


def insert_cohort(db: sqlite3.Connection, key: bytes, booked_at: str, run_id: str,
                  kind: str, first_round: int, label: str, members: Iterable[bytes],
                  retired: int) -> Cohort:
    """Append one cohort, chained to the last (inside the caller's transaction)."""
    blob = _pack(members)
    last = db.execute("SELECT id, mac FROM cohorts ORDER BY id DESC LIMIT 1").fetchone()
    next_id, previous = (last[0] + 1, last[1]) if last else (1, GENESIS)
    fields = (next_id, booked_at, run_id, kind, int(first_round), label,
              len(blob) // HASH_BYTES, int(retired), blob)
    mac = chain_mac(key, previous, _content(fields))
    db.execute(f"INSERT INTO cohorts ({_FIELDS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
               (*fields, mac))
    return _cohort(fields)


def _cohort(fields: Sequence[Any]) -> Cohort:
    """A cohort from its stored fields (``_FIELDS`` without the MAC)."""
    cid, booked_at, run_id, kind, first_round, label, records, retired, blob = fields
    return Cohort(int(cid), str(booked_at), str(run_id), str(kind), int(first_round),
                  str(label), int(records), int(retired), _unpack(bytes(blob)))


def covering(cohorts: Sequence[Cohort], run_id: str, kind: str,
             server_round: int) -> Cohort | None:
    """The cohort a release of ``(run_id, kind, server_round)`` was made over."""
    candidates = [c for c in cohorts if c.run_id == run_id and c.kind == kind
                  and c.first_round <= server_round]
    return max(candidates, key=lambda c: c.first_round, default=None)


def uncovered(cohorts: Sequence[Cohort], booked: Sequence[Booked]) -> list[Booked]:
    """The booked rows no cohort covers (charged to every student)."""
    return [b for b in booked if covering(cohorts, b[0], b[1], b[2]) is None]


def _histories(
    cohorts: Sequence[Cohort],
    booked: Sequence[Booked],
    extra: Sequence[Mechanism],
    exclude_run: str | None,
) -> tuple[list[Cohort], dict[int, list[Mechanism]], list[Mechanism]]:
    """The cohorts that count, each one's booked rows, and the rows every student pays
    (``extra`` and the uncovered rows)."""
    if exclude_run is not None:
        cohorts = [c for c in cohorts if c.run_id != exclude_run]
        booked = [b for b in booked if b[0] != exclude_run]
    rows: dict[int, list[Mechanism]] = {c.id: [] for c in cohorts}
    everyone: list[Mechanism] = list(extra)
    for run_id, kind, server_round, mechanism in booked:
        cover = covering(cohorts, run_id, kind, server_round)
        (rows[cover.id] if cover is not None else everyone).append(mechanism)
    return [c for c in cohorts if rows[c.id]], rows, everyone


def _memberships(students: Iterable[bytes],
                 cohorts: Sequence[Cohort]) -> list[tuple[tuple[int, ...], set[bytes]]]:
    """``students`` split by the cohorts they are members of: (cohort ids, students),
    one part per distinct membership, none empty. Built with set operations (C speed),
    one split per cohort, rather than student by student."""
    parts: list[tuple[tuple[int, ...], set[bytes]]] = [((), set(students))]
    for cohort in cohorts:
        split: list[tuple[tuple[int, ...], set[bytes]]] = []
        for ids, part in parts:
            inside = part & cohort.members
            if inside:
                split.append(((*ids, cohort.id), inside))
            if len(inside) < len(part):
                split.append((ids, part - inside if inside else part))
        parts = split
    return [(ids, part) for ids, part in parts if part]


def student_epsilons(
    students: Sequence[bytes],
    cohorts: Sequence[Cohort],
    booked: Sequence[Booked],
    delta: float,
    *,
    extra: Sequence[Mechanism] = (),
    exclude_run: str | None = None,
    accountant: str = "rdp",
) -> npt.NDArray[np.float64]:
    """Each student's composed epsilon at ``delta``: the rows of every cohort it is in,
    the uncovered rows, and ``extra`` (what a release being planned would add).

    ``exclude_run``: leave that run's rows and cohorts out (the run being planned, whose
    whole cost is then given in ``extra``). Students with the same memberships have the
    same epsilon: it is composed once per distinct membership."""
    counted, rows, everyone = _histories(cohorts, booked, extra, exclude_run)
    epsilon_of: dict[bytes, float] = {}
    for ids, part in _memberships(students, counted):
        history = [*everyone, *(m for cid in ids for m in rows[cid])]
        epsilon = filter_epsilon(history, delta, accountant)
        epsilon_of.update(dict.fromkeys(part, epsilon))
    return np.fromiter((epsilon_of[s] for s in students), np.float64, len(students))


def largest_student_epsilon(
    students: Iterable[bytes],
    cohorts: Sequence[Cohort],
    booked: Sequence[Booked],
    delta: float,
    *,
    extra: Sequence[Mechanism] = (),
    accountant: str = "rdp",
) -> float:
    """The largest of :func:`student_epsilons` over ``students`` (0 for none), without
    a figure per student: what a booking checks against the cap."""
    counted, rows, everyone = _histories(cohorts, booked, extra, None)
    return max((filter_epsilon([*everyone, *(m for cid in ids for m in rows[cid])],
                               delta, accountant)
                for ids, _ in _memberships(students, counted)), default=0.0)


def known_students(cohorts: Sequence[Cohort]) -> list[bytes]:
    """Every student some cohort names, in a fixed order."""
    return sorted(set().union(*(c.members for c in cohorts))) if cohorts else []
