"""Privacy accounting for student-level DP-SGD, with Opacus's own accountants.

Unit of privacy: one student's record at one centre. A centre trains with Poisson
sampling at rate ``q`` (each record joins each step's batch independently with
probability ``q``), per-sample gradients clipped to ``max_grad_norm`` and Gaussian
noise of standard deviation ``noise_multiplier * max_grad_norm``. Every step of every
round composes; the epsilon reported is cumulative over the whole run, at ``delta``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
from opacus.accountants import create_accountant
from opacus.accountants.accountant import IAccountant
from opacus.accountants.analysis.rdp import compute_rdp, get_privacy_spent
from opacus.accountants.utils import get_noise_multiplier

from common.config import ACCOUNTANTS
from common.discrete_gaussian import MIN_SHARE_STD, sum_multiplier
from common.equity.audit import AUDIT_GROUPS, GROUP_BINS, all_cell_keys

if TYPE_CHECKING:
    from common.config import RunConfig

# Opacus's default RDP orders stop at 63; few steps at a high sampling rate need
# larger orders for a tight bound (else Opacus warns that the optimum is the largest).
RDP_ORDERS: tuple[float, ...] = (
    *(1 + x / 10.0 for x in range(1, 100)), *range(12, 64), *range(64, 257, 8), 320, 512, 1024
)
#: The orders the individual filter (``client.privacy.cohorts``) takes the best of when
#: it checks a student's lifetime against the cap: a fixed, public grid (all of them in
#: ``RDP_ORDERS``), few enough that sharing delta among them costs little. Feldman and
#: Zrnic's filter is a statement at one fixed order; letting a record in while any one
#: of k orders holds its budget is covered by a union bound over the k orders, each at
#: delta / k (docs/PRIVACY.md, "The argument").
FILTER_ORDERS: tuple[float, ...] = (1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0, 6.0, 7.0, 8.0, 10.0,
                                    12.0, 16.0, 20.0, 24.0, 32.0, 48.0, 64.0, 128.0, 256.0)
MIN_BATCH = 32
MAX_BATCH = 512


def choose_batch_size(num_records: int, configured: int = 0) -> int:
    """Expected batch size for a centre of ``num_records`` training records.

    ``configured`` > 0 forces it. Otherwise about 1/16 of the centre per step, within
    32-512: small centres keep several steps per epoch (a low sampling rate is what
    amplifies privacy), large ones get batches big enough that the noise averages out
    and an epoch stays cheap.
    """
    assert num_records > 0, "a centre needs records to train"
    if configured > 0:
        return min(configured, num_records)
    return max(1, min(num_records, max(MIN_BATCH, min(MAX_BATCH, num_records // 16))))


@dataclass(frozen=True)
class SamplingPlan:
    """How a centre samples its batches: rate ``sample_rate`` (0-1), ``steps_per_epoch``."""

    num_records: int
    batch_size: int

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(self.num_records / self.batch_size)

    @property
    def sample_rate(self) -> float:
        return 1.0 / self.steps_per_epoch


def _accountant(name: str) -> IAccountant:
    """A fresh Opacus accountant of one of :data:`common.config.ACCOUNTANTS`."""
    if name not in ACCOUNTANTS:
        raise ValueError(f"Unknown accountant '{name}' (use one of {', '.join(ACCOUNTANTS)}).")
    accountant: IAccountant = create_accountant(name)
    return accountant


@lru_cache(maxsize=1024)
def calibrate_noise(
    epsilon: float, delta: float, sample_rate: float, steps: int, accountant: str = "rdp"
) -> float:
    """Smallest noise multiplier so that ``steps`` steps at ``sample_rate`` spend at most
    ``epsilon`` at ``delta`` (Opacus's search, tolerance 0.01 in epsilon)."""
    return float(
        get_noise_multiplier(
            target_epsilon=epsilon,
            target_delta=delta,
            sample_rate=sample_rate,
            steps=steps,
            accountant=accountant,
            epsilon_tolerance=0.01,
            **({"alphas": list(RDP_ORDERS)} if accountant == "rdp" else {}),
        )
    )


@lru_cache(maxsize=1024)
def _rdp_per_step(noise_multiplier: float, sample_rate: float) -> tuple[float, ...]:
    """RDP of one step at every order of ``RDP_ORDERS``. RDP composes additively, so
    ``steps`` steps cost ``steps`` times this: computed once per centre, not per round
    (each computation costs more than a local epoch)."""
    rdp = compute_rdp(q=sample_rate, noise_multiplier=noise_multiplier, steps=1,
                      orders=list(RDP_ORDERS))
    return tuple(float(value) for value in np.atleast_1d(rdp))


def _entries(history: list[tuple[float, float, int]]) -> list[tuple[float, float, int]]:
    """The mechanisms of ``history`` that took at least one step."""
    return [(float(z), float(q), int(t)) for z, q, t in history if int(t) > 0]


def _history_rdp(entries: list[tuple[float, float, int]]) -> npt.NDArray[np.float64]:
    """RDP of ``entries`` at every order of ``RDP_ORDERS`` (composed: summed)."""
    return np.asarray(sum(np.asarray(_rdp_per_step(z, q)) * t for z, q, t in entries),
                      dtype=np.float64)


def composed_epsilon(
    history: list[tuple[float, float, int]], delta: float, accountant: str = "rdp"
) -> float:
    """Epsilon at ``delta`` of a sequence of subsampled Gaussian mechanisms, each given
    as (noise multiplier, sample rate, steps); 0 for an empty history."""
    entries = _entries(history)
    if not entries:
        return 0.0
    if accountant == "rdp":
        epsilon, _ = get_privacy_spent(orders=list(RDP_ORDERS), rdp=_history_rdp(entries),
                                       delta=delta)
        return float(epsilon)
    acc = _accountant(accountant)
    acc.history = entries
    return float(acc.get_epsilon(delta=delta))


#: Where each of :data:`FILTER_ORDERS` stands in ``RDP_ORDERS``.
_FILTER_INDICES = [next(i for i, order in enumerate(RDP_ORDERS) if abs(order - wanted) < 1e-9)
                   for wanted in FILTER_ORDERS]


def filter_epsilon(
    history: list[tuple[float, float, int]], delta: float, accountant: str = "rdp"
) -> float:
    """A student's lifetime epsilon as the individual filter checks it against the cap:
    the history's RDP at each of :data:`FILTER_ORDERS`, converted at ``delta`` / k (k the
    number of those orders), the best order taken. Always at least
    :func:`composed_epsilon` at ``delta``. Other accountants: :func:`composed_epsilon`
    (the filter's argument is RDP's; the floor refuses them unless a policy allows)."""
    entries = _entries(history)
    if not entries:
        return 0.0
    if accountant != "rdp":
        return composed_epsilon(entries, delta, accountant)
    with warnings.catch_warnings():
        # The grid is fixed by design (it is what the union bound pays for): a small
        # history whose best order would lie past it is far from any cap.
        warnings.filterwarnings("ignore", message="Optimal order is the largest alpha")
        epsilon, _ = get_privacy_spent(orders=list(FILTER_ORDERS),
                                       rdp=_history_rdp(entries)[_FILTER_INDICES],
                                       delta=delta / len(FILTER_ORDERS))
    return float(epsilon)


def epsilon_spent(
    noise_multiplier: float, sample_rate: float, steps: int, delta: float, accountant: str = "rdp"
) -> float:
    """Cumulative epsilon at ``delta`` after ``steps`` DP-SGD steps (0 when no step).

    RDP: the same figure as Opacus's ``RDPAccountant`` with history
    ``[(noise_multiplier, sample_rate, steps)]``, from the cached one-step RDP."""
    if steps <= 0:
        return 0.0
    if accountant == "rdp":
        rdp = np.asarray(_rdp_per_step(noise_multiplier, sample_rate)) * steps
        epsilon, _ = get_privacy_spent(orders=list(RDP_ORDERS), rdp=rdp, delta=delta)
        return float(epsilon)
    acc = _accountant(accountant)
    acc.history = [(noise_multiplier, sample_rate, steps)]
    return float(acc.get_epsilon(delta=delta))


# How a run's evaluation budget is shared, as multiples of the equity audit's noise
# multiplier (measured on the demo, docs/PRIVACY.md "Spending the evaluation budget"):
# the audit's counts are the scarcest (six attributes share one release and each group
# is a small part of the held-out students), so they get the least noise; the final
# pooled histogram, over all held-out students, keeps the released AUC within about
# 0.01 of the exact one at 1.5 times it; intermediate rounds only show progress.
FINAL_HISTOGRAM_NOISE_FACTOR = 1.5
PROGRESS_NOISE_FACTOR = 4.0


def progress_scheduled(server_round: int, rounds: int, every: int) -> bool:
    """Whether an intermediate round ``server_round`` (< ``rounds``) releases its score
    histogram: after rounds ``every``, 2 ``every``, ... (``every`` 0: never)."""
    return 0 < server_round < rounds and every > 0 and server_round % every == 0


def evaluation_scheduled(server_round: int, rounds: int, every: int) -> bool:
    """Whether the run evaluates after ``server_round``: its scheduled progress rounds
    and always the final round (``evaluation.progress_every``)."""
    return server_round == rounds or progress_scheduled(server_round, rounds, every)


def progress_releases(through_round: int, rounds: int, every: int) -> int:
    """Scheduled progress releases by the end of ``through_round``."""
    last = min(through_round, rounds - 1)
    return 0 if every <= 0 or last <= 0 else last // every


@dataclass(frozen=True)
class EvaluationNoise:
    """Gaussian noise multipliers (std / L2 sensitivity) of a run's evaluation releases:
    ``progress`` for each scheduled intermediate round's score histogram (after rounds
    ``progress_every``, 2 ``progress_every``, ...), ``final`` for the last round's
    histogram and ``audit`` for the equity-audit counts, released once, in the audit
    exchange that follows the final round."""

    final: float
    progress: float
    rounds: int
    audit: float = 0.0
    progress_every: int = 1
    #: Each audit attribute's std relative to equal shares (:func:`audit_scales`);
    #: empty: equal. The multiplier ``audit`` is that of the whole release either way.
    audit_scales: tuple[tuple[str, float], ...] = ()

    def audit_stds(self) -> dict[str, float]:
        """The std of the noise on each count of each audit attribute's cells (sensitivity
        1 per attribute): ``audit`` times sqrt(number of attributes) times its scale."""
        scales = dict(self.audit_scales)
        return {g.name: self.audit * AUDIT_L2 * scales.get(g.name, 1.0) for g in AUDIT_GROUPS}

    @classmethod
    def scaled(cls, audit: float, rounds: int, progress_every: int = 1) -> EvaluationNoise:
        """The run's multipliers for an audit multiplier ``audit``, in the fixed shares."""
        return cls(audit * FINAL_HISTOGRAM_NOISE_FACTOR, audit * PROGRESS_NOISE_FACTOR,
                   rounds, audit, progress_every)

    def scheduled(self, server_round: int) -> bool:
        """Whether the run evaluates after ``server_round``."""
        return evaluation_scheduled(server_round, self.rounds, self.progress_every)

    def round_mechanisms(self, server_round: int) -> list[tuple[float, float, int]]:
        """What the evaluation of ``server_round`` releases (accountant rows, q = 1): the
        score histogram; nothing at an unscheduled round."""
        if server_round >= self.rounds:
            return [(self.final, 1.0, 1)]
        return [(self.progress, 1.0, 1)] if self.scheduled(server_round) else []

    def audit_mechanisms(self) -> list[tuple[float, float, int]]:
        """What the audit exchange releases (the equity counts, once a run)."""
        return [(self.audit, 1.0, 1)]

    def history(self, through_round: int) -> list[tuple[float, float, int]]:
        """Releases made by the end of ``through_round``, the audit counted with the
        final round (accountant history, q = 1)."""
        progress = progress_releases(through_round, self.rounds, self.progress_every)
        final = 1 if through_round >= self.rounds else 0
        return [(self.progress, 1.0, progress), (self.final, 1.0, final),
                (self.audit, 1.0, final)]


@lru_cache(maxsize=256)
def calibrate_evaluation_noise(epsilon: float, delta: float, rounds: int,
                               progress_every: int = 1, accountant: str = "rdp"
                               ) -> EvaluationNoise:
    """Noise for the evaluation releases of a ``rounds``-round run (progress histograms
    every ``progress_every`` rounds) so that, composed, they spend at most ``epsilon``
    at ``delta`` with ``accountant`` (the one the run books with, as its training's
    noise is calibrated). Held-out students never enter training (``common.split``), so
    this budget is separate from training's by parallel composition: the run's guarantee
    is the larger of the two."""
    low, high = 0.1, 1000.0
    # PRV costs 0.2 s a composition: 20 halvings of the log-range (1e4) leave the
    # multiplier within 1e-5 of itself, far below PRV's own error.
    steps = 60 if accountant == "rdp" else 20
    for _ in range(steps):  # bisection on the audit multiplier; epsilon falls as it grows
        middle = math.sqrt(low * high)
        if composed_epsilon(EvaluationNoise.scaled(middle, rounds, progress_every)
                            .history(rounds), delta, accountant) > epsilon:
            low = middle
        else:
            high = middle
    return EvaluationNoise.scaled(high, rounds, progress_every)


def run_evaluation_noise(config: RunConfig, delta: float | None = None) -> EvaluationNoise:
    """The run's evaluation noise at ``delta`` (the run's by default), with the run's
    shares of the audit's noise between its attributes (``evaluation.audit_weights``)."""
    privacy = config.privacy
    noise = calibrate_evaluation_noise(privacy.epsilon,
                                       privacy.delta if delta is None else delta,
                                       config.rounds, config.evaluation.progress_every,
                                       privacy.accountant)
    scales = audit_scales(config)
    if len(set(scales.values())) <= 1:
        return noise
    return dataclasses.replace(noise, audit_scales=tuple(scales.items()))


def audit_noise_std(config: RunConfig, delta: float | None = None) -> float:
    """Std of the Gaussian noise a centre adds to each count of its equity-audit cells
    (0 without evaluation noise): the audit multiplier, calibrated at ``delta`` (the
    run's by default; a centre uses the smaller of its own and the run's), times the
    cells' L2 sensitivity, sqrt(number of audit attributes), as each student counts once
    per attribute. The server uses it to put the noise into the audit's intervals."""
    privacy = config.privacy
    if not (privacy.dp and privacy.evaluation_noise):
        return 0.0
    return run_evaluation_noise(config, delta).audit * math.sqrt(len(AUDIT_GROUPS))


def audit_scales(config: RunConfig) -> dict[str, float]:
    """Each audit attribute's noise std relative to equal shares
    (``evaluation.audit_weights``): ``sqrt(sum(w) / (n * w[a]))`` for ``n`` attributes,
    1 each when the weights are equal. Whatever the weights, ``sum(1 / scale**2)`` is
    ``n``: with each student counted once per attribute, the cells' noise std
    ``audit_noise_std * scale[a]`` is a Gaussian mechanism of the audit's multiplier
    (``sum_a (1 / std_a)**2 = 1 / multiplier**2``), so the ledger's row and the
    guarantee do not depend on them; only where the precision goes does."""
    weights = config.evaluation.audit_weight_map
    total = sum(weights.values())
    return {name: math.sqrt(total / (len(weights) * w)) for name, w in weights.items()}


def audit_noise_stds(config: RunConfig) -> dict[str, float]:
    """Std of the noise on each count of each audit attribute's cells at the run's
    delta (:func:`audit_noise_std` times :func:`audit_scales`; 0 without evaluation
    noise): the ministry's, for the audit's intervals."""
    if not (config.privacy.dp and config.privacy.evaluation_noise):
        return {g.name: 0.0 for g in AUDIT_GROUPS}
    return run_evaluation_noise(config).audit_stds()


# The number of training records a centre reports (FedAvg's weight) is a count: it gets
# Gaussian noise of this std (sensitivity 1), a negligible share of the budget.
COUNT_NOISE_MULTIPLIER = 50.0


def training_history(
    noise_multiplier: float, sample_rate: float, steps: int, rounds: int
) -> list[tuple[float, float, int]]:
    """A centre's training releases: ``steps`` DP-SGD steps and ``rounds`` noisy counts."""
    return [(noise_multiplier, sample_rate, steps), (COUNT_NOISE_MULTIPLIER, 1.0, rounds)]


#: A folder where processes of one run share their noise plans (the simulation engine
#: sets it for its actors); unset, each process plans alone (its ``lru_cache``).
NOISE_PLAN_CACHE_ENV = "PERSEVERANCE_NOISE_PLANS"
#: The bisection's precision: the plan's multiplier divided by this spends too much.
PLAN_TOLERANCE = 1.005


def _plan_spends(noise_multiplier: float, key: tuple[float, float, float, int, int, str]
                 ) -> float:
    _, delta, sample_rate, steps, rounds, accountant = key
    return composed_epsilon(training_history(noise_multiplier, sample_rate, steps, rounds),
                            delta, accountant)


def _shared_plan_path(key: tuple[float, float, float, int, int, str]) -> Path | None:
    folder = os.environ.get(NOISE_PLAN_CACHE_ENV)
    if not folder:
        return None
    return Path(folder) / f"training-{hashlib.sha256(repr(key).encode()).hexdigest()}.json"


def _shared_plan(key: tuple[float, float, float, int, int, str]) -> float | None:
    """A plan another process of the run wrote, if it is the plan this process would
    make: it spends at most the target, and a multiplier smaller by the bisection's
    precision spends more. Whatever the file holds, a plan that fails either check is
    ignored (planned again): the cache can never make the centre spend more than the
    target, nor add more noise than the bisection would, beyond its precision."""
    path = _shared_plan_path(key)
    if path is None or not path.is_file():
        return None
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
        value = float(stored["noise_multiplier"])
        same = stored["key"] == json.loads(json.dumps(list(key)))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    epsilon = key[0]
    if not (same and math.isfinite(value) and value > 0):
        return None
    if _plan_spends(value, key) > epsilon or _plan_spends(value / PLAN_TOLERANCE, key) <= epsilon:
        return None
    return value


def _share_plan(key: tuple[float, float, float, int, int, str], value: float) -> None:
    path = _shared_plan_path(key)
    if path is None:
        return
    from common.files import atomic_write_bytes

    try:
        # Not fsynced (issue 32): one engine's folder, removed at its stop, and a plan
        # read back is checked (``_shared_plan``) or planned again.
        atomic_write_bytes(path, json.dumps({"key": list(key), "noise_multiplier": value})
                           .encode(), durable=False)
    except OSError:
        return  # a cache: planning again is always correct


@lru_cache(maxsize=1024)
def calibrate_training_noise(
    epsilon: float, delta: float, sample_rate: float, steps: int, rounds: int,
    accountant: str = "rdp",
) -> float:
    """Smallest DP-SGD noise multiplier (within 0.5 %) such that ``steps`` steps at
    ``sample_rate`` plus ``rounds`` noisy counts spend at most ``epsilon`` at ``delta``.

    Cached per process and, when ``$PERSEVERANCE_NOISE_PLANS`` names a folder, shared
    there by the processes of a run (checked on reading: :func:`_shared_plan`)."""
    key = (float(epsilon), float(delta), float(sample_rate), int(steps), int(rounds),
           str(accountant))
    shared = _shared_plan(key)
    if shared is not None:
        return shared
    value = _plan_training_noise(*key)
    _share_plan(key, value)
    return value


def _plan_training_noise(epsilon: float, delta: float, sample_rate: float, steps: int,
                         rounds: int, accountant: str) -> float:
    """The bisection behind :func:`calibrate_training_noise`: with RDP, searched on the
    few orders around the optimal one (:func:`_plan_on_near_orders`), else on every
    order."""
    if accountant == "rdp":
        planned = _plan_on_near_orders(epsilon, delta, sample_rate, steps, rounds)
        if planned is not None:
            return planned
    return _plan_on_every_order(epsilon, delta, sample_rate, steps, rounds, accountant)


def _plan_on_every_order(epsilon: float, delta: float, sample_rate: float, steps: int,
                         rounds: int, accountant: str) -> float:
    high = calibrate_noise(epsilon, delta, sample_rate, steps, accountant)
    while composed_epsilon(training_history(high, sample_rate, steps, rounds), delta,
                           accountant) > epsilon:
        high *= 1.25
    low = high / 1.5
    while high / low > PLAN_TOLERANCE:
        middle = math.sqrt(low * high)
        spent = composed_epsilon(training_history(middle, sample_rate, steps, rounds), delta,
                                 accountant)
        if spent > epsilon:
            low = middle
        else:
            high = middle
    return high


#: Offsets, in ``RDP_ORDERS``, of the orders the planning search computes around the
#: optimal one: dense near it, sparse far from it, so the window follows the optimum
#: across the whole range in a few steps.
NEAR_ORDERS = (0, 1, 2, 4, 8, 16, 32)


def _plan_on_near_orders(epsilon: float, delta: float, sample_rate: float, steps: int,
                         rounds: int) -> float | None:
    """The bisection on a few of ``RDP_ORDERS`` around the order that is optimal for the
    multiplier last tried (:data:`NEAR_ORDERS`): an epsilon taken on fewer orders is
    never below the one on all of them (it is a minimum over orders), so a multiplier
    they find enough is enough; the plan, and the one below it by the bisection's
    precision, are checked on every order at the end. None when that check fails: the
    caller searches on every order.

    RDP's cost is one series per order (Opacus's ``compute_rdp``): on the 13 or so
    orders of the window a plan cost about a quarter of the search on all 179
    (27 plans, 29.3 s against 7.4 s: docs/BENCHMARKS.md)."""
    orders = list(RDP_ORDERS)
    counts = (np.asarray(_rdp_per_step(COUNT_NOISE_MULTIPLIER, 1.0)) * rounds
              if rounds > 0 else np.zeros(len(orders)))
    optimal = [orders.index(12)]  # moved to the optimal order at each step

    def spends(sigma: float) -> float:
        while True:  # until the optimum is the window's centre
            near = sorted({min(max(optimal[0] + sign * offset, 0), len(orders) - 1)
                           for offset in NEAR_ORDERS for sign in (-1, 1)})
            chosen = [orders[i] for i in near]
            with warnings.catch_warnings():  # an optimum on the window's edge: moved
                warnings.simplefilter("ignore", UserWarning)
                rdp = steps * np.atleast_1d(compute_rdp(
                    q=sample_rate, noise_multiplier=sigma, steps=1, orders=chosen))
                spent, best = get_privacy_spent(orders=chosen, rdp=rdp + counts[near],
                                                delta=delta)
            if orders.index(best) == optimal[0]:
                return float(spent)
            optimal[0] = orders.index(best)

    low, high = 0.5, 1.0
    while spends(high) > epsilon:
        low, high = high, high * 2
        if high > 1e4:
            return None
    while spends(low) <= epsilon and low > 1e-2:
        low, high = low / 2, low
    while high / low > PLAN_TOLERANCE:
        middle = math.sqrt(low * high)
        if spends(middle) > epsilon:
            low = middle
        else:
            high = middle
    history = training_history(high, sample_rate, steps, rounds)
    if (composed_epsilon(history, delta) > epsilon
            or composed_epsilon(training_history(high / PLAN_TOLERANCE, sample_rate, steps,
                                                 rounds), delta) <= epsilon):
        return None
    return high


@dataclass(frozen=True)
class NoiseShare:
    """The discrete Gaussian noise one centre adds to its secure evaluation counts
    (``client.privacy.secure_evaluation.secure_release``): std ``histogram`` on each count of the
    round's score histogram (0 in the audit exchange), ``audit`` on each count of the
    equity cells (the audit exchange only, else 0); ``distributed`` when these are its
    share of the run's noise (the sum over the round's centres carries the run's), else
    the whole of it. ``rows``: what the centre books (ledger rows, q = 1): under its
    'alone' trust model (the default) what its own release costs ALONE, since a ministry
    colluding with other centres, or a SecAgg+ that fails, sees its release; under the
    'secure-aggregation' model (:class:`HonestSum`) what the SUM of the honest shares any
    sum the ministry can unmask holds costs."""

    histogram: float
    audit: float
    distributed: bool
    rows: tuple[tuple[float, float, int], ...]
    #: The std on each count of each attribute's cells when they differ
    #: (``evaluation.audit_weights``; each a share floored as ``audit`` is); empty:
    #: ``audit`` for all.
    audit_by_attribute: tuple[tuple[str, float], ...] = ()

    def audit_stds(self) -> dict[str, float]:
        """The std on each count of each audit attribute's cells."""
        return dict(self.audit_by_attribute) or {g.name: self.audit for g in AUDIT_GROUPS}


AUDIT_L2 = math.sqrt(len(AUDIT_GROUPS))  # one count per audit attribute per student


#: Counts of the audit exchange's release: each equity cell's score bands by label.
AUDIT_DIM = 2 * GROUP_BINS * len(all_cell_keys())


@dataclass(frozen=True)
class HonestSum:
    """The 'secure-aggregation' trust model of a centre's site policy
    (``distributed_noise_trust``, docs/PRIVACY.md "Distributed noise: what a centre
    books, and whom it trusts"): SecAgg+ unmasks no sum of fewer than t shares (each
    centre has at least t surviving neighbours, itself included, or the round halts), and
    at most ``max_colluding_centres`` c of them collude with an honest-but-curious
    ministry, so any sum the ministry can unmask holds at least ``summands`` = t - c
    honest shares, whose noise no colluder knows. The centre books what that sum costs:
    the distributed discrete Gaussian's bound (:func:`summed_rows`) over ``summands``
    shares of the run's noise ``noise`` (calibrated at the RUN's delta: every centre
    following the run calibrates at the smaller of its own delta and the run's, so no
    honest share is smaller); ``histogram_dim``: counts of the score histogram (2 x
    bins)."""

    summands: int
    noise: EvaluationNoise
    histogram_dim: int
    audit_dim: int = AUDIT_DIM

    def histogram_rows(self, server_round: int, survivors_min: int
                       ) -> tuple[tuple[float, float, int], ...]:
        """The rows of the round's histogram sum (none at an unscheduled round)."""
        return tuple(summed_rows(noise_share(self.noise, server_round, survivors_min),
                                 self.summands, self.histogram_dim, self.audit_dim))

    def audit_rows(self, survivors_min: int) -> tuple[tuple[float, float, int], ...]:
        """The rows of the audit exchange's sum."""
        return tuple(summed_rows(audit_share(self.noise, survivors_min), self.summands,
                                 self.histogram_dim, self.audit_dim))


def _share(std: float, survivors_min: int | None) -> float:
    return std if survivors_min is None else max(std / math.sqrt(survivors_min),
                                                 MIN_SHARE_STD)


def noise_share(noise: EvaluationNoise, server_round: int,
                survivors_min: int | None = None, honest: HonestSum | None = None
                ) -> NoiseShare:
    """A centre's noise for the evaluation of ``server_round`` (its score histogram):
    the run's whole noise, or with ``survivors_min`` (the fewest centres its SecAgg+
    round can finish with: the reconstruction threshold it was sent) a
    1/``survivors_min`` share of the variance, never below ``MIN_SHARE_STD``, so that
    any surviving set's sum carries at least the run's noise. An unscheduled round
    releases nothing (no rows). ``honest``: the share is booked under the
    'secure-aggregation' trust model (its rows are the honest sum's), else alone."""
    if not noise.scheduled(server_round):
        return NoiseShare(0.0, 0.0, survivors_min is not None, ())
    final = server_round >= noise.rounds
    histogram = _share(noise.final if final else noise.progress, survivors_min)
    rows: tuple[tuple[float, float, int], ...] = ((histogram, 1.0, 1),)
    if honest is not None and survivors_min is not None:
        rows = honest.histogram_rows(server_round, survivors_min)
    return NoiseShare(histogram, 0.0, survivors_min is not None, rows)


def audit_share(noise: EvaluationNoise, survivors_min: int | None = None,
                honest: HonestSum | None = None) -> NoiseShare:
    """A centre's noise for the audit exchange (the equity cells, L2 sensitivity
    ``AUDIT_L2``), whole or shared as in :func:`noise_share`. With the run's attributes
    at different stds (``EvaluationNoise.audit_scales``) each attribute's is shared and
    floored on its own, and its rows are one per attribute (sensitivity 1 each: their
    composition is the release's cost, the audit multiplier when nothing is floored).
    ``honest``: booked under the 'secure-aggregation' trust model, as in
    :func:`noise_share`."""
    audit = _share(noise.audit * AUDIT_L2, survivors_min)
    distributed = survivors_min is not None
    booked = None
    if honest is not None and survivors_min is not None:
        booked = honest.audit_rows(survivors_min)
    if not noise.audit_scales:
        return NoiseShare(0.0, audit, distributed,
                          booked or ((audit / AUDIT_L2, 1.0, 1),))
    stds = {name: _share(std, survivors_min) for name, std in noise.audit_stds().items()}
    return NoiseShare(0.0, audit, distributed,
                      booked or tuple((std, 1.0, 1) for std in stds.values()),
                      tuple(stds.items()))


def run_shares(noise: EvaluationNoise, survivors_min: int | None = None,
               honest: HonestSum | None = None) -> list[tuple[float, float, int]]:
    """Every ledger row the run's evaluation releases book at a centre, in advance
    (the per-student cohorts price them): the scheduled histograms and the audit."""
    rows = [row for r in range(1, noise.rounds + 1)
            for row in noise_share(noise, r, survivors_min, honest).rows]
    return [*rows, *audit_share(noise, survivors_min, honest).rows]


def reserved_rows(noise: EvaluationNoise, server_round: int, audit: bool,
                  survivors_min: int | None = None, honest: HonestSum | None = None
                  ) -> list[tuple[float, float, int]]:
    """The run's evaluation releases still to come after this one (the scheduled rounds
    after ``server_round`` and, unless this is the ``audit``, the audit): a centre checks
    its budget with them reserved, so a release asked twice (a new model version for a
    round already evaluated) goes past the run's target instead of using the budget the
    schedule keeps for the audit."""
    if audit:
        return []
    rows = [row for r in range(server_round + 1, noise.rounds + 1)
            for row in noise_share(noise, r, survivors_min, honest).rows]
    return [*rows, *audit_share(noise, survivors_min, honest).rows]


def summed_rows(share: NoiseShare, summands: int, histogram_dim: int, audit_dim: int,
                whole: EvaluationNoise | None = None, final: bool = True
                ) -> list[tuple[float, float, int]]:
    """Accountant rows (q = 1) bounding what the SUM of one exchange's secure releases
    costs a student: ``summands`` centres that added ``share`` (the distributed discrete
    Gaussian's bound, ``common.discrete_gaussian.sum_multiplier``), or, when a centre
    that added the whole noise ``whole`` is among them, that centre's release alone if
    it bounds more (the others' noise is independent of the data: post-processing).
    ``final``: a histogram share is the final round's (else a progress round's)."""
    rows: list[float] = []
    full: list[float] = []
    if share.histogram > 0:
        rows.append(sum_multiplier(share.histogram, summands, 1.0, histogram_dim))
        if whole is not None:
            full.append(whole.final if final else whole.progress)
    if share.audit > 0 and not share.audit_by_attribute:
        rows.append(sum_multiplier(share.audit, summands, AUDIT_L2**2, audit_dim))
        if whole is not None:
            full.append(whole.audit)
    elif share.audit > 0:  # one bound per attribute (sensitivity 1, its share of the counts)
        cells = sum(len(g.cells) for g in AUDIT_GROUPS)
        stds = share.audit_stds()
        for group in AUDIT_GROUPS:
            dim = round(audit_dim * len(group.cells) / cells)
            rows.append(sum_multiplier(stds[group.name], summands, 1.0, dim))
        if whole is not None:
            full.extend(whole.audit_stds().values())
    if whole is not None:
        rows = [max(r, f) for r, f in zip(rows, full, strict=True)]
    return [(z, 1.0, 1) for z in rows]
