"""What a centre releases when it evaluates the global model, and the noise it adds.

Without DP the release is exact: score histograms by label over ``evaluation.bins``
fixed bins (``common.metrics``), and the equity audit's per-group counts. With DP
(``privacy.dp`` and ``privacy.evaluation_noise``), each count gets Gaussian noise and
the release is booked in the centre's ledger before it leaves:
- every round, the score histogram (each held-out student adds 1 to one bin: L2
  sensitivity 1) with noise multiplier ``progress`` (intermediate rounds) or ``final``;
- at the final round, also the equity counts (one count per audit attribute: L2
  sensitivity sqrt(6)) with multiplier ``audit``, the smallest: the budget is spent
  where it buys the most precision (``common.privacy.FINAL_HISTOGRAM_NOISE_FACTOR``).
Probability sums and squared errors are then derived from the noisy bins (bin centres),
so they cost nothing more. The multipliers come from
``common.privacy.calibrate_evaluation_noise``: the run's evaluation releases together
stay within ``privacy.epsilon`` at ``privacy.delta``. Held-out students never train, so
this budget and training's compose in parallel (the run's guarantee is the larger).
"""

from __future__ import annotations

import math
import secrets

import numpy as np
import numpy.typing as npt

from client.data import CentreData
from client.errors import CentreRefusal
from client.ledger import BudgetExceeded, PrivacyLedger
from client.run_plan import BUDGET_SLACK, check_run_budget, run_history
from client.site_policy import PrivacyFloor
from common.config import RunConfig
from common.equity import AUDIT_GROUPS, CELL_LENGTH, all_cell_keys, centre_cells
from common.metrics import bin_centres, score_histogram
from common.privacy import (
    EvaluationNoise,
    calibrate_evaluation_noise,
    composed_epsilon,
)
from common.protocol import Reason, Reply


def noise_generator(config: RunConfig, salt: int) -> np.random.Generator:
    """OS entropy, or the run's seed for reproducible research runs only."""
    if config.privacy.reproducible_noise:
        return np.random.default_rng([config.seed, salt])
    return np.random.default_rng(secrets.randbits(128))


def evaluation_noise(config: RunConfig, floor: PrivacyFloor) -> EvaluationNoise | None:
    """The run's evaluation noise, calibrated at the smaller of the run's and the
    centre's delta (None without evaluation noise)."""
    if not (config.privacy.dp and config.privacy.evaluation_noise):
        return None
    return calibrate_evaluation_noise(config.privacy.epsilon, floor.delta_for(config),
                                      config.rounds)


def book_evaluation(config: RunConfig, data: CentreData, ledger: PrivacyLedger, run_id: str,
                    server_round: int, mechanisms: list[tuple[float, float, int]],
                    alone: bool = False) -> float:
    """Check the run's budget and book ``mechanisms`` (the round's evaluation release)
    before anything is computed into the reply; returns the run's evaluation epsilon
    at the run's delta. ``alone``: the release is a share of distributed noise, whose
    own cost is above the run's target by design (the SUM meets the target): it is
    checked against the centre's floor only (``max_epsilon_per_run`` at its delta)."""
    floor = data.policy.privacy
    what = f"evaluation of round {server_round}"
    history = [*run_history(ledger, run_id, "evaluate"), *mechanisms]
    if alone:
        at_floor = composed_epsilon(history, floor.delta, config.privacy.accountant)
        if at_floor > floor.max_epsilon_per_run * (1 + BUDGET_SLACK):
            raise CentreRefusal(
                f"This {what} (a share of distributed noise) would bring the run's "
                f"epsilon at this centre to {at_floor:.3f} at delta {floor.delta:g}, past "
                f"the floor's {floor.max_epsilon_per_run:g} per run.",
                Reason.RUN_BUDGET, Reply.REFUSED)
        epsilon = composed_epsilon(history, config.privacy.delta, config.privacy.accountant)
    else:
        epsilon = check_run_budget(history, config, floor, what)
    try:
        ledger.book(run_id=run_id, server_round=server_round, kind="evaluate",
                    mechanisms=mechanisms, delta=floor.delta, cap=data.policy.epsilon_cap)
    except BudgetExceeded as exc:
        raise CentreRefusal(str(exc), Reason.LIFETIME_CAP, Reply.REFUSED) from exc
    return epsilon


def evaluation_release(
    config: RunConfig,
    data: CentreData,
    probabilities: npt.NDArray[np.float64],
    server_round: int,
    ledger: PrivacyLedger | None,
    run_id: str,
) -> dict[str, int | float | list[float]]:
    """The metrics a centre sends for one evaluation round (see the module docstring)."""
    final = server_round >= config.rounds
    floor = data.policy.privacy
    noise = evaluation_noise(config, floor)
    bins = config.evaluation.bins
    histogram = score_histogram(probabilities, data.y_test, bins)
    pos, neg = histogram.positives.copy(), histogram.negatives.copy()
    probability_sum, squared_error = histogram.probability_sum, histogram.squared_error_sum
    rng = noise_generator(config, server_round)
    epsilon = 0.0  # what the run's booked evaluation releases spent, at the run's delta
    if noise is not None:
        multiplier = noise.final if final else noise.progress
        mechanisms = noise.round_mechanisms(server_round)
        if ledger is not None:
            epsilon = book_evaluation(config, data, ledger, run_id, server_round, mechanisms)
        pos += rng.normal(0.0, multiplier, bins)
        neg += rng.normal(0.0, multiplier, bins)
        centres = bin_centres(bins)
        probability_sum = (pos + neg) * centres
        squared_error = float((pos * (1 - centres) ** 2 + neg * centres**2).sum())
    metrics: dict[str, int | float | list[float]] = {
        "num-examples": max(0, round(float(pos.sum() + neg.sum()))),
        "epsilon": epsilon,
        "hist_pos": pos.tolist(),
        "hist_neg": neg.tolist(),
        "prob_sum": np.asarray(probability_sum).tolist(),
        "sq_err_sum": squared_error,
    }
    audit_now = final or noise is None
    if not audit_now:  # the audit is released once, with the final model: zeros before
        metrics.update({key: [0.0] * CELL_LENGTH for key in all_cell_keys()})
        return metrics
    cells = centre_cells(
        data.audit_test,
        probabilities,
        data.y_test,
        threshold=config.evaluation.threshold,
        sensitive_allowed=data.policy.audit_attributes_allowed,
        # The noise the centre books: calibrated at its own delta when that is smaller.
        noise_std=0.0 if noise is None else noise.audit * math.sqrt(len(AUDIT_GROUPS)),
        rng=rng,
    )
    metrics.update(cells)
    return metrics
