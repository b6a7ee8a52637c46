"""What the ministry keeps of a run, round by round: one book for the plain and the
secure (SecAgg+) federation alike, which differ only in how the sum of the updates is
formed.

The book holds each round's log (training figures, pooled evaluation, equity audit,
refusals, rejections, absences), what the ministry knows of each centre (its released
size, the per-run epsilons it reported, its last histogram), the centres that refused
the run for good (their floor, an unapproved app, an invalid configuration) and, in
the ministry's audit log, the head of every centre's records as each reply carried it
(``centre_records``: the anchor ``perseverance-server audit verify`` checks the
centres' logs and ledgers against).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from logging import INFO, WARNING

import numpy as np
from flwr.common.logger import log

from common import protocol
from common.audit_reading import band_probabilities, conclusions
from common.calibration import Calibration, calibrated_error, fit_calibration
from common.config import RunConfig
from common.equity import MIN_CENTRES_PER_CELL, SIZE_BANDS, size_band
from common.equity_pooling import audit_report, pooled_audit
from common.i18n import N_, Joined, word
from common.metrics import ScoreHistogram, auc_from_histogram, bin_centres, summarise
from common.privacy import audit_noise_std, composed_epsilon
from common.protocol import LASTING_REFUSALS, TrainRelease
from common.secure_release import NOISE_AUDIT, NOISE_DISTRIBUTED, NOISE_THRESHOLD, SummedRelease
from server.federation.audit_log import ServerAudit
from server.federation.regions import CentreRegister
from server.federation.secure_pooling import number, sum_cost, summed_cells
from server.federation.validation import evaluation_problem

HISTOGRAM_KEYS = protocol.HISTOGRAM_KEYS
Metrics = Mapping[str, object]


class FederationStopped(Exception):
    """The run stopped before its last round, cleanly (checkpoint kept). One sentence.
    The ServerApp logs it and writes it to ``summary.json`` (``stopped``); launchers end
    with it and their "run failed" exit code (``perseverance-sim`` 3, ``dev-federation``
    7)."""


class CentresRefused(FederationStopped):
    """Too few centres are left once those that refused the run for good are out."""


@dataclass
class RoundLog:
    """What the ministry saw in a round, for progress and the run folder."""

    round: int
    train: dict[str, float] = field(default_factory=dict)
    evaluation: dict[str, float] = field(default_factory=dict)
    refusals: list[str] = field(default_factory=list)
    equity: dict[str, object] = field(default_factory=dict)
    rejections: list[str] = field(default_factory=list)  # invalid updates: node and reason
    absent: list[str] = field(default_factory=list)  # no reply in time: node and phase
    model_version: str = ""  # the global model sent for training this round
    updates: int = 0  # updates aggregated into the new model (0: model unchanged)


@dataclass
class CentreRecord:
    """What the ministry knows of one centre (by node id): its released size, the per-run
    epsilons it reported (training, evaluation), its last evaluation histogram (kept for
    size-band pooling, never reported alone)."""

    node: int
    num_train: int = 0
    num_test: int = 0
    epsilon: float = 0.0
    histogram: ScoreHistogram | None = None
    epsilon_evaluation: float = 0.0


RoundCallback = Callable[[RoundLog], None]


def pooled_histogram(releases: Sequence[Metrics]) -> ScoreHistogram:
    """Sum of the centres' score histograms."""
    total: ScoreHistogram | None = None
    for metrics in releases:
        positives, negatives, probability_sum = (
            np.asarray(metrics[key], dtype=np.float64) for key in HISTOGRAM_KEYS
        )
        squared = metrics[protocol.SQ_ERR_SUM]
        assert isinstance(squared, int | float), "the release protocol was screened"
        h = ScoreHistogram(positives, negatives, probability_sum, float(squared))
        total = h if total is None else total + h
    assert total is not None, "pooling needs at least one evaluation reply"
    return total


def calibrated_threshold(threshold: float, calibration: Calibration) -> float:
    """The audit's operating threshold as the probability a school team reads: the
    centres apply ``evaluation.threshold`` to the model's own probabilities (the
    recalibration is fitted on this very round's histogram, after they released), so
    the audit's TPR and FPR are those of this recalibrated threshold (0.41-0.49 for 0.3
    in the runs of docs/PRIVACY.md). Monotone recalibration keeps who is flagged."""
    return float(calibration.apply(np.array([threshold]))[0])


