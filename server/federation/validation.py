"""Update validation at the ministry: every training reply is checked before aggregation.

A reply is rejected, with its centre and a one-sentence reason, when it answers another
model version (stale), does not carry exactly one ArrayRecord and one MetricRecord of
the protocol, has an array of the wrong name or shape, holds NaN or infinity, or moves
the model farther than the centres' update bound allows. Centres bound their update
(``client.federation.rounds.bound_update``), so an honest update never exceeds
``training.max_update_norm``; the slack only covers float32 rounding. Rejected replies
are left out and the round goes on with the others.

Evaluation replies are checked the same way against their protocol (score histograms
of ``evaluation.bins`` bins, every equity cell of ``common.equity.audit``, finite numbers): a
malformed one would otherwise stop the pooled evaluation of every centre.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from flwr.app import ArrayRecord, Message, MetricRecord

from common import protocol
from common.equity.audit import CELL_LENGTH, all_cell_keys

#: Metrics every training reply carries (``common.protocol``).
TRAIN_METRIC_KEYS = protocol.TRAIN_METRIC_KEYS
#: Histogram vectors of an evaluation reply (``client.privacy.evaluation``), ``bins`` long each.
HISTOGRAM_VECTORS = protocol.HISTOGRAM_KEYS
#: Every key of an evaluation reply: every centre sends every equity cell, and the
#: per-run evaluation epsilon it booked.
EVALUATION_KEYS = frozenset({*protocol.EVALUATION_SCALAR_KEYS, protocol.EPSILON,
                             *HISTOGRAM_VECTORS, *all_cell_keys()})
#: Config records a reply may carry: the centre's name and the head of its records.
REPLY_CONFIG_RECORDS = frozenset({protocol.CENTRE, protocol.RECORDS_HEAD})
#: Relative slack over the update bound: float32 rounding of weights, nothing more.
NORM_SLACK = 1e-3

FloatArrays = dict[str, npt.NDArray[np.float64]]


def model_version(server_round: int, arrays: ArrayRecord) -> str:
    """The version of a global model: the round it is sent in and a digest of its
    weights (``r3-1f2e...``). Replies must name the version they were trained from."""
    digest = hashlib.sha256()
    for name, array in arrays.items():
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(array.numpy()).tobytes())
    return f"r{server_round}-{digest.hexdigest()[:16]}"


@dataclass(frozen=True)
class ExpectedUpdate:
    """What a valid reply to this round's training instruction looks like."""

    version: str
    global_weights: FloatArrays
    max_update_norm: float

    @classmethod
    def of(cls, version: str, arrays: ArrayRecord, max_update_norm: float) -> ExpectedUpdate:
        weights = {k: np.asarray(v.numpy(), dtype=np.float64) for k, v in arrays.items()}
        return cls(version, weights, max_update_norm)


@dataclass(frozen=True)
class Verdict:
    """The outcome for one reply: ``reason`` is None when accepted; ``norm`` is the
    update's L2 norm when it could be measured."""

    node: int
    reason: str | None
    norm: float | None = None


def _structure_problem(reply: Message, expected: ExpectedUpdate) -> str | None:
    content = reply.content
    if len(content.array_records) != 1 or len(content.metric_records) != 1:
        return (f"it carries {len(content.array_records)} array records and "
                f"{len(content.metric_records)} metric records instead of one of each")
    arrays = next(iter(content.array_records.values()))
    names, wanted = set(arrays.keys()), set(expected.global_weights)
    if names != wanted:
        return f"its arrays {sorted(names)} are not the model's {sorted(wanted)}"
    for name, array in arrays.items():
        shape, wanted_shape = tuple(array.shape), expected.global_weights[name].shape
        if shape != wanted_shape:
            return f"array {name} has shape {shape} instead of {wanted_shape}"
        if not np.issubdtype(np.dtype(array.dtype), np.floating):
            return f"array {name} holds {array.dtype}, not floating-point numbers"
    problem = _configs_problem({k: dict(v) for k, v in content.config_records.items()})
    if problem is not None:
        return problem
    metrics = next(iter(content.metric_records.values()))
    return _metrics_problem(metrics)


def _configs_problem(configs: Mapping[str, Mapping[str, object]]) -> str | None:
    """A reply's config records may name the centre and give its records' head only."""
    if set(configs) - REPLY_CONFIG_RECORDS:
        return f"its config records {sorted(configs)} are not among {sorted(REPLY_CONFIG_RECORDS)}"
    name = configs.get(protocol.CENTRE)
    if name is not None and (set(name) != {protocol.CENTRE_NAME}
                             or not isinstance(name[protocol.CENTRE_NAME], str)):
        return f"its {protocol.CENTRE!r} record must hold the centre's name only"
    head = configs.get(protocol.RECORDS_HEAD)
    if head is not None and set(head) - set(protocol.HEAD_KEYS):
        return f"its {protocol.RECORDS_HEAD!r} record holds keys beyond {protocol.HEAD_KEYS}"
    return None


