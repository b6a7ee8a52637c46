"""Each student's lifetime budget at the centre, and the records a run may use.

The centre's cap (the site policy's ``epsilon_cap``, at the floor's delta) holds per
student: what a student's record has ever contributed, composed over every release it
was part of (``client.privacy.cohorts``). Before a run uses its records, the centre keeps only
the records whose budget the WHOLE run would leave within the cap (the run's planned
releases are public: the size release, every training round of the plan, every
evaluation release of the run), and books that set as the run's cohort before the first
release over it. The others are retired from this run's training and federated
evaluation (they are still scored locally). This is an individual filter in the sense
of Feldman and Zrnic (2021): whether a record takes part depends only on its own past
and on public values (the run's configuration, the released size), never on another
student's record, so adding or removing one student changes no other student's
inclusion, and each student's guarantee composes over its own releases only
(docs/PRIVACY.md, "Each student's lifetime budget").

Training is decided in two steps because the mechanism depends on the released size:
the size is released over the records the size release alone leaves within the cap
(cohort ``size``), the plan follows from that size, and training uses those of them the
whole run leaves within the cap (cohort ``train``). A record in the first and not the
second paid for the size release only (one count, noise multiplier 50). No cohort is
refused for being small: that would be a decision on an exact count of students; the
centre takes part or not on its released size.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import numpy.typing as npt

from client.ingest.centre_data import CentreData
from client.privacy.cohorts import (
    Cohort,
    known_students,
    pseudonym_key,
    student_epsilons,
    student_hashes,
    uncovered,
)
from client.privacy.evaluation import evaluation_noise
from client.privacy.ledger import PrivacyLedger
from client.privacy.run_plan import Mechanism, RunPlan, size_release
from client.privacy.trust import honest_sum
from common.config import RunConfig
from common.privacy.accounting import run_shares
from common.records.chain import LEDGER_FILE
from common.records.key import load_or_create_key

#: The cohorts of a run: (kind, first round) by label.
SIZE, TRAIN, EVALUATE = ("train", 0), ("train", 1), ("evaluate", 0)


#: Pseudonym sets whose hashes a process keeps: a simulation actor serves any centre,
#: each with a training and a held-out set (quebec-72: 144 sets, about 20 MB in all).
HASH_CACHE_SETS = 512


@lru_cache(maxsize=HASH_CACHE_SETS)
def _hashes(key: bytes, pseudonyms: tuple[str, ...]) -> tuple[bytes, ...]:
    """The keyed hashes of a set of pseudonyms, cached per process by the key and the
    pseudonyms themselves (another key or another extract is another entry): an HMAC per
    student per task was a tenth of a task's time at quebec-72's scale."""
    return tuple(student_hashes(pseudonyms, key))


def forget_hashes() -> None:
    """Empty this process's cache of hashes (a benchmark's phases start cold)."""
    _hashes.cache_clear()


def run_mechanisms(plan: RunPlan, config: RunConfig) -> list[Mechanism]:
    """Everything a run's training releases over its training records: the size release
    and every round of the plan."""
    z, q, steps = plan.round_mechanism()
    return [size_release(), (z, q, steps * config.rounds)]


@dataclass(frozen=True)
class StudentBudget:
    """The per-student view of a centre's ledger for one run's records."""

    ledger: PrivacyLedger
    data: CentreData
    config: RunConfig

    @property
    def cap(self) -> float:
        return self.data.policy.epsilon_cap

    @property
    def delta(self) -> float:
        return self.data.policy.privacy.delta

    def hashes(self, pseudonyms: tuple[str, ...]) -> tuple[bytes, ...]:
        return _hashes(pseudonym_key(load_or_create_key(self.ledger.key_path)), pseudonyms)

    def migrate(self) -> None:
        """Charge the releases booked before per-student accounting to the students
        present now (training and held-out alike, as the centre-wide ledger did)."""
        if uncovered(self.ledger.cohorts(), self.ledger.booked()):
            self.ledger.migrate([*self.hashes(self.data.ids_train),
                                 *self.hashes(self.data.ids_test)])

    def within(self, hashes: tuple[bytes, ...], run_name: str,
               mechanisms: list[Mechanism]) -> npt.NDArray[np.bool_]:
        """True for the students whose lifetime epsilon, with this run's ``mechanisms``
        (the run's own bookings left out: they are part of ``mechanisms``), stays
        within the cap."""
        spent = student_epsilons(hashes, self.ledger.cohorts(), self.ledger.booked(),
                                 self.delta, extra=mechanisms, exclude_run=run_name,
                                 accountant=self.config.privacy.accountant)
        return spent <= self.cap

    def _cohort(self, run_name: str, which: tuple[str, int]) -> Cohort | None:
        kind, first_round = which
        return next((c for c in self.ledger.cohorts() if (c.run_id, c.kind, c.first_round)
                     == (run_name, kind, first_round)), None)

    def _select(self, run_name: str, which: tuple[str, int], label: str,
                pseudonyms: tuple[str, ...], mechanisms: list[Mechanism],
                among: Cohort | None = None) -> npt.NDArray[np.bool_]:
        """The run's cohort ``which`` as a mask over ``pseudonyms``: the one booked, or
        the records within budget (and in ``among``), booked now. Never a refusal: how
        many remain is an exact count of the students (issue 26); taking part is decided
        on the released size (``client.federation.rounds.require_training_records``)."""
        hashes = self.hashes(pseudonyms)
        if len(hashes) != (self.data.num_train if which[0] == "train" else self.data.num_test):
            raise ValueError("The centre's records carry no pseudonyms (CentreData.ids_*): "
                             "per-student accounting cannot tell its students apart.")
        booked = self._cohort(run_name, which)
        if booked is not None:
            return np.fromiter((h in booked.members for h in hashes), bool, len(hashes))
        self.migrate()  # once, before the first cohort chosen after the upgrade
        keep = self.within(hashes, run_name, mechanisms)
        if among is not None:
            keep &= np.fromiter((h in among.members for h in hashes), bool, len(hashes))
        kind, first_round = which
        members = [h for h, k in zip(hashes, keep, strict=True) if k]
        self.ledger.book_cohort(run_id=run_name, kind=kind, first_round=first_round,
                                label=label, members=members, retired=len(hashes) - len(members))
        return keep

    def size_records(self, run_name: str) -> CentreData:
        """The training records the size release is made over (cohort booked)."""
        keep = self._select(run_name, SIZE, "size", self.data.ids_train, [size_release()])
        return self.data.restricted(train=keep)

    def training_records(self, run_name: str, plan: RunPlan) -> CentreData:
        """The records the run trains on: those of the size cohort the whole run leaves
        within the cap (cohort booked before the first round's release)."""
        keep = self._select(run_name, TRAIN, "train", self.data.ids_train,
                            run_mechanisms(plan, self.config),
                            among=self._cohort(run_name, SIZE))
        return self.data.restricted(train=keep)

    def evaluation_records(self, run_name: str,
                           survivors_min: int | None = None) -> CentreData:
        """The held-out records the run's evaluation releases are made over: those every
        evaluation release of the run leaves within the cap (cohort booked first).
        ``survivors_min``: the centre adds a share of distributed noise (secure mode),
        each release then costs the centre what its trust model books
        (``client.privacy.trust``): its share alone, or the honest sum."""
        floor = self.data.policy.privacy
        noise = evaluation_noise(self.config, floor)
        if noise is None:
            return self.data
        # Priced as the centre books them: alone, or the honest sum (its trust model).
        releases = run_shares(noise, survivors_min,
                              honest_sum(self.config, floor, survivors_min))
        # No minimum: a refusal on the exact number of students with budget left would
        # tell whether one student is there. A release over no student is noise alone,
        # which the ministry's pooled histogram absorbs (zero mean).
        keep = self._select(run_name, EVALUATE, "evaluate", self.data.ids_test, releases)
        return self.data.restricted(test=keep)


#: Decimals of the epsilons the ledger shows (``perseverance-client ledger``).
SHOWN_DECIMALS = 3


@dataclass(frozen=True)
class BudgetSpread:
    """Every student a centre's ledger knows, with its lifetime epsilon at ``delta``."""

    delta: float
    epsilons: npt.NDArray[np.float64]

    @property
    def students(self) -> int:
        return len(self.epsilons)

    def counts(self, edges: list[float]) -> list[int]:
        """How many students spent within each interval ``(edges[i], edges[i+1]]`` (the
        first one closed: ``[edges[0], edges[1]]``), their epsilons rounded to the
        ``SHOWN_DECIMALS`` the ledger shows: a student who spent one run at epsilon 3
        is in the band that ends at 3, whatever the accountant's last digits. Students
        outside ``[edges[0], edges[-1]]`` are not counted."""
        spent = self.shown()
        inside = (spent >= edges[0]) & (spent <= edges[-1])
        band = np.clip(np.searchsorted(edges, spent[inside], side="left") - 1, 0,
                       len(edges) - 2)
        return [int(c) for c in np.bincount(band, minlength=len(edges) - 1)]

    def shown(self) -> npt.NDArray[np.float64]:
        """The students' epsilons as the ledger shows them (``SHOWN_DECIMALS``)."""
        return np.round(self.epsilons, SHOWN_DECIMALS)


@dataclass(frozen=True)
class CohortInfo:
    """One cohort of a run: ``kind`` is ``size``, ``train``, ``evaluate`` or
    ``migrated``; ``records`` used, ``retired`` left out for budget."""

    kind: str
    records: int
    retired: int
    first_round: int


def _ledger(state_dir: Path) -> PrivacyLedger | None:
    return PrivacyLedger(state_dir) if (state_dir / LEDGER_FILE).is_file() else None


def budget_spread(state_dir: Path, delta: float) -> BudgetSpread:
    """Each student's lifetime epsilon at ``delta`` in the centre's ledger (none if the
    centre has no ledger)."""
    ledger = _ledger(state_dir)
    if ledger is None:
        return BudgetSpread(delta, np.zeros(0))
    cohorts = ledger.cohorts()
    return BudgetSpread(delta, student_epsilons(known_students(cohorts), cohorts,
                                                ledger.booked(), delta))


def run_cohorts(state_dir: Path, run_name: str) -> list[CohortInfo]:
    """The cohorts the centre booked for ``run_name``, in booking order."""
    ledger = _ledger(state_dir)
    if ledger is None:
        return []
    return [CohortInfo(c.label, c.records, c.retired, c.first_round)
            for c in ledger.cohorts() if c.run_id == run_name]
