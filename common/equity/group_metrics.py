"""A pooled equity cell's metrics, their 95 % intervals with the DP noise in them, and
the gaps between an attribute's groups (``common.equity.pooling`` calls these)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import cast

import numpy as np
import numpy.typing as npt

from common.equity.audit import (
    GAPS,
    GROUP_BINS,
    NOISE_REPLICATES,
    BandProbabilities,
    band_auc,
    band_midpoints,
    flag_bin,
    group_bin_edges,
)
from common.equity.intervals import (
    NAN,
    Z95,
    Interval,
    absolute,
    difference,
    widen,
    wilson,
    z_for_pairs,
)
from common.equity.intervals import hanley_mcneil as auc_interval


def cell_metrics(
    vector: npt.NDArray[np.float64], z: float = Z95, spread: Mapping[str, float] | None = None,
    bands: BandProbabilities | None = None,
) -> dict[str, object]:
    """Metrics of one pooled cell, each with its interval (``common.equity.intervals``; 95 %,
    or the level of the normal quantile ``z``).

    ``calibration_error`` is the absolute calibration-in-the-large, |observed rate -
    mean predicted probability|; its interval is that of the observed rate (Wilson),
    shifted by the mean predicted probability (the model's own, not an estimate), then
    taken in absolute value.

    With ``spread`` (the cell's counts carry the centres' DP noise: how far it moves
    each metric, :func:`noise_spread`), each interval is widened by it, and ``noise_sd``
    gives those spreads.

    With ``bands``, ``mean_predicted_calibrated`` is the mean of the probabilities the
    centres' school teams read (recalibrated), from the cell's band counts, and
    ``calibration_error_calibrated`` its distance to the observed rate; with noisy
    counts, whose probability sums come from the bands' midpoints, ``mean_predicted``
    too is read from the bands' representatives (closer to the students' own scores).
    """
    pos, neg = vector[:GROUP_BINS], vector[GROUP_BINS : 2 * GROUP_BINS]
    tp, fp, probability_sum = vector[-3], vector[-2], vector[-1]
    positives, negatives = float(pos.sum()), float(neg.sum())
    n = positives + negatives
    auc = band_auc(pos, neg, None if bands is None else bands.ties)
    if not math.isnan(auc):
        auc = min(max(auc, 0.0), 1.0)  # noisy (DP) counts can push the estimate outside
    tpr, tpr_lo, tpr_hi = wilson(tp, positives, z)
    fpr, fpr_lo, fpr_hi = wilson(fp, negatives, z)
    if bands is not None and spread is not None:
        probability_sum = float(((pos + neg) * bands.raw).sum())
    mean_predicted = probability_sum / n if n else NAN
    observed = positives / n if n else NAN
    _, observed_lo, observed_hi = wilson(positives, n, z)
    auc_ci = auc_interval(auc, positives, negatives, z)
    signed = (observed_lo - mean_predicted, observed_hi - mean_predicted)
    if spread is not None:
        auc_ci = widen(auc, auc_ci, z * spread["auc"])
        tpr_lo, tpr_hi = widen(tpr, (tpr_lo, tpr_hi), z * spread["tpr"])
        fpr_lo, fpr_hi = widen(fpr, (fpr_lo, fpr_hi), z * spread["fpr"])
        observed_lo, observed_hi = widen(observed, (observed_lo, observed_hi),
                                         z * spread["observed_rate"])
        signed = widen(observed - mean_predicted, signed, z * spread["calibration"])
    calibration, calibration_ci = absolute(observed - mean_predicted, signed)
    metrics: dict[str, object] = {
        "n": round(n),
        "positives": round(positives),
        "auc": auc,
        "auc_ci": _unit(auc_ci),
        "tpr": tpr,
        "tpr_ci": _unit((tpr_lo, tpr_hi)),
        "fpr": fpr,
        "fpr_ci": _unit((fpr_lo, fpr_hi)),
        "mean_predicted": mean_predicted,
        "observed_rate": observed,
        "observed_rate_ci": _unit((observed_lo, observed_hi)),
        "calibration_error": calibration,
        "calibration_error_ci": _unit(calibration_ci),
    }
    if bands is not None:
        calibrated = float(((pos + neg) * bands.calibrated).sum()) / n if n else NAN
        metrics["mean_predicted_calibrated"] = calibrated
        metrics["calibration_error_calibrated"] = abs(observed - calibrated)
    if spread is not None:
        metrics["noise_sd"] = dict(spread)
    return metrics


def _unit(interval: Interval) -> list[float]:
    """An interval of a rate or an AUC, kept to 0-1 (NaN, "not measurable", stays)."""
    low, high = interval
    return [low if math.isnan(low) else max(0.0, low), high if math.isnan(high) else min(1.0, high)]


@dataclass(frozen=True)
class CellNoise:
    """The DP noise in a pooled cell: Gaussian of std ``per_count`` on every histogram
    count of each of the ``cells`` centres' cells summed in it (one per centre; several
    for a region); true and false positives and the probability sum derived from the
    noisy bins, as the centres derive them (``centre_cells``), with the operating
    ``threshold``."""

    per_count: float
    cells: int
    threshold: float


def noise_spread(vector: npt.NDArray[np.float64], noise: CellNoise) -> dict[str, float]:
    """How far the DP noise alone moves each metric of a pooled cell: the standard
    deviation over ``NOISE_REPLICATES`` fresh draws of the same noise added to the cell
    (a parametric bootstrap around the released, already noisy, counts; post-processing,
    no privacy cost; a fixed seed, so a report is reproducible)."""
    sd = noise.per_count * math.sqrt(max(noise.cells, 0))
    keys = ("auc", "tpr", "fpr", "observed_rate", "calibration")
    if sd <= 0.0:
        return dict.fromkeys(keys, 0.0)
    rng = np.random.default_rng(0)
    shape = (NOISE_REPLICATES, GROUP_BINS)
    pos = vector[:GROUP_BINS] + rng.normal(0.0, sd, shape)
    neg = vector[GROUP_BINS : 2 * GROUP_BINS] + rng.normal(0.0, sd, shape)
    edges = group_bin_edges(noise.threshold)
    flagged = flag_bin(edges, noise.threshold)
    positives, negatives = pos.sum(axis=1), neg.sum(axis=1)
    n = positives + negatives
    below = np.cumsum(neg, axis=1) - neg
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = ((pos * below).sum(axis=1) + 0.5 * (pos * neg).sum(axis=1)) / (positives * negatives)
        valid = (positives > 0) & (negatives > 0)
        observed = np.where(n > 0, positives / n, np.nan)
        predicted = np.where(n > 0, ((pos + neg) * band_midpoints(edges)).sum(axis=1) / n, np.nan)
        # Not kept to 0-1: near a bound, clipping would shrink the spread the noise has.
        draws = {
            "auc": np.where(valid, auc, np.nan),
            "tpr": np.where(positives >= 1, pos[:, flagged:].sum(axis=1) / positives, np.nan),
            "fpr": np.where(negatives >= 1, neg[:, flagged:].sum(axis=1) / negatives, np.nan),
            "observed_rate": observed,
            "calibration": observed - predicted,
        }
    out = {}
    for key in keys:
        values = draws[key][np.isfinite(draws[key])]
        # Mostly undefined under the noise: the metric cannot be told at all.
        out[key] = float(values.std()) if values.size >= NOISE_REPLICATES // 2 else math.inf
    return out


def gaps_of(
    reported: Mapping[str, Mapping[str, object]],
    metrics_at: Callable[[str, float], Mapping[str, object]],
) -> dict[str, object]:
    """Each gap of one attribute: largest minus smallest value over its reported groups
    (NaN with fewer than two), the two groups that define it (largest first), and the
    95 % interval of their difference (Newcombe's hybrid score method from the two
    groups' own intervals, ``common.equity.intervals.difference``).

    The data choose the pair (the extreme one), so its interval is one of a set that
    holds for every pair of the k groups together (Bonferroni, ``z_for_pairs(k)``): the
    two groups' intervals are recomputed at that level by ``metrics_at(group, z)``
    (:func:`cell_metrics` of the group's pooled cell). With two groups it is the plain
    95 % interval."""
    out: dict[str, object] = {}
    for name, key in GAPS:
        values = {group: float(m[key]) for group, m in reported.items()  # type: ignore[arg-type]
                  if not math.isnan(float(m[key]))}  # type: ignore[arg-type]
        if len(values) < 2:
            out |= {name: NAN, f"{name}_ci": [NAN, NAN], f"{name}_groups": []}
            continue
        high = max(values, key=lambda group: values[group])
        low = min(values, key=lambda group: values[group])
        z = z_for_pairs(len(values))
        interval = difference(values[high], _ci(metrics_at(high, z), key),
                              values[low], _ci(metrics_at(low, z), key))
        out |= {name: values[high] - values[low],
                f"{name}_ci": list(interval),
                f"{name}_groups": [high, low]}
    return out


def _ci(metrics: Mapping[str, object], key: str) -> Interval:
    bounds = cast(Sequence[float], metrics[f"{key}_ci"])
    return (float(bounds[0]), float(bounds[1]))


