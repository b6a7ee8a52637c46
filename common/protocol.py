"""The wire protocol between the ministry and the centres: record and key names, reply
codes and the fixed reasons of refusals, with typed accessors both sides use.

Flower-free (records are read as mappings): the ClientApp (``client.federation.centre_task``) and
the ServerApp (``server.federation.run``) import it; neither imports the other.

What a centre sends is exactly what the privacy guarantee covers (docs/PRIVACY.md,
"What leaves a centre"): the keys below are the whole list, and
``TRAIN_METRIC_KEYS`` / ``EVALUATION_SCALAR_KEYS`` are checked by the ministry and by
the capture test of every reply.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum
from typing import TYPE_CHECKING

from common.i18n.catalogue import N_

if TYPE_CHECKING:  # the audit imports numpy and pandas: not at a command's start
    from common.equity.audit import Threshold

# ---------------------------------------------------------------- records of a message
ARRAYS = "arrays"  # the global model (instruction) or the centre's weights (reply)
METRICS = "metrics"  # the centre's aggregate, DP-noised release
CONFIG = "config"  # the instruction's task (run name, round, model version)
CENTRE = "centre"  # the centre's declared name (its data file's), in every reply
RECORDS_HEAD = "records-head"  # the head of the centre's audit log and ledger

# ---------------------------------------------------------------- keys of the task
RUN_NAME = "run-name"  # the logical run: what the centres' ledgers book under
SERVER_ROUND = "server-round"
MODEL_VERSION = "model-version"  # round and digest of the global model sent
CENTRE_NAME = "name"  # the only key of the CENTRE record
#: The ministry's audit log when the instruction left: the MAC of its last line and its
#: number of lines (public: a MAC). The centre records them in its own audit log, where
#: the ministry cannot rewrite them (``common.records.chain.ministry_problems``).
MINISTRY_HEAD = "ministry-head"
MINISTRY_LINES = "ministry-lines"
#: An evaluation instruction's phase: absent (or EVALUATE) for a round's evaluation,
#: AUDIT for the equity-audit exchange that follows the final round, with the three
#: keys after it.
PHASE = "phase"
PHASE_EVALUATE, PHASE_AUDIT = "evaluate", "audit"
AUDIT_THRESHOLD = "audit-threshold"  # the model's raw score the audit counts flags at
CALIBRATION_SLOPE = "calibration-slope"  # the ministry's Platt recalibration: which
CALIBRATION_INTERCEPT = "calibration-intercept"  # calibrated probability that score is
#: The audit's lower band edges (logits, as text) the ministry placed below the
#: threshold from the final pooled histogram (issue 30; absent: 1 logit apart).
AUDIT_BANDS = "audit-bands"
#: An evaluation instruction's score bins (issue 30): the interior edges on the logit
#: scale, as text (``"-3.1,-2.9,..."``, which both Flower APIs carry), placed by the
#: ministry from the pooled histogram released before (``common.metrics.place_edges``);
#: absent: the fixed bins. Public input, the same for every centre, checked by each
#: (``common.metrics.edges_problem``) before anything is counted.
EVALUATION_EDGES = "evaluation-edges"

# ---------------------------------------------------------------- keys of the release
NUM_EXAMPLES = "num-examples"  # Flower's FedAvg weight: a noisy, booked count
EPSILON = "epsilon"  # this run's training epsilon at the centre, from its public plan
HIST_POS = "hist_pos"
HIST_NEG = "hist_neg"
PROB_SUM = "prob_sum"
SQ_ERR_SUM = "sq_err_sum"
HISTOGRAM_KEYS = (HIST_POS, HIST_NEG, PROB_SUM)
EQUITY_PREFIX = "eq."
#: The one metric of a secure (legacy path) evaluation reply: the release, as JSON.
RELEASE = "release"
#: Prefix of the records head's keys in a secure reply (legacy metrics are flat).
HEAD_PREFIX = "head."

#: Every metric of a training reply: nothing else leaves with the weights.
TRAIN_METRIC_KEYS = frozenset({NUM_EXAMPLES, EPSILON})
#: Scalar metrics of an evaluation reply (the rest are histograms and equity cells).
EVALUATION_SCALAR_KEYS = frozenset({NUM_EXAMPLES, SQ_ERR_SUM})

#: Keys of the records head (``client.privacy.records.records_head``): MACs and lengths,
#: no figure of the centre's students (``common.releases``).
HEAD_KEYS = ("actor", "audit_head", "audit_lines", "ledger_head", "ledger_rows")

# ------------------------------------------- keys of the secure (legacy) evaluation
#: Keys of the legacy fit instruction that asks a centre for its secure evaluation
#: (SecAgg+ sums only fit replies): the phase, the region slots, the centre's slot
#: (``common.privacy.secure_release`` lays the vector out).
SECURE_PHASE, SECURE_EVALUATE = "secure.phase", "evaluate"
SECURE_REGIONS, SECURE_REGION, SECURE_COUNTS = "secure.regions", "secure.region", "secure.counts"
#: Metric keys beside a centre's masked vector (plaintext: functions of the run's
#: configuration, the centre's floor and the round's threshold, no count): the std of
#: its noise on each histogram and cell count, whether it is a share, the threshold.
NOISE_HISTOGRAM, NOISE_AUDIT = "noise.histogram", "noise.audit"
NOISE_DISTRIBUTED, NOISE_THRESHOLD = "noise.distributed", "noise.threshold"
AUDIT_SENSITIVE = "audit.sensitive"  # 1: its sex and indigenous cells carry counts
#: The trust model a share of distributed noise was booked under (the site policy's
#: ``distributed_noise_trust``: 1 'secure-aggregation', 0 'alone' or no share) and the
#: colluding centres it assumes (``max_colluding_centres``; 0 under 'alone').
NOISE_TRUST, NOISE_COLLUDING = "noise.trust", "noise.colluding"


def audit_noise_key(attribute: str) -> str:
    """The metric beside a centre's masked audit counts that gives the std of the noise
    on each count of ``attribute``'s cells (``NOISE_AUDIT`` when absent)."""
    return f"{NOISE_AUDIT}.{attribute}"


