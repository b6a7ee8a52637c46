"""What the ministry keeps of a run, round by round: one book for the plain and the
secure (SecAgg+) federation alike, which differ only in how the sum of the updates is
formed.

The book holds each round's log (training figures, pooled evaluation, equity audit,
refusals, rejections, absences), what the ministry knows of each centre (its released
size, the per-run epsilons it reported, its last histogram), the centres that refused
the run for good (their floor, an unapproved app, an invalid configuration) and, in
the ministry's audit log, the head of every centre's records as each reply carried it
(``centre_records``: the anchor ``perseverance-server audit verify`` checks the
centres' logs and ledgers against), filed under the identity of the node that sent it
(``server.federation.identity``), never under the name the reply declares.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from logging import INFO, WARNING

import numpy as np
from flwr.common import log

from common import protocol
from common.app_approval import refusal_sentence
from common.calibration import Calibration, calibrated_error, fit_calibration
from common.config import RunConfig
from common.equity.audit import MIN_CENTRES_PER_CELL, SIZE_BANDS, place_bands, size_band
from common.equity.pooling import audit_report, pooled_audit
from common.equity.reading import band_probabilities, conclusions
from common.i18n.catalogue import N_, Joined, Sentence, word
from common.metrics import (
    PLACED_BINS,
    ScoreHistogram,
    auc_from_histogram,
    bin_bounds,
    edge_logits,
    place_edges,
    placed_count,
    span_edges,
    summarise,
)
from common.privacy.accounting import (
    FINAL_HISTOGRAM_NOISE_FACTOR,
    PROGRESS_NOISE_FACTOR,
    audit_noise_stds,
    composed_epsilon,
    run_evaluation_noise,
)
from common.privacy.secure_release import SummedRelease
from common.protocol import (
    LASTING_REFUSALS,
    NOISE_DISTRIBUTED,
    NOISE_HISTOGRAM,
    NOISE_THRESHOLD,
    AuditRequest,
    TrainRelease,
)
from server.federation.audit_log import ServerAudit
from server.federation.identity import CentreIdentities
from server.federation.regions import CentreRegister
from server.federation.secure_pooling import (
    audit_stds_of,
    number,
    sum_cost,
    summed_cells,
    trust_of,
)
from server.federation.validation import evaluation_problem

HISTOGRAM_KEYS = protocol.HISTOGRAM_KEYS
Metrics = Mapping[str, object]
#: Keys of a kept pooled evaluation (``evaluation.json``, the checkpoint) beside the
#: histogram's: the interior edges of its bins (logits; absent: the fixed bins) and each
#: bin's noisy counts (positives, negatives) before the clipping at 0, from which the next
#: evaluation's edges are placed (issue 30; :func:`next_edges`).
EDGES_KEY = "edges"
RAW_KEYS = ("hist_pos_raw", "hist_neg_raw")
#: And the std of the noise on each of its pooled counts (a list of one number).
NOISE_KEY = "noise_sd"


def noise_of(evaluation: Mapping[str, Sequence[float]]) -> float:
    """The std of the noise on each pooled count of a kept evaluation (0 if unknown)."""
    values = evaluation.get(NOISE_KEY) or [0.0]
    return float(values[0])


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


def pooled_histogram(releases: Sequence[Metrics],
                     edges: tuple[float, ...] | None = None) -> ScoreHistogram:
    """Sum of the centres' score histograms, counted over the bins of ``edges`` (the
    instruction's; None: the fixed bins)."""
    total: ScoreHistogram | None = None
    used = None if edges is None else len(edges) + 1  # placed bins: the rest are zeros
    for metrics in releases:
        positives, negatives, probability_sum = (
            np.asarray(metrics[key], dtype=np.float64)[:used] for key in HISTOGRAM_KEYS
        )
        squared = metrics[protocol.SQ_ERR_SUM]
        assert isinstance(squared, int | float), "the release protocol was screened"
        h = ScoreHistogram(positives, negatives, probability_sum, float(squared), edges)
        total = h if total is None else total + h
    assert total is not None, "pooling needs at least one evaluation reply"
    return total


def raw_threshold(threshold: float, calibration: Calibration) -> float:
    """The model's raw score whose recalibrated probability is ``threshold`` (the
    inverse of the monotone Platt map, whose slope is positive): what the centres count
    the audit's flags at, so that its TPR and FPR are read at the probability a school
    team reads."""
    target = math.log(threshold / (1 - threshold))
    logit = (target - calibration.intercept) / calibration.slope
    # Within float range and strictly inside (0, 1), as the centres require.
    logit = min(max(logit, -30.0), 30.0)
    return float(1.0 / (1.0 + math.exp(-logit)))


