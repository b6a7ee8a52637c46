"""Everything a centre can send, declared with its class: the release table.

Beside the wire protocol (``common.protocol``): every key of a reply (plain and secure
mode, training, evaluation and the audit exchange), of the records head, and every
refusal sentence, with what it is a function of:

- ``PUBLIC``: a function of the run's configuration, the centre's public plan (the
  mechanism fixed by the booked size release, ``client.privacy.run_plan``), its site
  policy, the instructions it received and the mechanisms its ledger booked, never of
  a student's record;
- ``NOISED``: the output of a DP mechanism booked in the centre's ledger before it
  leaves (or post-processing of one), named with where it is booked;
- ``MAC``: pseudorandom to whoever lacks the centre's key: an HMAC of its records, or a
  vector masked by SecAgg+;
- ``OUTSIDE``: not covered by the guarantee yet, listed so that it is seen (a software
  fault; an extract that one row makes unreadable as a file, docs/PRIVACY.md "What is
  not covered").

The centre checks every reply against the table before it leaves (:func:`check_reply`,
an undeclared key is a programming error), and the neighbouring-data-sets test
(``tests/client/federation/test_neighbouring.py``) checks the classes: every PUBLIC and
MAC value is the same on data sets that differ by one student, with the same noise.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from common import protocol
from common.equity.audit import all_cell_keys
from common.protocol import Reason


class Class(StrEnum):
    PUBLIC = "public"
    NOISED = "noised"
    MAC = "mac"
    OUTSIDE = "outside"


@dataclass(frozen=True)
class Key:
    """One key a centre sends: its class and what it is a function of (the mechanism
    and where it is booked, for a NOISED key)."""

    cls: Class
    basis: str


SIZE = "the size release: a discrete Gaussian count (COUNT_NOISE_MULTIPLIER, " \
       "sensitivity 1) rounded to SIZE_GRID, booked as the run's 'train' row of round 0"
DP_SGD = "DP-SGD (clipped per-student gradients, Gaussian noise, Poisson sampling of the " \
         "plan's rate), booked as a 'train' row before each round"
HISTOGRAM = "the score histogram with discrete Gaussian noise (sensitivity 1), booked " \
            "as the round's 'evaluate' rows"
AUDIT = "the equity cells with discrete Gaussian noise (sensitivity sqrt(6)), booked " \
        "as the 'evaluate' rows of round rounds + 1"
PLAN = "a function of the run's plan and configuration (the booked mechanisms)"
ZERO = "exact zeros in this phase"
MASKED = "masked by SecAgg+ (pairwise masks and the centre's own mask)"

_HEAD = {
    "actor": Key(Class.PUBLIC, "the centre's name (node configuration)"),
    "audit_head": Key(Class.MAC, "HMAC-SHA256 of the audit log's last line, centre's key"),
    "audit_lines": Key(Class.PUBLIC, "lines of the audit log: one per instruction, "
                       "booking and reply, all public events"),
    "ledger_head": Key(Class.MAC, "HMAC-SHA256 of the ledger's last row, centre's key"),
    "ledger_rows": Key(Class.PUBLIC, "rows of the ledger: the mechanisms of the public "
                       "plans, one per booked release"),
}
assert tuple(_HEAD) == protocol.HEAD_KEYS, "every key of the records head is declared"
_NAME = Key(Class.PUBLIC, "the centre's name (its data file's, node configuration)")

_CELLS = dict.fromkeys(all_cell_keys(), Key(Class.NOISED, AUDIT))
_ZERO_CELLS = dict.fromkeys(all_cell_keys(), Key(Class.PUBLIC, ZERO))
_EVALUATION = {
    protocol.NUM_EXAMPLES: Key(Class.NOISED, "post-processing of " + HISTOGRAM),
    protocol.EPSILON: Key(Class.PUBLIC, PLAN),
    protocol.HIST_POS: Key(Class.NOISED, HISTOGRAM),
    protocol.HIST_NEG: Key(Class.NOISED, HISTOGRAM),
    protocol.PROB_SUM: Key(Class.NOISED, "post-processing of " + HISTOGRAM),
    protocol.SQ_ERR_SUM: Key(Class.NOISED, "post-processing of " + HISTOGRAM),
}
_AUDIT = {**dict.fromkeys(_EVALUATION, Key(Class.PUBLIC, ZERO)),
          protocol.EPSILON: Key(Class.PUBLIC, PLAN)}
_SECURE_NOISE = {
    protocol.NOISE_HISTOGRAM: Key(Class.PUBLIC, "the noise's std: configuration and floor"),
    protocol.NOISE_AUDIT: Key(Class.PUBLIC, "the noise's std: configuration and floor"),
    protocol.NOISE_DISTRIBUTED: Key(Class.PUBLIC, "configuration and floor"),
    protocol.NOISE_THRESHOLD: Key(Class.PUBLIC, "the SecAgg+ round's threshold"),
    protocol.AUDIT_SENSITIVE: Key(Class.PUBLIC, "the site policy and the phase"),
    protocol.NOISE_TRUST: Key(Class.PUBLIC, "the site policy's trust model of distributed "
                            "noise, configuration and floor"),
    protocol.NOISE_COLLUDING: Key(Class.PUBLIC, "the site policy's max_colluding_centres"),
    # A family, declared once (``name.*``): each audit attribute's std.
    f"{protocol.NOISE_AUDIT}.*": Key(Class.PUBLIC, "the noise's std: the run's audit weights"),
}
_IDENTITY = {protocol.CENTRE: _NAME,
             **{f"{protocol.HEAD_PREFIX}{k}": v for k, v in _HEAD.items()}}

#: (mode, phase) -> record -> key -> its class. Plain replies are Message-API records;
#: secure replies (legacy path) are a vector, a weight and flat metrics.
REPLIES: dict[tuple[str, str], dict[str, dict[str, Key]]] = {
    ("plain", "train"): {
        protocol.ARRAYS: {"*": Key(Class.NOISED, DP_SGD)},
        protocol.METRICS: {protocol.NUM_EXAMPLES: Key(Class.NOISED, SIZE),
                           protocol.EPSILON: Key(Class.PUBLIC, PLAN)},
        protocol.CENTRE: {protocol.CENTRE_NAME: _NAME},
        protocol.RECORDS_HEAD: _HEAD,
    },
    ("plain", "evaluate"): {
        protocol.METRICS: {**_EVALUATION, **_ZERO_CELLS},
        protocol.CENTRE: {protocol.CENTRE_NAME: _NAME},
        protocol.RECORDS_HEAD: _HEAD,
    },
    ("plain", "audit"): {
        protocol.METRICS: {**_AUDIT, **_CELLS},
        protocol.CENTRE: {protocol.CENTRE_NAME: _NAME},
        protocol.RECORDS_HEAD: _HEAD,
    },
    ("secure", "train"): {
        "vector": {"*": Key(Class.MAC, MASKED + ", over " + DP_SGD)},
        "weight": {"*": Key(Class.NOISED, SIZE + " (capped at privacy.secagg_max_weight)")},
        protocol.METRICS: {protocol.EPSILON: Key(Class.PUBLIC, PLAN), **_IDENTITY},
    },
    ("secure", "evaluate"): {  # the same for the audit exchange
        "vector": {"*": Key(Class.MAC, MASKED + ", over " + HISTOGRAM + " or " + AUDIT
                            + " (discrete Gaussian)")},
        "weight": {"*": Key(Class.PUBLIC, "1")},
        protocol.METRICS: {protocol.EPSILON: Key(Class.PUBLIC, PLAN), **_SECURE_NOISE,
                           **_IDENTITY},
    },
    ("secure", "legacy-evaluate"): {
        "loss": {"*": Key(Class.NOISED, "post-processing of " + HISTOGRAM)},
        "weight": {"*": Key(Class.NOISED, "post-processing of " + HISTOGRAM)},
        protocol.METRICS: {protocol.RELEASE: Key(Class.NOISED, "the plain evaluation "
                                                 "release as JSON (its own table)"),
                           **_IDENTITY},
    },
}

#: What an evaluation's release is counted over, besides the centre's records: inputs of
#: the instruction, each PUBLIC (the same for every centre; any value keeps each
#: count's sensitivity, since each held-out student still adds 1 to one bin). Issue 30:
#: the score bins are placed by the ministry from the pooled histogram released before
#: (post-processing), not fixed offline on our own synthetic scores.
INSTRUCTION_INPUTS: dict[str, Key] = {
    protocol.EVALUATION_EDGES: Key(Class.PUBLIC, "the interior edges of the score bins, "
                                   "placed by the ministry at the quantiles of the pooled "
                                   "histogram released before (common.metrics.place_edges): "
                                   "post-processing of NOISED releases; checked by the "
                                   "centre (common.metrics.edges_problem)"),
    protocol.AUDIT_THRESHOLD: Key(Class.PUBLIC, "the raw score the audit counts flags at: "
                                  "post-processing of the final pooled histogram"),
    protocol.AUDIT_BANDS: Key(Class.PUBLIC, "the audit's band edges besides the "
                              "threshold, on either side of it, placed at the quantiles "
                              "of the final pooled histogram's students on each side "
                              "(common.equity.audit.place_bands): post-processing of "
                              "NOISED releases; checked by the centre (AUDIT_INVALID)"),
}

#: Sentences of ``Reason`` a centre no longer sends (a decision on an exact count of its
#: students with budget left, issue 26); the ministry still reads them from older ones.
NOT_SENT = frozenset({Reason.BUDGET_RETIRED, Reason.EVALUATION_RETIRED})

#: Every sentence a centre may refuse with, with its class (checked against ``Reason``
#: by the tests: a new sentence is declared here or the suite fails).
REFUSALS: dict[str, Key] = {
    Reason.CONFIG_INVALID: Key(Class.PUBLIC, "the run's configuration"),
    Reason.FLOOR_NO_DP: Key(Class.PUBLIC, "configuration and floor"),
    Reason.FLOOR_EPSILON: Key(Class.PUBLIC, "configuration and floor"),
    Reason.FLOOR_REPLAYABLE: Key(Class.PUBLIC, "configuration and floor"),
    Reason.FLOOR_EVALUATION: Key(Class.PUBLIC, "configuration and floor"),
    Reason.FLOOR_ACCOUNTANT: Key(Class.PUBLIC, "configuration and floor"),
    Reason.OUT_OF_LIMITS: Key(Class.PUBLIC, "configuration, instruction and the centre's "
                              "limits"),
    Reason.NOT_SCHEDULED: Key(Class.PUBLIC, "configuration and the instruction's round"),
    Reason.AUDIT_INVALID: Key(Class.PUBLIC, "the instruction"),
    Reason.AUDIT_DONE: Key(Class.PUBLIC, "the mechanisms the ledger booked for the run"),
    Reason.EDGES_INVALID: Key(Class.PUBLIC, "the instruction and the configuration"),
    Reason.SECAGG_SETTINGS: Key(Class.PUBLIC, "the SecAgg+ settings of the round's setup "
                                "stage and the run's configuration (client.privacy.trust)"),
    Reason.SECAGG_TRUST: Key(Class.PUBLIC, "the round's SecAgg+ threshold, the "
                             "configuration and the floor's trust model "
                             "(client.privacy.trust)"),
    Reason.RUN_BUDGET: Key(Class.PUBLIC, "the mechanisms booked for the run, the "
                           "configuration and the floor"),
    Reason.LIFETIME_CAP: Key(Class.PUBLIC, "the booked mechanisms: a release's cohort is "
                             "chosen within the cap, so only a release no cohort covers "
                             "(centre-wide composition of public rows) can pass it"),
    Reason.TOO_FEW_RECORDS: Key(Class.NOISED, "the released size below min_records: "
                                "post-processing of " + SIZE + " (exact without DP)"),
    Reason.DATA_UNUSABLE: Key(Class.OUTSIDE, "the centre's files as files (a missing or "
                              "unreadable file, ledger or state folder, a format, header "
                              "or mapping that cannot be read, a required column "
                              "missing: public for a well-formed extract); never a count "
                              "of invalid rows (client.ingest.federated_extract). Outside: "
                              "a file one row makes unreadable (a line with more fields "
                              "than the header, a byte the declared encoding cannot "
                              "decode, past MAX_EXTRACT_BYTES, no row at all)"),
    Reason.INTERNAL: Key(Class.OUTSIDE, "a fault in the centre's software"),
}


class UndeclaredRelease(AssertionError):
    """A reply carries a key, or a refusal a sentence, that the table does not declare:
    a programming error (the reply is not sent)."""


def key_of(table: Mapping[str, Key], key: str) -> Key | None:
    """The declaration of ``key`` in one record's table (the key itself, its family
    ``prefix.*``, or the whole record ``*``); None if undeclared."""
    if key in table:
        return table[key]
    family = next((v for k, v in table.items() if k.endswith(".*") and
                   key.startswith(k[:-1])), None)
    return family if family is not None else table.get("*")


def check_reply(mode: str, phase: str, records: Mapping[str, Iterable[str]]) -> None:
    """Raise :class:`UndeclaredRelease` unless every key of every record of a reply
    (``records``: record name -> its keys) is declared for ``(mode, phase)``."""
    tables = REPLIES.get((mode, phase))
    if tables is None:
        raise UndeclaredRelease(f"no reply is declared for {mode} {phase}")
    for record, keys in records.items():
        table = tables.get(record)
        if table is None:
            raise UndeclaredRelease(f"record {record!r} is not declared for {mode} {phase}")
        undeclared = sorted(k for k in keys if key_of(table, k) is None)
        if undeclared:
            raise UndeclaredRelease(f"{mode} {phase} reply: {record!r} holds undeclared "
                                    f"keys {undeclared}")


def check_refusal(reason: str) -> None:
    """Raise :class:`UndeclaredRelease` unless ``reason`` is a declared refusal."""
    if reason not in REFUSALS:
        raise UndeclaredRelease(f"the refusal {reason!r} is not declared")


def classes(mode: str, phase: str) -> dict[tuple[str, str], Class]:
    """(record, key) -> class of every declared key of a ``(mode, phase)`` reply
    (families and whole records under ``*``)."""
    return {(record, key): value.cls for record, table in REPLIES[(mode, phase)].items()
            for key, value in table.items()}