class Reply(IntEnum):
    """Codes of a centre's error replies (Flower ``Error.code``)."""

    DATA = 1001  # the centre's data cannot be used
    REFUSED = 1002  # the centre declines: its budget, too few records
    CONFIG = 1003  # the run's configuration is invalid
    FLOOR = 1004  # the run asks for less privacy than the centre's floor
    NOT_APPROVED = 1005  # the app is not one the centre approved
    INTERNAL = 1006  # the centre's own code failed (a programming error, logged there)


#: Codes that will not change within a run: a centre that answers one is out of it.
LASTING_REFUSALS = frozenset({Reply.CONFIG, Reply.FLOOR, Reply.NOT_APPROVED})


class Reason:
    """The fixed sentences a centre sends with a refusal. They carry no count and no
    value of the centre's data: the numbers stay in the centre's own log. They travel in
    English (the protocol's words); the ministry's pages show them in their language
    (catalogue messages: ``common.pages``' ``reason`` filter)."""

    DATA_UNUSABLE = N_("The centre's data cannot be used for this task; its operators have "
                        "the details.")
    TOO_FEW_RECORDS = N_("The centre has fewer training records than its policy requires.")
    LIFETIME_CAP = N_("This release would take the centre past its lifetime privacy cap.")
    BUDGET_RETIRED = N_("Too few of the centre's training records have privacy budget left "
                         "for this run.")
    EVALUATION_RETIRED = N_("None of the centre's held-out records has privacy budget left "
                            "for this run's evaluation.")
    RUN_BUDGET = N_("This release would take the run past its privacy budget at this centre.")
    CONFIG_INVALID = N_("The run's configuration is invalid.")
    INTERNAL = N_("The centre could not complete the task because of an error in its own "
                   "software; its operators have the details.")
    FLOOR_NO_DP = N_("The centre's privacy floor requires DP, and this run trains without it.")
    FLOOR_EPSILON = N_("The run's epsilon target is above the largest the centre's privacy "
                        "floor accepts per run.")
    FLOOR_REPLAYABLE = N_("The centre's privacy floor refuses replayable (seeded) noise.")
    FLOOR_EVALUATION = N_("The centre's privacy floor refuses unnoised evaluation releases.")
    FLOOR_ACCOUNTANT = N_("The centre's privacy floor books with the RDP accountant only.")
    OUT_OF_LIMITS = N_("The run asks for more work than the centre's limits accept (model "
                       "size, rounds, epochs, batch size, bins, regions or message size).")
    NOT_SCHEDULED = N_("The run's configuration schedules no evaluation release for this "
                       "round.")
    AUDIT_INVALID = N_("The equity-audit request is invalid: it must follow the run's final "
                       "round with a finite threshold between 0 and 1.")
    AUDIT_DONE = N_("The centre has already released this run's equity audit.")
    SECAGG_SETTINGS = N_("The SecAgg+ settings the centre received are inconsistent or "
                         "differ from those the run's configuration declares.")
    SECAGG_TRUST = N_("The SecAgg+ threshold is too low for the trust model of the "
                      "centre's privacy floor.")
    EDGES_INVALID = N_("The evaluation request's score bins are invalid: they must be "
                       "one fewer increasing edges than the run's bins.")