def _metrics_problem(metrics: MetricRecord) -> str | None:
    if set(metrics.keys()) != TRAIN_METRIC_KEYS:
        return f"its metrics {sorted(metrics.keys())} are not {sorted(TRAIN_METRIC_KEYS)}"
    for key in TRAIN_METRIC_KEYS:
        value = metrics[key]
        if not isinstance(value, int | float) or not math.isfinite(value):
            return f"metric {key} is {value!r}, not a finite number"
    if float(metrics[protocol.NUM_EXAMPLES]) <= 0:  # type: ignore[arg-type]
        return "it reports no training examples"
    return None


def check_update(reply: Message, expected: ExpectedUpdate) -> Verdict:
    """Validate one training reply (not an error reply) against this round's model."""
    node = reply.metadata.src_node_id
    if reply.metadata.group_id != expected.version:
        return Verdict(node, f"it answers model version {reply.metadata.group_id or 'none'}, "
                             f"not the current {expected.version} (stale)")
    problem = _structure_problem(reply, expected)
    if problem is not None:
        return Verdict(node, problem)
    arrays = next(iter(reply.content.array_records.values()))
    squared = 0.0
    for name, array in arrays.items():
        values = np.asarray(array.numpy(), dtype=np.float64)
        if not np.isfinite(values).all():
            return Verdict(node, f"array {name} holds NaN or infinite values")
        squared += float(((values - expected.global_weights[name]) ** 2).sum())
    norm = math.sqrt(squared)
    bound = expected.max_update_norm
    if norm > bound * (1 + NORM_SLACK):
        return Verdict(
            node, f"its update norm {norm:.3g} is beyond the bound {bound:g} (x{norm / bound:.1f})",
            norm,
        )
    return Verdict(node, None, norm)


def screen_updates(
    replies: list[Message], expected: ExpectedUpdate
) -> tuple[list[Message], list[Verdict]]:
    """Split training replies into those to aggregate (error replies pass through: the
    strategy logs them as refusals) and the verdicts on every content reply."""
    kept: list[Message] = []
    verdicts: list[Verdict] = []
    for reply in replies:
        if reply.has_error():
            kept.append(reply)
            continue
        verdict = check_update(reply, expected)
        verdicts.append(verdict)
        if verdict.reason is None:
            kept.append(reply)
    return kept, verdicts


def check_evaluation(reply: Message, version: str, bins: int) -> Verdict:
    """Validate one evaluation reply (not an error reply) of the model ``version``."""
    node = reply.metadata.src_node_id
    if reply.metadata.group_id != version:
        return Verdict(node, f"it evaluates model version {reply.metadata.group_id or 'none'}, "
                             f"not the current {version} (stale)")
    content = reply.content
    if len(content.metric_records) != 1 or len(content.array_records) != 0:
        return Verdict(node, "it does not carry exactly one metric record and no arrays")
    metrics = next(iter(content.metric_records.values()))
    configs = {name: dict(record) for name, record in content.config_records.items()}
    return Verdict(node, evaluation_problem(metrics, configs, bins))


def evaluation_problem(metrics: Mapping[str, object],
                       configs: Mapping[str, Mapping[str, object]], bins: int) -> str | None:
    """What is wrong with an evaluation release (plain or secure), or None."""
    problem = _configs_problem(configs)
    if problem is not None:
        return problem
    if set(metrics.keys()) != EVALUATION_KEYS:
        missing = sorted(EVALUATION_KEYS - set(metrics.keys()))
        extra = sorted(set(metrics.keys()) - EVALUATION_KEYS)
        return f"its metrics lack {missing} or add {extra}"
    for key, value in metrics.items():
        length = bins if key in HISTOGRAM_VECTORS else CELL_LENGTH
        try:
            values = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            return f"metric {key} is not numeric"
        if key.startswith(protocol.EQUITY_PREFIX) or key in HISTOGRAM_VECTORS:
            if values.shape != (length,):
                return f"metric {key} has {values.size} values, not {length}"
        elif values.shape != ():
            return f"metric {key} is not a single number"
        if not np.isfinite(values).all():
            return f"metric {key} holds NaN or infinite values"
    return None
