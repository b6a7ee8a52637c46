"""Privacy accounting for student-level DP-SGD, with Opacus's own accountants.

Unit of privacy: one student's record at one centre. A centre trains with Poisson
sampling at rate ``q`` (each record joins each step's batch independently with
probability ``q``), per-sample gradients clipped to ``max_grad_norm`` and Gaussian
noise of standard deviation ``noise_multiplier * max_grad_norm``. Every step of every
round composes; the epsilon reported is cumulative over the whole run, at ``delta``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from opacus.accountants import PRVAccountant, RDPAccountant
from opacus.accountants.accountant import IAccountant
from opacus.accountants.analysis.rdp import compute_rdp, get_privacy_spent
from opacus.accountants.utils import get_noise_multiplier

# Opacus's default RDP orders stop at 63; few steps at a high sampling rate need
# larger orders for a tight bound (else Opacus warns that the optimum is the largest).
RDP_ORDERS: tuple[float, ...] = (
    *(1 + x / 10.0 for x in range(1, 100)), *range(12, 64), *range(64, 257, 8), 320, 512, 1024
)
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
    if name == "rdp":
        return RDPAccountant()
    if name == "prv":
        return PRVAccountant()
    raise ValueError(f"Unknown accountant '{name}' (use rdp or prv).")


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


def composed_epsilon(
    history: list[tuple[float, float, int]], delta: float, accountant: str = "rdp"
) -> float:
    """Epsilon at ``delta`` of a sequence of subsampled Gaussian mechanisms, each given
    as (noise multiplier, sample rate, steps); 0 for an empty history."""
    entries = [(float(z), float(q), int(t)) for z, q, t in history if int(t) > 0]
    if not entries:
        return 0.0
    acc = _accountant(accountant)
    acc.history = entries
    if accountant == "rdp":
        return float(acc.get_epsilon(delta=delta, alphas=list(RDP_ORDERS)))
    return float(acc.get_epsilon(delta=delta))


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
