"""A centre's DP mechanism for one run, fixed by public inputs, and the run's budget as
the centre's own ledger books it.

The mechanism (batch size, sampling rate, steps, noise multiplier) must not depend on
the exact number of students: adding one student would change the mechanism itself,
which no accountant covers. So at its first training task of a run the centre releases
its training-set size once, with discrete Gaussian noise (``COUNT_NOISE_MULTIPLIER``,
L2 sensitivity 1; an integer, as the evaluation counts: no floating-point bits to read),
rounded to ``SIZE_GRID``, and books that release; the plan is a function
of that released size and the run's configuration only (:func:`plan_for`), and it is
kept in the state folder for the whole run, resumes included. The released size is
also the FedAvg weight of every training reply (post-processing: no further cost).

Before every release the centre composes what its ledger booked for this run (training
and evaluation apart, as the parallel-composition argument needs: held-out students
never train), each booked row priced with the noise it was released with, and refuses
anything that would take the run past its target, at the run's delta, or past its own
floor's ``max_epsilon_per_run``, at its own delta (:func:`check_run_budget`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from client.errors import CentreRefusal
from client.privacy.ledger import PrivacyLedger
from client.site_policy import PrivacyFloor
from common.config import RunConfig
from common.discrete_gaussian import discrete_gaussian
from common.files import atomic_write_bytes
from common.privacy.accounting import (
    COUNT_NOISE_MULTIPLIER,
    SamplingPlan,
    calibrate_training_noise,
    choose_batch_size,
    composed_epsilon,
)
from common.protocol import Reason, Reply

PLAN_FOLDER = "run-plans"
#: The released size is rounded to this many records: one more student rarely moves it.
SIZE_GRID = 10
#: Fewest DP-SGD steps per epoch: a sampling rate of 1/2 at most.
MIN_STEPS_PER_EPOCH = 2
#: Relative slack over a budget: the calibration's own tolerance, nothing more.
BUDGET_SLACK = 1e-3

Mechanism = tuple[float, float, int]  # noise multiplier, sample rate, steps


@dataclass(frozen=True)
class RunPlan:
    """One centre's DP-SGD mechanism for a run: public by construction.

    ``public_size`` is the released (noisy, rounded, booked) training-set size; the
    sampling rate is ``1 / steps_per_epoch``; ``noise_multiplier`` (0 without DP) keeps
    the whole run within the target at ``delta`` (the smaller of the run's and the
    centre's delta).
    """

    public_size: int
    batch_size: int
    steps_per_epoch: int
    steps_per_round: int
    noise_multiplier: float
    delta: float

    @property
    def sample_rate(self) -> float:
        return 1.0 / self.steps_per_epoch

    def round_mechanism(self) -> Mechanism:
        return (self.noise_multiplier, self.sample_rate, self.steps_per_round)


def size_release() -> Mechanism:
    """The one release of the training-set size: a Gaussian count, sensitivity 1."""
    return (COUNT_NOISE_MULTIPLIER, 1.0, 1)


def released_size(count: int, rng: np.random.Generator) -> int:
    """``count`` with discrete Gaussian noise, rounded to ``SIZE_GRID`` (at least
    ``SIZE_GRID``)."""
    noisy = count + int(discrete_gaussian(rng, COUNT_NOISE_MULTIPLIER, 1)[0])
    return max(SIZE_GRID, round(noisy / SIZE_GRID) * SIZE_GRID)


def plan_for(public_size: int, config: RunConfig, floor: PrivacyFloor) -> RunPlan:
    """The run's mechanism from public inputs only: the released size, the run's
    configuration and the centre's floor."""
    sampling = SamplingPlan(public_size, choose_batch_size(public_size,
                                                           config.training.batch_size))
    # Never one step per epoch (every record in every batch, no amplification), also
    # when the released size of a small centre came out low.
    steps_per_epoch = max(MIN_STEPS_PER_EPOCH, sampling.steps_per_epoch)
    batch_size = max(1, round(public_size / steps_per_epoch))
    steps_per_round = config.local_epochs * steps_per_epoch
    delta = floor.delta_for(config)
    sigma = 0.0
    if config.privacy.dp:
        sigma = calibrate_training_noise(config.privacy.epsilon, delta, 1.0 / steps_per_epoch,
                                         config.rounds * steps_per_round, 1,
                                         config.privacy.accountant)
    return RunPlan(public_size, batch_size, steps_per_epoch, steps_per_round, sigma, delta)


def _plan_path(state_dir: Path, run_name: str) -> Path:
    digest = hashlib.sha256(run_name.encode()).hexdigest()[:32]
    return state_dir / PLAN_FOLDER / f"{digest}.json"


def load_plan(state_dir: Path, run_name: str) -> RunPlan | None:
    """The plan this centre fixed for ``run_name``, or None (unreadable counts as none:
    a new size release is then booked, never a silent re-use)."""
    path = _plan_path(state_dir, run_name)
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
        if saved.pop("run_name") != run_name:
            return None
        return RunPlan(**saved)
    except (OSError, ValueError, TypeError, KeyError):
        return None


def save_plan(state_dir: Path, run_name: str, plan: RunPlan) -> None:
    """Keep the plan for the rest of the run (atomic replace, fsync)."""
    text = json.dumps({"run_name": run_name, **asdict(plan)})
    atomic_write_bytes(_plan_path(state_dir, run_name), text.encode("utf-8"), 0o600)


def held_out_share(state_dir: Path | None, run_name: str, config: RunConfig) -> float:
    """The held-out share of the run, fixed at the centre's first task of the run: a
    later instruction with another ``evaluation.test_fraction`` would move students
    between training and evaluation, and the two would no longer compose in parallel."""
    if state_dir is None:
        return config.evaluation.test_fraction
    path = _plan_path(state_dir, run_name).with_suffix(".split.json")
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
        if saved.get("run_name") == run_name:
            return float(saved["test_fraction"])
    except (OSError, ValueError, TypeError, KeyError):
        pass
    text = json.dumps({"run_name": run_name, "test_fraction": config.evaluation.test_fraction})
    atomic_write_bytes(path, text.encode("utf-8"), 0o600)
    return config.evaluation.test_fraction


def run_history(ledger: PrivacyLedger, run_name: str, kind: str) -> list[Mechanism]:
    """What the ledger booked for ``run_name`` of ``kind`` (train or evaluate), each row
    with the noise and rate it was released with."""
    return [(r.noise_multiplier, r.sample_rate, r.steps) for r in ledger.releases()
            if r.run_id == run_name and r.kind == kind]


def check_run_budget(history: list[Mechanism], config: RunConfig, floor: PrivacyFloor,
                     what: str) -> float:
    """Refuse (``CentreRefusal``) when ``history`` (the run's booked rows of one kind
    plus the release asked for) goes past the run's target at the run's delta or past
    the floor's per-run maximum at the centre's delta. Returns the epsilon at the run's
    delta."""
    privacy = config.privacy
    at_run = composed_epsilon(history, privacy.delta, privacy.accountant)
    at_centre = composed_epsilon(history, floor.delta, privacy.accountant)
    if (at_run > privacy.epsilon * (1 + BUDGET_SLACK)
            or at_centre > floor.max_epsilon_per_run * (1 + BUDGET_SLACK)):
        raise CentreRefusal(
            f"This {what} would bring the run's epsilon at this centre to {at_run:.3f} at "
            f"delta {privacy.delta:g} ({at_centre:.3f} at the centre's delta "
            f"{floor.delta:g}), past the run's target of {privacy.epsilon:g} or the "
            f"floor's {floor.max_epsilon_per_run:g} per run.",
            Reason.RUN_BUDGET, Reply.REFUSED)
    return at_run