def calibrated_threshold(raw: float, calibration: Calibration) -> float:
    """The recalibrated probability of the raw score ``raw``."""
    return float(calibration.apply(np.array([raw]))[0])


def audit_request(threshold: float, histogram: ScoreHistogram,
                  evaluation: Mapping[str, Sequence[float]] | None = None
                  ) -> tuple[AuditRequest, Calibration]:
    """The audit exchange's request: Platt scaling fitted on the final pooled histogram
    (``common.calibration``, post-processing of released counts) and the raw-score
    threshold it maps to the calibrated ``threshold`` (``evaluation.threshold``). With
    the kept final ``evaluation`` (``evaluation.placement = "released"``), the bands
    below the threshold placed at the quantiles of its students below it (issue 30,
    ``common.equity.audit.place_bands``: post-processing, the same for every centre);
    without, 1 logit apart."""
    calibration = fit_calibration(histogram)
    raw = raw_threshold(threshold, calibration)
    bands = None
    if evaluation:
        pos, neg = (evaluation.get(key) or evaluation[plain] for key, plain in
                    zip(RAW_KEYS, (protocol.HIST_POS, protocol.HIST_NEG), strict=True))
        bands = place_bands(raw, pos, neg, bin_bounds(histogram.bins, histogram.edges),
                            noise_of(evaluation))
    return (AuditRequest(raw, calibration.slope, calibration.intercept, bands), calibration)


def edges_in(evaluation: Mapping[str, Sequence[float]]) -> tuple[float, ...] | None:
    """The bins' interior edges of a kept evaluation (None: the fixed bins)."""
    edges = evaluation.get(EDGES_KEY)
    return None if not edges else tuple(float(v) for v in edges)


def histogram_of(evaluation: Mapping[str, Sequence[float]]) -> ScoreHistogram:
    """The pooled histogram of a checkpoint's last evaluation (clipped at 0)."""
    pos, neg, probability_sum = (np.asarray(evaluation[key], dtype=np.float64)
                                 for key in HISTOGRAM_KEYS)
    return nonnegative(ScoreHistogram(pos, neg, probability_sum, 0.0, edges_in(evaluation),
                                      noise_of(evaluation)))


def next_edges(config: RunConfig, evaluation: Mapping[str, Sequence[float]] | None
               ) -> tuple[float, ...] | None:
    """The score bins of the run's next evaluation (issue 30): with
    ``evaluation.placement = "released"``, edges at the quantiles of the last pooled
    histogram the run kept (released, so this is post-processing: no privacy cost, and
    the same edges go to every centre, ``common.metrics.place_edges``); None (the fixed
    bins) before any, or with ``"fixed"``. A function of released counts and the
    configuration only, so a resumed run asks for the same bins."""
    if config.evaluation.placement != "released" or not evaluation:
        return None
    if len(evaluation[protocol.HIST_POS]) < 2 or config.evaluation.bins < 2:
        return None
    # The counts before the clipping at 0 (an older checkpoint kept only the clipped ones).
    pos, neg = (evaluation.get(raw) or evaluation[key]
                for raw, key in zip(RAW_KEYS, (protocol.HIST_POS, protocol.HIST_NEG),
                                    strict=True))
    if edges_in(evaluation) is not None and _moved_out(pos, neg):
        # The students left the placed bins for an open end bin (the model moved, UCI
        # Dropout's by 2 logits in 3 rounds): the fixed bins find them again.
        return None
    # As many bins as the final release's noise makes worth it (``placed_count``): the
    # kept release is a progress one, the final's noise a public fraction of its noise.
    # Over the fixed bins (a narrow band of scores in one or two of them) its AUC says
    # nothing of the ties: all the bins.
    count = min(PLACED_BINS, config.evaluation.bins)
    if edges_in(evaluation) is not None:
        count = placed_count(pos, neg, noise_of(evaluation) * FINAL_HISTOGRAM_NOISE_FACTOR
                             / PROGRESS_NOISE_FACTOR, count)
    placed = place_edges(pos, neg, edges_in(evaluation), count, noise_of(evaluation))
    if placed is not None:
        return placed
    # Too noisy to place by quantiles (neither label resolved): the placed bins of that
    # evaluation again, or, from the fixed bins, even bins over where the students are.
    if (kept := edges_in(evaluation)) is not None:
        return kept
    return span_edges(pos, neg, None, count, noise_of(evaluation))