def refusal_text(centre: str, reason: str) -> str:
    """The ``Error.reason`` of a refusal: the centre's declared name, then the sentence."""
    return f"{centre}: {reason}" if centre else reason


def refusing_centre(text: str, fallback: str) -> tuple[str, str]:
    """(centre name, sentence) of a refusal's text; ``fallback`` names a centre that gave
    no name (an older client, or a node the SuperLink answered for)."""
    name, sep, sentence = text.partition(": ")
    if sep and name and " " not in name and sentence:
        return name, sentence
    return fallback, text


@dataclass(frozen=True)
class Task:
    """What an instruction asks: the logical run, the round, the model version."""

    run_name: str
    server_round: int
    model_version: str

    def as_config(self) -> dict[str, str | int]:
        return {RUN_NAME: self.run_name, SERVER_ROUND: self.server_round,
                MODEL_VERSION: self.model_version}


def task_of(config: Mapping[str, object], default_run: str = "") -> Task:
    """The task of an instruction's config (``default_run`` when it names no run)."""
    run_name = str(config.get(RUN_NAME, "") or default_run)
    raw_round = config.get(SERVER_ROUND, 0)
    server_round = int(raw_round) if isinstance(raw_round, int | float | str) else 0
    return Task(run_name, server_round, str(config.get(MODEL_VERSION, "") or ""))


def ministry_head_of(config: Mapping[str, object]) -> dict[str, str | int]:
    """The ministry's audit head an instruction carries, as the fields of the centre's
    ``task_received`` line (``ministry_head``, ``ministry_lines``); empty without one."""
    head, lines = config.get(MINISTRY_HEAD), config.get(MINISTRY_LINES)
    if not isinstance(head, str) or isinstance(lines, bool) or not isinstance(lines, int):
        return {}
    return {"ministry_head": head[:128], "ministry_lines": lines}


@dataclass(frozen=True)
class AuditRequest:
    """What an audit instruction carries: the raw-score ``threshold`` the centres count
    true and false positives at, and the Platt recalibration (``slope``, ``intercept``)
    that maps it to the calibrated probability the audit is read at."""

    threshold: float
    slope: float
    intercept: float
    #: The band edges besides the threshold, on either side of it (logits; None: 1 logit
    #: apart below it), placed by the ministry from the final pooled histogram
    #: (``common.equity.audit.place_bands``).
    bands: tuple[float, ...] | None = None
    malformed_bands: bool = False

    def as_config(self) -> dict[str, str | float]:
        config: dict[str, str | float] = {
            PHASE: PHASE_AUDIT, AUDIT_THRESHOLD: self.threshold,
            CALIBRATION_SLOPE: self.slope, CALIBRATION_INTERCEPT: self.intercept}
        if self.bands is not None:
            config[AUDIT_BANDS] = ",".join(repr(float(v)) for v in self.bands)
        return config

    @property
    def cut(self) -> Threshold:
        """The raw threshold with its bands, as the audit's counting and reading take it."""
        from common.equity.audit import Threshold

        return Threshold(self.threshold, self.bands)

    @property
    def valid(self) -> bool:
        """A finite threshold strictly between 0 and 1, a finite positive slope and a
        finite intercept, and well-formed bands besides the threshold: whatever the
        ministry sent, nothing else is counted at."""
        from common.equity.audit import bands_problem

        numbers = (self.threshold, self.slope, self.intercept)
        return (all(math.isfinite(v) for v in numbers) and 0.0 < self.threshold < 1.0
                and self.slope > 0.0 and not self.malformed_bands
                and (self.bands is None or bands_problem(self.threshold, self.bands) is None))


