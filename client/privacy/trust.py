"""What a centre checks of a SecAgg+ round before it releases anything through it, and
how it books a share of distributed noise under its trust model.

SecAgg+ (Flower 1.42's ``secaggplus_mod``) keeps, in the node's state, the settings the
ministry sent at the round's setup stage: how many centres the round sampled
(``sample_num``), how many of them each centre shares its mask secrets with, itself
included (``share_num``), and how many shares unmask (``threshold``, t); after the
share-keys stage, the neighbours whose public keys it received (``public_keys_dict``).
The centre refuses the round (before any record is read or any release booked):

- ``Reason.SECAGG_SETTINGS`` (reply 1003) when those settings are inconsistent
  (2 <= t <= share_num <= sample_num, t above half of share_num, at most share_num and
  at least t neighbours) or differ from what the run's configuration declares
  (``privacy.secagg_shares``, ``privacy.secagg_threshold``), computed as Flower's
  ``SecAggPlusWorkflow`` computes them from the fractions (:func:`declared_setup`);
- ``Reason.SECAGG_TRUST`` (reply 1004) when the centre books distributed noise under the
  'secure-aggregation' trust model (``PrivacyFloor.distributed_noise_trust``) and the
  round's t does not support it: t <= c (``max_colluding_centres``: colluders alone could
  rebuild a centre's secrets), or the run's evaluation booked as the SUM of t - c honest
  shares (``common.privacy.accounting.HonestSum``) would pass the floor's
  ``max_epsilon_per_run``.

Both are functions of the run's configuration, the ministry's SecAgg+ settings and the
centre's policy only: public (``common.releases``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from client.errors import CentreRefusal
from client.privacy.run_plan import BUDGET_SLACK
from client.site_policy import PrivacyFloor
from common.config import RunConfig
from common.privacy.accounting import (
    EvaluationNoise,
    HonestSum,
    composed_epsilon,
    run_evaluation_noise,
    run_shares,
)
from common.protocol import Reason, Reply


@dataclass(frozen=True)
class SecAggSetup:
    """The SecAgg+ settings a centre's ``secaggplus_mod`` received at the round's setup
    stage: centres ``sampled``, ``shares`` (each centre's neighbourhood, itself
    included), ``threshold`` t; ``neighbours``: public keys received at the share-keys
    stage (None before it)."""

    sampled: int
    shares: int
    threshold: int
    neighbours: int | None = None

    @classmethod
    def of_state(cls, state: Mapping[str, object] | None) -> SecAggSetup | None:
        """The settings in ``secaggplus_mod``'s state record (None outside a SecAgg+
        round: no state, or no setup stage yet)."""
        if state is None:
            return None
        values = [state.get(key) for key in ("sample_num", "share_num", "threshold")]
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            return None
        sampled, shares, threshold = (int(v) for v in values)  # type: ignore[call-overload]
        if sampled <= 0:
            return None  # Flower's state before its setup stage: zeros
        keys = state.get("public_keys_dict:K")
        return cls(sampled, shares, threshold,
                   len(keys) if isinstance(keys, list) and keys else None)


def declared_setup(config: RunConfig, sampled: int) -> tuple[int, int]:
    """(share_num, threshold) that the run's ``privacy.secagg_shares`` and
    ``privacy.secagg_threshold`` (fractions) give for ``sampled`` centres, as Flower
    1.42's ``SecAggPlusWorkflow.setup_stage`` computes them: the shares rounded and made
    odd below all the centres (all of them when 2 or fewer), the threshold rounded, at
    least 2."""
    shares = round(config.privacy.secagg_shares * sampled)
    if shares < sampled and shares % 2 == 0:
        shares += 1
    if shares <= 2:
        shares = sampled
    return shares, max(round(config.privacy.secagg_threshold * shares), 2)


def setup_problems(config: RunConfig, setup: SecAggSetup) -> list[str]:
    """What is wrong with ``setup`` (for the centre's log): inconsistent settings, or
    settings other than the run declares."""
    problems = []
    if not 2 <= setup.threshold <= setup.shares <= setup.sampled:
        problems.append(f"threshold {setup.threshold}, shares {setup.shares} and sampled "
                        f"centres {setup.sampled} are not 2 <= t <= shares <= sampled")
    if 2 * setup.threshold <= setup.shares:
        problems.append(f"threshold {setup.threshold} is not above half of the shares "
                        f"{setup.shares}")
    if setup.neighbours is not None and not setup.threshold <= setup.neighbours \
            <= setup.shares:
        problems.append(f"{setup.neighbours} neighbours' keys received, not between the "
                        f"threshold {setup.threshold} and the shares {setup.shares}")
    declared = declared_setup(config, setup.sampled)
    if (setup.shares, setup.threshold) != declared:
        problems.append(
            f"shares {setup.shares} and threshold {setup.threshold} for {setup.sampled} "
            f"centres, where the run declares privacy.secagg_shares = "
            f"{config.privacy.secagg_shares:g} and privacy.secagg_threshold = "
            f"{config.privacy.secagg_threshold:g}: {declared[0]} and {declared[1]}")
    return problems


def check_setup(config: RunConfig, setup: SecAggSetup | None) -> None:
    """Raise ``CentreRefusal`` (``Reply.CONFIG``, ``Reason.SECAGG_SETTINGS``) if the
    round's SecAgg+ settings are inconsistent or not the run's (nothing to check
    outside a SecAgg+ round)."""
    problems = [] if setup is None else setup_problems(config, setup)
    if problems:
        raise CentreRefusal(f"{Reason.SECAGG_SETTINGS} ({'; '.join(problems)})",
                            Reason.SECAGG_SETTINGS, Reply.CONFIG)


def distributes(config: RunConfig, floor: PrivacyFloor) -> bool:
    """Whether the centre adds a share of distributed noise in this run (secure mode's
    ``privacy.distributed_noise``, allowed by its floor, with evaluation noise)."""
    privacy = config.privacy
    return bool(privacy.secure_aggregation and privacy.distributed_noise and privacy.dp
                and privacy.evaluation_noise and floor.allow_distributed_noise)


def honest_sum(config: RunConfig, floor: PrivacyFloor, threshold: int | None
               ) -> HonestSum | None:
    """How the centre books its share in a round of reconstruction threshold
    ``threshold``: the honest sum under the 'secure-aggregation' trust model, None
    under 'alone' (or without a share). Call :func:`check_trust` first: it refuses a
    threshold that leaves no honest share."""
    if threshold is None or not distributes(config, floor):
        return None
    summands = floor.honest_shares(threshold)
    if summands is None or summands < 1:
        return None
    return HonestSum(summands, run_evaluation_noise(config), 2 * config.evaluation.bins)


def run_epsilon(config: RunConfig, noise: EvaluationNoise, floor: PrivacyFloor,
                threshold: int) -> float:
    """What the run's evaluation releases, all of them at this threshold, book at the
    centre under its trust model, at its delta."""
    return composed_epsilon(run_shares(noise, threshold, honest_sum(config, floor, threshold)),
                            floor.delta, config.privacy.accountant)


def check_trust(config: RunConfig, floor: PrivacyFloor, threshold: int | None) -> None:
    """Raise ``CentreRefusal`` (``Reply.FLOOR``, ``Reason.SECAGG_TRUST``) when the
    centre books its share under the 'secure-aggregation' trust model and a round of
    reconstruction threshold ``threshold`` cannot support it: t <= c, or the run's
    evaluation booked at that threshold would pass the floor's ``max_epsilon_per_run``
    (t - c too small). A function of the configuration, the
    round's threshold and the policy: nothing read, nothing booked."""
    if threshold is None or not distributes(config, floor):
        return
    summands = floor.honest_shares(threshold)
    if summands is None:
        return
    detail = (f"threshold t = {threshold}, the policy's max_colluding_centres c = "
              f"{floor.max_colluding_centres}")
    if summands < 1:
        raise CentreRefusal(f"{Reason.SECAGG_TRUST} ({detail}: c >= t, colluding centres "
                            "could rebuild a centre's mask secrets)",
                            Reason.SECAGG_TRUST, Reply.FLOOR)
    noise = run_evaluation_noise(config, floor.delta_for(config))
    epsilon = run_epsilon(config, noise, floor, threshold)
    if epsilon > floor.max_epsilon_per_run * (1 + BUDGET_SLACK):
        raise CentreRefusal(
            f"{Reason.SECAGG_TRUST} ({detail}: the run's evaluation booked as the sum of "
            f"t - c = {summands} honest shares would cost {epsilon:.3f} at delta "
            f"{floor.delta:g}, past the floor's {floor.max_epsilon_per_run:g} per run)",
            Reason.SECAGG_TRUST, Reply.FLOOR)
