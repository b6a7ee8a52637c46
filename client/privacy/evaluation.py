"""What a centre releases when it evaluates the global model, and the noise it adds.

Without DP the release is exact: score histograms by label over ``evaluation.bins``
fixed bins (``common.metrics``), and the equity audit's per-group counts. With DP
(``privacy.dp`` and ``privacy.evaluation_noise``), each count gets discrete Gaussian
noise (``common.discrete_gaussian``, as in secure mode: the counts stay integers, so the
floating-point attack on textbook samplers, Mironov 2012, has no low-order bits to read;
its Renyi-DP is at most the continuous Gaussian's of the same sigma, Canonne, Kamath and
Steinke 2020, so the ledger books the same Gaussian rows) and the release is booked in
the centre's ledger before it leaves:
- at each scheduled round (``evaluation.progress_every``, and always the final one), the
  score histogram (each held-out student adds 1 to one bin: L2 sensitivity 1) with
  noise multiplier ``progress`` (intermediate rounds) or ``final``;
- once, in the audit exchange that follows the final round, the equity counts (one
  count per audit attribute: L2 sensitivity sqrt(6)) with multiplier ``audit``, the
  smallest: the budget is spent where it buys the most precision
  (``common.privacy.accounting.FINAL_HISTOGRAM_NOISE_FACTOR``). They are counted at the raw-score
  threshold the ministry sends, the one its recalibration of the final pooled histogram
  maps to ``evaluation.threshold``; the ledger books them at round ``rounds + 1``
  (:data:`AUDIT_ROUND_OFFSET`), which is how a second audit request is recognised.
The score bins are the instruction's (``common.protocol.EVALUATION_EDGES``, placed by
the ministry from the pooled histogram released before: public input, checked here) or
the fixed ones; any edges keep each count's sensitivity, since each held-out student
adds 1 to one bin. Probability sums and squared errors are then derived from the noisy
bins (bin centres),
so they cost nothing more. The multipliers come from
``common.privacy.accounting.calibrate_evaluation_noise``: the run's evaluation releases together
stay within ``privacy.epsilon`` at ``privacy.delta``. Held-out students never train, so
this budget and training's compose in parallel (the run's guarantee is the larger).
"""

from __future__ import annotations

import secrets

import numpy as np
import numpy.typing as npt

from client.errors import CentreRefusal
from client.ingest.centre_data import CentreData
from client.privacy.ledger import BudgetExceeded, PrivacyLedger
from client.privacy.run_plan import BUDGET_SLACK, check_run_budget, run_history
from client.site_policy import PrivacyFloor
from common.config import RunConfig
from common.discrete_gaussian import discrete_gaussian
from common.equity.audit import CELL_LENGTH, all_cell_keys, centre_cells
from common.metrics import bin_centres, edges_problem, padded, score_histogram
from common.privacy.accounting import (
    EvaluationNoise,
    composed_epsilon,
    evaluation_scheduled,
    reserved_rows,
    run_evaluation_noise,
)
from common.protocol import (
    EPSILON,
    HIST_NEG,
    HIST_POS,
    NUM_EXAMPLES,
    PROB_SUM,
    SQ_ERR_SUM,
    AuditRequest,
    EdgesRequest,
    Reason,
    Reply,
)

#: The audit exchange's ledger rows are booked at round ``rounds + AUDIT_ROUND_OFFSET``.
AUDIT_ROUND_OFFSET = 1


def audit_round(config: RunConfig) -> int:
    """The round number the ledger books the run's audit release at."""
    return config.rounds + AUDIT_ROUND_OFFSET


def audit_booked(ledger: PrivacyLedger, config: RunConfig, run_id: str) -> bool:
    """Whether the ledger already booked this run's audit release."""
    return any(r.run_id == run_id and r.kind == "evaluate" and
               r.server_round == audit_round(config) for r in ledger.releases())


def check_evaluation_request(config: RunConfig, server_round: int,
                             audit: AuditRequest | None, ledger: PrivacyLedger | None,
                             run_id: str, edges: EdgesRequest | None = None) -> None:
    """Refuse (``CentreRefusal``, nothing booked) an evaluation the run's configuration
    does not schedule, score bins that are not ``evaluation.bins`` bins (``edges``),
    or an audit request that is malformed, not after the final round, or the run's
    second (whatever the ministry sends)."""
    if audit is None and edges is not None and (edges.malformed or (
            edges.edges is not None and
            edges_problem(edges.edges, config.evaluation.bins) is not None)):
        raise CentreRefusal(
            f"The evaluation's score bins ({edges}) are not {config.evaluation.bins - 1} "
            "increasing finite logits.", Reason.EDGES_INVALID, Reply.REFUSED)
    if audit is None:
        if not evaluation_scheduled(server_round, config.rounds,
                                    config.evaluation.progress_every):
            raise CentreRefusal(
                f"The ministry asked for an evaluation after round {server_round}, which "
                f"the run's schedule (evaluation.progress_every = "
                f"{config.evaluation.progress_every}, {config.rounds} rounds) does not "
                "include.", Reason.NOT_SCHEDULED, Reply.REFUSED)
        return
    if not audit.valid or server_round != config.rounds:
        raise CentreRefusal(
            f"The audit request (threshold {audit.threshold!r}, slope {audit.slope!r}, "
            f"intercept {audit.intercept!r}, round {server_round}) is not a finite "
            f"threshold in (0, 1) after the final round {config.rounds}.",
            Reason.AUDIT_INVALID, Reply.REFUSED)
    if ledger is not None and audit_booked(ledger, config, run_id):
        raise CentreRefusal(f"The run {run_id} already released its equity audit here.",
                            Reason.AUDIT_DONE, Reply.REFUSED)


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
    return run_evaluation_noise(config, floor.delta_for(config))