#: An open end bin of placed bins holding more than this share of a released pooled
#: histogram's students means they moved out of the bins (:func:`next_edges`).
MOVED_OUT = 0.5


def _moved_out(positives: Sequence[float], negatives: Sequence[float]) -> bool:
    """Whether an end bin holds more than :data:`MOVED_OUT` of the released count (noisy
    counts clipped at 0; bins placed at the quantiles hold about 1/16 each)."""
    counts = np.clip(np.asarray(positives, dtype=np.float64) +
                     np.asarray(negatives, dtype=np.float64), 0.0, None)
    total = float(counts.sum())
    return total > 0 and max(float(counts[0]), float(counts[-1])) > MOVED_OUT * total


def nonnegative(histogram: ScoreHistogram) -> ScoreHistogram:
    """The pooled histogram with each noisy bin count clipped at 0 (post-processing, no
    privacy cost): a count of students is never negative, and at Quebec's scale a tail
    bin's noise can take its sum below zero (-27 in a quebec-72 run). The probability
    sums and squared errors follow the clipped bins."""
    pos = np.clip(histogram.positives, 0.0, None)
    neg = np.clip(histogram.negatives, 0.0, None)
    if np.array_equal(pos, histogram.positives) and np.array_equal(neg, histogram.negatives):
        return histogram
    centres = histogram.centres()
    return ScoreHistogram(pos, neg, (pos + neg) * centres,
                          float((pos * (1 - centres) ** 2 + neg * centres**2).sum()),
                          histogram.edges, histogram.noise_sd)


#: How many standard deviations of the pooled count's noise the noisy count of held-out
#: students must stand above for the pooled figures to be reported (one-sided: a pool
#: over no student passes with probability 3e-5).
NOISE_MARGIN = 4.0


#: The pooled evaluation's key saying whether it stands above its noise (1.0) or not.
ABOVE_NOISE = "above_noise"


def kept_evaluation(pooled: Mapping[str, object] | None) -> dict[str, list[float]] | None:
    """The pooled histogram a run keeps (for the recalibration, the audit's threshold and
    ``evaluation.json``), or None when there is none or it is noise over (nearly) no
    student: the run then publishes no pooled figure and asks for no audit."""
    if not pooled or pooled.get(ABOVE_NOISE, 1.0) == 0.0:
        return None
    return {key: [float(v) for v in pooled[key]]  # type: ignore[attr-defined]
            for key in (*HISTOGRAM_KEYS, EDGES_KEY, *RAW_KEYS, NOISE_KEY) if key in pooled}


def above_the_noise(raw: ScoreHistogram, noise_variance: float) -> bool:
    """Whether the pooled held-out count (before the bins are clipped at 0, so that the
    noise stays centred) stands ``NOISE_MARGIN`` standard deviations of its noise above
    0. Post-processing of the released counts: it costs nothing. Centres no longer
    refuse an evaluation on their exact count of students with budget left (issue 26):
    an evaluation over no student is noise alone, and the ministry says so here."""
    if noise_variance <= 0:
        return raw.count > 0
    spread = math.sqrt(noise_variance * 2 * raw.bins)  # positives and negatives per bin
    return raw.count >= NOISE_MARGIN * spread