def nonnegative(histogram: ScoreHistogram) -> ScoreHistogram:
    """The pooled histogram with each noisy bin count clipped at 0 (post-processing, no
    privacy cost): a count of students is never negative, and at Quebec's scale a tail
    bin's noise can take its sum below zero (-27 in a quebec-72 run). The probability
    sums and squared errors follow the clipped bins."""
    pos = np.clip(histogram.positives, 0.0, None)
    neg = np.clip(histogram.negatives, 0.0, None)
    if np.array_equal(pos, histogram.positives) and np.array_equal(neg, histogram.negatives):
        return histogram
    centres = bin_centres(len(pos))
    return ScoreHistogram(pos, neg, (pos + neg) * centres,
                          float((pos * (1 - centres) ** 2 + neg * centres**2).sum()))


def aggregate_evaluation(releases: Sequence[Metrics]) -> dict[str, int | float | list[float]]:
    """Pooled metrics (AUC, PR AUC, Brier, calibration) and the pooled histogram;
    ``calibration_error_calibrated``: the calibration error of the probabilities the
    centres will read, once recalibrated on this histogram (``common.calibration``)."""
    histogram = nonnegative(pooled_histogram(releases))
    metrics: dict[str, int | float | list[float]] = {
        k: float(v) for k, v in summarise(histogram).items()
    }
    metrics["calibration_error_calibrated"] = calibrated_error(histogram,
                                                               fit_calibration(histogram))
    metrics[protocol.NUM_EXAMPLES] = max(0, round(histogram.count))
    metrics["centres"] = len(releases)
    for key, values in zip(
        HISTOGRAM_KEYS,
        (histogram.positives, histogram.negatives, histogram.probability_sum),
        strict=True,
    ):
        metrics[key] = values.tolist()
    return metrics


def _equity_cells(metrics: Metrics) -> dict[str, list[float]]:
    return {key: [float(v) for v in value]  # type: ignore[attr-defined]
            for key, value in metrics.items() if key.startswith(protocol.EQUITY_PREFIX)}


def participation(centres: list[CentreRecord]) -> dict[str, object]:
    """Per-centre sizes and epsilon, and pooled AUC by size band. A band is reported
    only when it holds at least ``MIN_CENTRES_PER_CELL`` centres (no centre, and no
    Indigenous-governed board, shown on its own)."""
    bands: dict[str, list[CentreRecord]] = {}
    rows = []
    for centre in sorted(centres, key=lambda c: c.node):
        band = size_band(centre.num_train + centre.num_test)
        bands.setdefault(band, []).append(centre)
        rows.append({"node": centre.node, "size_band": band, "num_train": centre.num_train,
                     "num_test": centre.num_test, "epsilon": centre.epsilon,
                     "epsilon_evaluation": centre.epsilon_evaluation})
    auc_by_band: dict[str, float | None] = {}
    for name, _, _ in SIZE_BANDS:
        members = [c.histogram for c in bands.get(name, []) if c.histogram is not None]
        if len(members) >= MIN_CENTRES_PER_CELL:
            total = members[0]
            for h in members[1:]:
                total = total + h
            auc_by_band[name] = auc_from_histogram(total)
        else:
            auc_by_band[name] = None
    return {
        "centres": rows,
        "auc_by_size_band": auc_by_band,
        "centres_by_size_band": {name: len(bands.get(name, [])) for name, _, _ in SIZE_BANDS},
        "size_bands": {name: [low, high] for name, low, high in SIZE_BANDS},
    }


def _scalars(values: Mapping[str, object]) -> dict[str, float]:
    return {k: float(v) for k, v in values.items()
            if isinstance(v, int | float) and not isinstance(v, bool)}