def is_audit(config: Mapping[str, object]) -> bool:
    """Whether an evaluation instruction asks for the equity audit."""
    return config.get(PHASE) == PHASE_AUDIT


def audit_request_of(config: Mapping[str, object]) -> AuditRequest:
    """The audit request of an instruction's config; a missing or non-numeric value is
    NaN (so :attr:`AuditRequest.valid` is False)."""
    def value(key: str) -> float:
        raw = config.get(key)
        if isinstance(raw, bool) or not isinstance(raw, int | float):
            return math.nan
        return float(raw)

    bands, malformed = None, False
    raw = config.get(AUDIT_BANDS)
    if raw is not None:
        try:
            assert isinstance(raw, str) and len(raw) < 1_000
            bands = tuple(float(part) for part in raw.split(","))
        except (AssertionError, ValueError):
            malformed = True
    return AuditRequest(value(AUDIT_THRESHOLD), value(CALIBRATION_SLOPE),
                        value(CALIBRATION_INTERCEPT), bands, malformed)


def edges_config(edges: tuple[float, ...] | None) -> dict[str, str]:
    """The instruction's key for the evaluation's bins (none for the fixed bins)."""
    if edges is None:
        return {}
    return {EVALUATION_EDGES: ",".join(repr(float(v)) for v in edges)}


@dataclass(frozen=True)
class EdgesRequest:
    """The bins an evaluation instruction asks for: ``edges`` (None: the fixed bins),
    or ``malformed`` when the text is not a list of numbers."""

    edges: tuple[float, ...] | None = None
    malformed: bool = False


def edges_of(config: Mapping[str, object]) -> EdgesRequest:
    """The evaluation's bins an instruction carries (:func:`edges_config`)."""
    raw = config.get(EVALUATION_EDGES)
    if raw is None:
        return EdgesRequest()
    if not isinstance(raw, str) or len(raw) > 20_000:
        return EdgesRequest(malformed=True)
    try:
        return EdgesRequest(tuple(float(part) for part in raw.split(",")))
    except ValueError:
        return EdgesRequest(malformed=True)


@dataclass(frozen=True)
class TrainRelease:
    """The metrics of a training reply."""

    num_examples: int
    epsilon: float

    def as_metrics(self) -> dict[str, int | float]:
        return {NUM_EXAMPLES: self.num_examples, EPSILON: self.epsilon}

    @classmethod
    def of(cls, metrics: Mapping[str, object]) -> TrainRelease:
        return cls(int(_number(metrics, NUM_EXAMPLES)), _number(metrics, EPSILON))


def _number(metrics: Mapping[str, object], key: str) -> float:
    value = metrics[key]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"metric {key} is {value!r}, not a number")
    return float(value)


def head_metrics(head: Mapping[str, str | int]) -> dict[str, str | int]:
    """The records head as flat metrics of a secure (legacy) reply."""
    return {f"{HEAD_PREFIX}{key}": value for key, value in head.items()}


def head_of(values: Mapping[str, object]) -> dict[str, object]:
    """The records head of a reply: from its RECORDS_HEAD record, or from the prefixed
    metrics of a secure reply; empty when the reply carries none."""
    if any(key.startswith(HEAD_PREFIX) for key in values):
        return {key[len(HEAD_PREFIX):]: value for key, value in values.items()
                if key.startswith(HEAD_PREFIX)}
    return {key: values[key] for key in HEAD_KEYS if key in values}