def aggregate_evaluation(releases: Sequence[Metrics], noise_variance: float = 0.0,
                         edges: tuple[float, ...] | None = None
                         ) -> dict[str, int | float | list[float]]:
    """Pooled metrics (AUC, PR AUC, Brier, calibration) and the pooled histogram;
    ``calibration_error_calibrated``: the calibration error of the probabilities the
    centres will read, once recalibrated on this histogram (``common.calibration``).
    ``noise_variance``: of the DP noise on each pooled bin count, which the calibration
    errors take out (``common.metrics.calibration_error``). ``edges``: the bins the
    centres were asked to count over (None: the fixed ones); kept with the histogram
    (``EDGES_KEY``), as are the counts before the clipping (``RAW_KEYS``)."""
    raw = pooled_histogram(releases, edges)
    histogram = nonnegative(raw)
    metrics: dict[str, int | float | list[float]] = {
        k: float(v) for k, v in summarise(histogram, noise_variance).items()
    }
    measurable = above_the_noise(raw, noise_variance)
    if not measurable:
        # Noise over (nearly) no student: figures of it would read as an evaluation.
        for key in ("auc", "pr_auc", "brier", "calibration_error", "label_rate"):
            metrics[key] = float("nan")
    metrics[ABOVE_NOISE] = float(measurable)
    metrics["calibration_error_calibrated"] = calibrated_error(
        histogram, fit_calibration(histogram), noise_variance)
    metrics[protocol.NUM_EXAMPLES] = max(0, round(histogram.count))
    metrics["centres"] = len(releases)
    for key, values in zip(
        HISTOGRAM_KEYS,
        (histogram.positives, histogram.negatives, histogram.probability_sum),
        strict=True,
    ):
        metrics[key] = values.tolist()
    metrics[RAW_KEYS[0]], metrics[RAW_KEYS[1]] = raw.positives.tolist(), raw.negatives.tolist()
    metrics[NOISE_KEY] = [math.sqrt(max(noise_variance, 0.0))]
    if edges is not None:
        metrics[EDGES_KEY] = [float(v) for v in edges]
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
        # Only histograms over the same bins add up (a centre absent from the last
        # evaluation keeps an earlier one, whose bins may differ: issue 30).
        latest = [h for h in members if _same_bins(h, members[-1])] if members else []
        members = latest if len(latest) >= MIN_CENTRES_PER_CELL else members
        members = [h for h in members if _same_bins(h, members[0])] if members else []
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