class RunBook:
    """The ministry's accounting of one run, shared by both federations.

    Parameters
    ----------
    config : RunConfig
        The run's configuration (threshold and bins of the evaluation, quorum).
    audit : ServerAudit | None
        The ministry's audit log (None in unit tests of the strategies).
    """

    def __init__(self, config: RunConfig, audit: ServerAudit | None = None) -> None:
        self.config = config
        self.audit = audit
        self.logs: dict[int, RoundLog] = {}
        self.centres: dict[int, CentreRecord] = {}
        # The ministry's centre register (``server.federation.regions``): the audit's region rows.
        self.register: CentreRegister | None = None
        # Std of the DP noise on each equity count a centre sends: in the audit's intervals.
        self.audit_noise = audit_noise_std(config)
        self.names: dict[int, str] = {}  # node -> the name the centre declares
        self.refused: dict[str, str] = {}  # centre -> the fixed reason it refused the run
        self.refusing_nodes: set[int] = set()
        self.unplaced: set[str] = set()  # refusing centres whose node is unknown
        # Secure mode with distributed noise: what the SUMS released cost a student
        # (accountant rows, q = 1), round after round.
        self.sum_rows: list[tuple[float, float, int]] = []

    def round_log(self, server_round: int) -> RoundLog:
        return self.logs.setdefault(server_round, RoundLog(server_round))

    def centre(self, node: int) -> CentreRecord:
        return self.centres.setdefault(node, CentreRecord(node))

    def _event(self, event: str, **fields: object) -> None:
        if self.audit is not None:
            self.audit.event(event, **fields)

    def identify(self, server_round: int, phase: str, node: int,
                 configs: Mapping[str, Mapping[str, object]], metrics: Metrics) -> None:
        """Note the centre's declared name and anchor its records head (from a plain
        reply's config records, or a secure reply's metrics)."""
        name = configs.get(protocol.CENTRE, {}).get(protocol.CENTRE_NAME, metrics.get(
            protocol.CENTRE, ""))
        if isinstance(name, str) and name:
            self.names[node] = name
        head = protocol.head_of(configs.get(protocol.RECORDS_HEAD, {})) or protocol.head_of(
            metrics)
        if head:
            self._event("centre_records", node=node, round=server_round, phase=phase,
                        **{key: head[key] for key in protocol.HEAD_KEYS if key in head})

    def refusal(self, server_round: int, phase: str, node: int, code: int | None,
                text: str) -> None:
        """A centre's error reply: logged; a lasting one takes the centre out of the run."""
        self.round_log(server_round).refusals.append(f"node {node}: {text}" if node >= 0 else text)
        log(INFO, "round %s: a centre declined %s: %s", server_round, phase, text)
        if self.audit is not None:
            self.audit.refused(server_round, phase, node, text)
        if code is not None and code in LASTING_REFUSALS:
            name, sentence = protocol.refusing_centre(text, self.names.get(node, f"node {node}"))
            self.refused[name] = sentence
            if node >= 0:
                self.refusing_nodes.add(node)
            else:  # SecAgg+ reports error replies without their node
                self.unplaced.add(name)

    def check_quorum(self, server_round: int, nodes: list[int]) -> None:
        """Stop the run (``CentresRefused``) when, without the centres that refused it for
        good, fewer than ``min_centres`` of the ``nodes`` asked are left."""
        left = len([node for node in nodes if node not in self.refusing_nodes])
        left -= len(self.unplaced)
        if left >= self.config.min_centres or not self.refused:
            return
        named = Joined([N_("%(centre)s: %(reason)s", centre=name, reason=word(reason))
                        for name, reason in sorted(self.refused.items())])
        raise CentresRefused(N_(
            "Round %(round)s: only %(left)s centres can take part, fewer than min_centres "
            "(%(minimum)s), since these refused the run: %(named)s", round=server_round,
            left=max(left, 0), minimum=self.config.min_centres, named=named))

    def trained(self, server_round: int, accepted: list[tuple[int, TrainRelease]],
                updates: int) -> dict[str, float]:
        """The round's training figures from the accepted releases: total released size,
        the largest per-run epsilon any centre reported, the number of centres."""
        entry = self.round_log(server_round)
        for node, release in accepted:
            centre = self.centre(node)
            centre.num_train = release.num_examples
            centre.epsilon = release.epsilon
        entry.updates = updates
        entry.train = {} if not accepted else {
            protocol.NUM_EXAMPLES: float(sum(r.num_examples for _, r in accepted)),
            "epsilon_max": max(r.epsilon for _, r in accepted),
            "centres": float(len(accepted)),
        }
        return entry.train

    def screen_evaluation(self, server_round: int, node: int, metrics: Metrics,
                          configs: Mapping[str, Mapping[str, object]],
                          answered: str | None, version: str | None) -> bool:
        """Whether an evaluation release follows the protocol; a malformed one is logged
        with its centre and reason and left out (it would stop the pooled evaluation)."""
        problem = evaluation_problem(metrics, configs, self.config.evaluation.bins)
        if problem is None and version is not None and answered != version:
            problem = (f"it evaluates model version {answered or 'none'}, not the current "
                       f"{version} (stale)")
        if problem is None:
            return True
        self.round_log(server_round).rejections.append(f"node {node}: evaluation {problem}")
        log(WARNING, "round %s: evaluation of node %s rejected: %s", server_round, node,
            problem)
        self._event("evaluation_rejected", round=server_round, node=node, reason=problem)
        return False

    def evaluated(self, server_round: int, releases: Sequence[tuple[int, Metrics]]
                  ) -> dict[str, int | float | list[float]]:
        """Pool the round's screened evaluation releases: metrics, equity audit, each
        centre's histogram and reported evaluation epsilon."""
        entry = self.round_log(server_round)
        if not releases:
            return {}
        pooled = aggregate_evaluation([metrics for _, metrics in releases])
        entry.evaluation = _scalars(pooled)
        placements = None if self.register is None else [
            self.register.place(node, self.names.get(node, "")) for node, _ in releases]
        threshold = self.config.evaluation.threshold
        histogram = nonnegative(pooled_histogram([metrics for _, metrics in releases]))
        calibration = fit_calibration(histogram)
        bands = band_probabilities(histogram, threshold, calibration)
        entry.equity = pooled_audit([_equity_cells(m) for _, m in releases], threshold,
                                    placements, self.audit_noise, bands)
        entry.equity["conclusions"] = conclusions(entry.equity)
        entry.equity["threshold_calibrated"] = calibrated_threshold(threshold, calibration)
        for node, metrics in releases:
            centre = self.centre(node)
            centre.histogram = pooled_histogram([metrics])
            # A noisy count of a small centre can fall below zero.
            centre.num_test = max(0, round(centre.histogram.count))
            epsilon = metrics.get(protocol.EPSILON, 0.0)
            if isinstance(epsilon, int | float):
                centre.epsilon_evaluation = max(centre.epsilon_evaluation, float(epsilon))
        return pooled

    def evaluated_sum(self, server_round: int, summed: SummedRelease,
                      survivors: Sequence[tuple[int, Metrics]], regions: Sequence[str]
                      ) -> dict[str, int | float | list[float]]:
        """Pool a round's secure evaluation: SecAgg+ handed over the ``summed`` release of
        the ``survivors`` (node, the metrics beside its masked vector). The audit's
        intervals use the noise the sums carry: the sum of the survivors' variances.
        With distributed noise, ``epsilon_sum`` is what the sums released so far cost a
        student (``common.privacy.summed_rows``), and the cells' centre counts are the
        survivors (no per-centre indicator was sent)."""
        entry = self.round_log(server_round)
        if not survivors:
            return {}
        release = summed.histogram_release()
        pooled = aggregate_evaluation([release])
        pooled["centres"] = len(survivors)
        entry.evaluation = _scalars(pooled)
        shares = [m for _, m in survivors if number(m, NOISE_DISTRIBUTED) > 0]
        histogram = nonnegative(pooled_histogram([release]))
        threshold = self.config.evaluation.threshold
        calibration = fit_calibration(histogram)
        bands = band_probabilities(histogram, threshold, calibration)
        cells = summed_cells(summed, [m for _, m in survivors], regions, threshold,
                             distributed=bool(shares))
        stds = [number(m, NOISE_AUDIT) for _, m in survivors]
        if any(stds):
            entry.equity = audit_report(cells, threshold, max(stds), bands)
            entry.equity["conclusions"] = conclusions(entry.equity)
            entry.equity["threshold_calibrated"] = calibrated_threshold(threshold, calibration)
        if shares:
            self.sum_rows.extend(sum_cost(self.config, shares, len(survivors) > len(shares)))
            entry.evaluation["epsilon_sum"] = composed_epsilon(self.sum_rows,
                                                               self.config.privacy.delta)
            if entry.equity:
                entry.equity["distributed_noise"] = {
                    "centres": len(survivors), "shares": len(shares),
                    "threshold": int(min(number(m, NOISE_THRESHOLD) for m in shares)),
                    "epsilon_sum": entry.evaluation["epsilon_sum"]}
        for node, metrics in survivors:
            epsilon = number(metrics, protocol.EPSILON)
            centre = self.centre(node)
            centre.epsilon_evaluation = max(centre.epsilon_evaluation, epsilon)
        return pooled