def book_evaluation(config: RunConfig, data: CentreData, ledger: PrivacyLedger, run_id: str,
                    server_round: int, mechanisms: list[tuple[float, float, int]],
                    alone: bool = False,
                    reserved: list[tuple[float, float, int]] | None = None) -> float:
    """Check the run's budget and book ``mechanisms`` (the round's evaluation release)
    before anything is computed into the reply; returns the run's evaluation epsilon
    at the run's delta. ``reserved``: the run's releases still to come
    (``common.privacy.accounting.reserved_rows``), priced in the check but not booked, so that no
    release asked twice eats the budget of those the schedule has yet to make. ``alone``:
    the release is a share of distributed noise, whose own cost is above the run's
    target by design (the SUM meets the target): it is checked against the centre's
    floor only (``max_epsilon_per_run`` at its delta)."""
    floor = data.policy.privacy
    what = f"evaluation of round {server_round}"
    history = [*run_history(ledger, run_id, "evaluate"), *mechanisms]
    priced = [*history, *(reserved or [])]
    if alone:
        at_floor = composed_epsilon(priced, floor.delta, config.privacy.accountant)
        if at_floor > floor.max_epsilon_per_run * (1 + BUDGET_SLACK):
            raise CentreRefusal(
                f"This {what} (a share of distributed noise) would bring the run's "
                f"epsilon at this centre to {at_floor:.3f} at delta {floor.delta:g} with "
                f"its releases still to come, past the floor's "
                f"{floor.max_epsilon_per_run:g} per run.",
                Reason.RUN_BUDGET, Reply.REFUSED)
    else:
        check_run_budget(priced, config, floor, what)
    epsilon = composed_epsilon(history, config.privacy.delta, config.privacy.accountant)
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
    audit: AuditRequest | None = None,
    edges: tuple[float, ...] | None = None,
) -> dict[str, int | float | list[float]]:
    """The metrics a centre sends for one evaluation round, or with ``audit`` for the
    audit exchange (see the module docstring). Every reply has the same keys: what a
    phase does not release is sent as exact zeros (independent of the data).
    ``edges``: the instruction's score bins (checked by
    :func:`check_evaluation_request`; None: the fixed bins)."""
    floor = data.policy.privacy
    noise = evaluation_noise(config, floor)
    bins = config.evaluation.bins
    rng = noise_generator(config, server_round + (0 if audit is None else AUDIT_ROUND_OFFSET))
    epsilon = 0.0  # what the run's booked evaluation releases spent, at the run's delta
    if audit is not None:
        if noise is not None and ledger is not None:
            epsilon = book_evaluation(config, data, ledger, run_id, audit_round(config),
                                      noise.audit_mechanisms())
        zeros = [0.0] * bins
        metrics: dict[str, int | float | list[float]] = {
            NUM_EXAMPLES: 0, EPSILON: epsilon, HIST_POS: zeros, HIST_NEG: zeros,
            PROB_SUM: zeros, SQ_ERR_SUM: 0.0}
        metrics.update(centre_cells(
            data.audit_test, probabilities, data.y_test, threshold=audit.cut,
            sensitive_allowed=data.policy.audit_attributes_allowed,
            # The noise the centre books: calibrated at its own delta when that is smaller.
            noise_std=0.0 if noise is None else noise.audit_stds(),
            rng=rng, discrete=True))
        return metrics
    final = server_round >= config.rounds
    # Placed bins (``edges``) may be fewer than ``evaluation.bins``: the release's other
    # bins are exact zeros (public), the noise goes on the bins used.
    histogram = score_histogram(probabilities, data.y_test, bins, edges)
    used = histogram.bins
    pos, neg = histogram.positives.copy(), histogram.negatives.copy()
    probability_sum, squared_error = histogram.probability_sum, histogram.squared_error_sum
    if noise is not None:
        multiplier = noise.final if final else noise.progress
        mechanisms = noise.round_mechanisms(server_round)
        if ledger is not None:
            epsilon = book_evaluation(config, data, ledger, run_id, server_round, mechanisms,
                                      reserved=reserved_rows(noise, server_round, False))
        pos += discrete_gaussian(rng, multiplier, used)
        neg += discrete_gaussian(rng, multiplier, used)
        centres = bin_centres(used, edges)
        probability_sum = (pos + neg) * centres
        squared_error = float((pos * (1 - centres) ** 2 + neg * centres**2).sum())
    metrics = {
        NUM_EXAMPLES: max(0, round(float(pos.sum() + neg.sum()))),
        EPSILON: epsilon,
        HIST_POS: padded(pos, bins).tolist(),
        HIST_NEG: padded(neg, bins).tolist(),
        PROB_SUM: padded(np.asarray(probability_sum), bins).tolist(),
        SQ_ERR_SUM: squared_error,
    }
    # The audit is released once, in its own exchange: here its cells are zeros (not
    # computed: only their shape is sent).
    metrics.update({key: [0.0] * CELL_LENGTH for key in all_cell_keys()})
    return metrics