def _same_bins(a: ScoreHistogram, b: ScoreHistogram) -> bool:
    return a.bins == b.bins and bool(np.array_equal(edge_logits(a.bins, a.edges),
                                                    edge_logits(b.bins, b.edges)))


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
        # Std of the DP noise on each equity count a centre sends, per attribute: in the
        # audit's intervals.
        self.audit_noise = audit_noise_stds(config)
        # Who sent each reply: its node, enrolled or bound to its first declared name.
        self.identities = CentreIdentities()
        self.refused: dict[str, str] = {}  # centre -> the fixed reason it refused the run
        self.refusing_nodes: set[int] = set()
        self.unplaced: set[str] = set()  # refusing centres whose node is unknown
        # Secure mode with distributed noise: what the SUMS released cost a student
        # (accountant rows, q = 1), round after round.
        self.sum_rows: list[tuple[float, float, int]] = []
        # Secure mode: how each centre booked its evaluation releases (its trust model,
        # ``secure_pooling.trust_of``), by name, as its last release said.
        self.trust: dict[str, dict[str, object]] = {}
        # The bins the current evaluation's instructions asked for (None: the fixed
        # ones; ``next_edges``), set when they are sent.
        self.evaluation_edges: tuple[float, ...] | None = None

    def histogram_noise(self, server_round: int) -> float:
        """Std of the DP noise on each bin count of one centre's score histogram for
        ``server_round`` (plain mode; 0 without evaluation noise), as the run's
        configuration sets it. A centre whose own delta is smaller adds more: the
        calibration errors then keep a little of the noise's upward bias."""
        privacy = self.config.privacy
        if not (privacy.dp and privacy.evaluation_noise):
            return 0.0
        noise = run_evaluation_noise(self.config)
        return noise.final if server_round >= self.config.rounds else noise.progress

    def round_log(self, server_round: int) -> RoundLog:
        return self.logs.setdefault(server_round, RoundLog(server_round))

    def centre(self, node: int) -> CentreRecord:
        return self.centres.setdefault(node, CentreRecord(node))

    def _event(self, event: str, **fields: object) -> None:
        if self.audit is not None:
            self.audit.event(event, **fields)

    @property
    def names(self) -> dict[int, str]:
        """node -> the name it declared first in the run (``server.federation.identity``)."""
        return self.identities.declared

    def identify(self, server_round: int, phase: str, node: int,
                 configs: Mapping[str, Mapping[str, object]], metrics: Metrics) -> bool:
        """Check the name a reply declares (a plain reply's config records, or a secure
        reply's metrics) against its node's identity and anchor its records head under
        that identity. False, logged and not anchored, when the name is not the node's
        (``server.federation.identity``): the reply is then left out."""
        declared = configs.get(protocol.CENTRE, {}).get(protocol.CENTRE_NAME, metrics.get(
            protocol.CENTRE, ""))
        head = protocol.head_of(configs.get(protocol.RECORDS_HEAD, {})) or protocol.head_of(
            metrics)
        problem = self.identities.check(node, declared, head.get("actor"))
        if problem is not None:
            self.reject_identity(server_round, phase, node, declared or head.get("actor"),
                                 problem)
            return False
        if head:
            fields = {key: head[key] for key in protocol.HEAD_KEYS if key in head}
            fields["actor"] = self.identities.actor(node)  # who sent it, not what it says
            self._event("centre_records", node=node, round=server_round, phase=phase,
                        centre=self.identities.of(node), **fields)
        return True

    def reject_identity(self, server_round: int, phase: str, node: int, declared: object,
                        problem: str) -> None:
        """A reply (or refusal) declaring a name that is not its node's: logged with the
        node's identity and the name it declared."""
        self.round_log(server_round).rejections.append(f"node {node}: {phase} {problem}")
        log(WARNING, "round %s: %s reply of node %s rejected: %s", server_round, phase, node,
            problem)
        self._event("identity_rejected", round=server_round, phase=phase, node=node,
                    centre=self.identities.of(node), declared=str(declared or ""),
                    reason=problem)

    def refusal(self, server_round: int, phase: str, node: int, code: int | None,
                text: str) -> None:
        """A centre's error reply: logged under its node's identity (a refusal naming
        another centre is also an ``identity_rejected``); a lasting one takes the centre
        out of the run."""
        self.round_log(server_round).refusals.append(f"node {node}: {text}" if node >= 0 else text)
        log(INFO, "round %s: a centre declined %s: %s", server_round, phase, text)
        named, sentence = protocol.refusing_centre(text, "")
        if node >= 0:
            if named and (problem := self.identities.check(node, named)) is not None:
                self.reject_identity(server_round, phase, node, named, problem)
            centre = self.identities.of(node)
        else:  # SecAgg+ reports error replies without their node: only the text names it
            centre = named or self.identities.of(node)
        if self.audit is not None:
            self.audit.refused(server_round, phase, node, text, centre)
        if code is not None and code in LASTING_REFUSALS:
            self.refused[centre] = sentence
            if node >= 0:
                self.refusing_nodes.add(node)
            else:
                self.unplaced.add(centre)

    def check_quorum(self, server_round: int, nodes: list[int]) -> None:
        """Stop the run (``CentresRefused``) when, without the centres that refused it for
        good, fewer than ``min_centres`` of the ``nodes`` asked are left."""
        left = len([node for node in nodes if node not in self.refusing_nodes])
        left -= len(self.unplaced)
        if left >= self.config.min_centres or not self.refused:
            return
        named = Joined([N_("%(centre)s: %(reason)s", centre=name, reason=reason_words(reason))
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
        """Pool the round's screened evaluation releases: metrics, each centre's
        histogram and reported evaluation epsilon (the equity audit is :meth:`audited`)."""
        entry = self.round_log(server_round)
        if not releases:
            return {}
        pooled = aggregate_evaluation([metrics for _, metrics in releases],
                                      len(releases) * self.histogram_noise(server_round)**2,
                                      self.evaluation_edges)
        entry.evaluation = _scalars(pooled)
        for node, metrics in releases:
            centre = self.centre(node)
            centre.histogram = pooled_histogram([metrics], self.evaluation_edges)
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
        the ``survivors`` (node, the metrics beside its masked vector). With distributed
        noise, ``epsilon_sum`` is what the sums released so far cost a student
        (``common.privacy.accounting.summed_rows``)."""
        entry = self.round_log(server_round)
        if not survivors:
            return {}
        release = summed.histogram_release(self.evaluation_edges)
        pooled = aggregate_evaluation([release], sum(number(m, NOISE_HISTOGRAM) ** 2
                                                     for _, m in survivors),
                                      self.evaluation_edges)
        pooled["centres"] = len(survivors)
        entry.evaluation = _scalars(pooled)
        shares = [m for _, m in survivors if number(m, NOISE_DISTRIBUTED) > 0]
        self.trust.update({self.names.get(node, str(node)): trust_of(m)
                           for node, m in survivors})
        if shares:
            self.sum_rows.extend(sum_cost(self.config, shares, len(survivors) > len(shares),
                                          server_round))
            entry.evaluation["epsilon_sum"] = composed_epsilon(self.sum_rows,
                                                               self.config.privacy.delta)
        for node, metrics in survivors:
            epsilon = number(metrics, protocol.EPSILON)
            centre = self.centre(node)
            centre.epsilon_evaluation = max(centre.epsilon_evaluation, epsilon)
        return pooled

    # ------------------------------------------------------------ the equity audit
    def _audit_entry(self, request: AuditRequest, report: dict[str, object]) -> dict[str, object]:
        """The final round's equity audit, read at the calibrated threshold: ``threshold``
        is the probability a school team reads (``evaluation.threshold``, up to float
        rounding), ``threshold_raw`` the model's score the centres counted at."""
        calibration = Calibration(request.slope, request.intercept)
        report["threshold"] = calibrated_threshold(request.threshold, calibration)
        report["threshold_raw"] = request.threshold
        if request.bands is not None:  # placed from the final pooled histogram (issue 30)
            report["bands_raw"] = list(request.bands)
        report["threshold_scale"] = "calibrated"
        report["calibration"] = calibration.to_dict()
        report["conclusions"] = conclusions(report)
        entry = self.round_log(self.config.rounds)
        entry.equity = report
        return report

    def _audit_epsilons(self, releases: Sequence[tuple[int, Metrics]]) -> None:
        for node, metrics in releases:
            epsilon = metrics.get(protocol.EPSILON, 0.0)
            if isinstance(epsilon, int | float):
                centre = self.centre(node)
                centre.epsilon_evaluation = max(centre.epsilon_evaluation, float(epsilon))

    def audited(self, request: AuditRequest, histogram: ScoreHistogram,
                releases: Sequence[tuple[int, Metrics]]) -> dict[str, object]:
        """Pool the audit exchange's screened releases (their cells, counted at the raw
        threshold of ``request``) into the run's equity audit; ``histogram``: the final
        pooled one, for the groups' calibrated mean predicted. Empty without releases."""
        if not releases:
            return {}
        placements = None if self.register is None else [
            self.register.place(node, self.names.get(node, "")) for node, _ in releases]
        calibration = Calibration(request.slope, request.intercept)
        bands = band_probabilities(histogram, request.cut, calibration)
        report = pooled_audit([_equity_cells(m) for _, m in releases], request.cut,
                              placements, self.audit_noise, bands)
        self._audit_epsilons(releases)
        self._event("audit_pooled", centres=len(releases), threshold_raw=request.threshold)
        return self._audit_entry(request, report)

    def audited_sum(self, request: AuditRequest, histogram: ScoreHistogram,
                    summed: SummedRelease, survivors: Sequence[tuple[int, Metrics]],
                    regions: Sequence[str]) -> dict[str, object]:
        """The secure audit exchange's sum: the audit's intervals use the noise the sums
        carry (the sum of the survivors' variances). With distributed noise the cells'
        centre counts are the survivors (no per-centre indicator was sent) and
        ``epsilon_sum`` adds what the audit's sum costs a student."""
        if not survivors:
            return {}
        shares = [m for _, m in survivors if number(m, NOISE_DISTRIBUTED) > 0]
        self.trust.update({self.names.get(node, str(node)): trust_of(m)
                           for node, m in survivors})
        calibration = Calibration(request.slope, request.intercept)
        bands = band_probabilities(histogram, request.cut, calibration)
        cells = summed_cells(summed, [m for _, m in survivors], regions, request.cut,
                             distributed=bool(shares))
        stds = [audit_stds_of(m) for _, m in survivors]
        report = audit_report(cells, request.cut,
                              {name: max(s[name] for s in stds) for name in stds[0]}, bands)
        entry = self.round_log(self.config.rounds)
        if shares:
            self.sum_rows.extend(sum_cost(self.config, shares, len(survivors) > len(shares),
                                          None))
            entry.evaluation["epsilon_sum"] = composed_epsilon(self.sum_rows,
                                                               self.config.privacy.delta)
            report["distributed_noise"] = {
                "centres": len(survivors), "shares": len(shares),
                "threshold": int(min(number(m, NOISE_THRESHOLD) for m in shares)),
                "epsilon_sum": entry.evaluation["epsilon_sum"]}
        self._audit_epsilons(survivors)
        self._event("audit_pooled", centres=len(survivors), threshold_raw=request.threshold,
                    secure_aggregation=True)
        return self._audit_entry(request, report)


def reason_words(reason: str) -> Sentence:
    """A centre's refusal sentence, translated when shown: a fixed reason as a word, an
    app refusal with its hashes as its sentence."""
    sentence = refusal_sentence(reason)
    return sentence if isinstance(sentence, Sentence) else word(reason)
