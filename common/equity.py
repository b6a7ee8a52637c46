"""Federated equity audit: per-group counts at each centre, pooled metrics at the server.

Each centre computes, for each audit group (sex, EHDAA, Indigenous, immigrant
generation, home language, IMSE band), a fixed-length vector of COUNTS over its
held-out records: a coarse score histogram by label (for the group's AUC and
calibration), true and false positives at the operating threshold, and the sum of
predicted probabilities. Only these sums leave the centre; a group with fewer than
``MIN_CELL`` students at a centre is sent as zeros (never reported for that centre
alone). The server sums the vectors and reports a pooled group only when it holds at
least ``MIN_CELL`` students from at least ``MIN_CENTRES_PER_CELL`` centres, so that no
single centre, and in particular no Indigenous-governed board, is shown on its own.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import cast

import numpy as np
import numpy.typing as npt
import pandas as pd

from common.intervals import (
    NAN,
    Z95,
    Interval,
    absolute,
    difference,
    widen,
    wilson,
    z_for_pairs,
)
from common.intervals import hanley_mcneil as auc_interval

MIN_CELL = 10
MIN_CENTRES_PER_CELL = 3
# Coarse score bands, fixed edges on the logit scale, 2 apart below the operating
# threshold, whose logit is the top edge: all flagged students in one band, so true and
# false positives are single counts. With DP noise on every count, few bands buy
# precision: the noise of a group's totals grows with the square root of the number of
# bands (docs/PRIVACY.md "Spending the evaluation budget": 20 bands of 0.4 gave the
# demo's sex=F an AUC interval 0.19 wide, these 5 give 0.12 at the same noise). The
# group AUC is then that of 5 ordered bands (ties count half): compare groups with one
# another, not with the pooled AUC of the finer pooled histogram.
GROUP_BINS = 5
_LOGIT_STEP = 2.0
# Vector layout of one cell: pos[5], neg[5], tp, fp, probability sum.
CELL_LENGTH = 2 * GROUP_BINS + 3
AUDIT_SENSITIVE = ("sex", "indigenous")  # used only where the centre's policy allows
# Noise replicates the server draws to estimate how far the DP noise moves a metric.
NOISE_REPLICATES = 400


@dataclass(frozen=True)
class AuditGroup:
    """One audit attribute and how its values are read from the harmonised record."""

    name: str
    column: str
    values: tuple[str, ...]

    def labels(self, frame: pd.DataFrame) -> pd.Series:
        """Each row's cell label (or <NA>) for this attribute."""
        if self.column not in frame.columns:
            return pd.Series(pd.NA, index=frame.index, dtype="string")
        raw = frame[self.column]
        if self.name == "imse_band":
            decile = pd.to_numeric(raw, errors="coerce")
            band = pd.cut(decile, bins=[0, 3, 7, 10], labels=list(self.values))
            return band.astype("string")
        if self.values == ("false", "true"):
            return raw.map(lambda v: pd.NA if pd.isna(v) else str(bool(v)).lower()).astype(
                "string"
            )
        return raw.astype("string")


AUDIT_GROUPS: tuple[AuditGroup, ...] = (
    AuditGroup("sex", "sex", ("F", "M", "X")),
    AuditGroup("ehdaa", "ehdaa", ("false", "true")),
    AuditGroup("indigenous", "indigenous", ("false", "true")),
    AuditGroup("immigrant_generation", "immigrant_generation", ("0", "1", "2")),
    AuditGroup("home_language", "home_language", ("fr", "en", "other")),
    AuditGroup("imse_band", "imse_decile", ("1-3", "4-7", "8-10")),
)
AUDIT_COLUMNS: tuple[str, ...] = tuple(dict.fromkeys(g.column for g in AUDIT_GROUPS))


# Centre size bands by usable students (training + held-out records).
SIZE_BANDS: tuple[tuple[str, int, int | None], ...] = (
    ("small", 0, 2_000), ("medium", 2_000, 8_000), ("large", 8_000, None)
)


def size_band(num_students: float) -> str:
    """The size band of a centre with ``num_students`` usable records. The count may be
    a noisy (DP) one, even below zero for a tiny centre: it then counts as small."""
    num_students = max(num_students, 0)
    for name, low, high in SIZE_BANDS:
        if num_students >= low and (high is None or num_students < high):
            return name
    raise AssertionError(num_students)  # the last band is open-ended


def group_bin_edges(threshold: float) -> npt.NDArray[np.float64]:
    """Interior bin edges (probabilities) of the group histograms, the last on
    ``threshold``."""
    anchor = math.log(threshold / (1 - threshold))
    logits = anchor - _LOGIT_STEP * np.arange(GROUP_BINS - 2, -1, -1)
    return np.asarray(1.0 / (1.0 + np.exp(-logits)), dtype=np.float64)


def _flag_bin(edges: npt.NDArray[np.float64], threshold: float) -> int:
    """First bin whose scores are all >= threshold."""
    return int(np.searchsorted(edges, threshold, side="left")) + 1


def cell_key(group: str, value: str) -> str:
    return f"eq.{group}={value}"


def all_cell_keys() -> list[str]:
    return [cell_key(g.name, v) for g in AUDIT_GROUPS for v in g.values]


def centre_cells(
    audit: pd.DataFrame,
    probabilities: npt.NDArray[np.float64],
    labels: npt.NDArray[np.floating],
    *,
    threshold: float,
    sensitive_allowed: bool,
    noise_std: float = 0.0,
    rng: np.random.Generator | None = None,
) -> dict[str, list[float]]:
    """The counts a centre sends for its held-out records: one vector per cell, every
    cell present so every centre sends the same keys.

    Without noise, a cell under ``MIN_CELL`` students is sent as zeros. With
    ``noise_std`` > 0 (student-level DP: each student adds one count to one cell per
    attribute, so the L2 sensitivity of all cells together is sqrt(number of
    attributes)), Gaussian noise of that std is added to every histogram count of every
    cell, nothing is suppressed here (suppressing on true counts would leak), and the
    true/false positives and probability sums are derived from the noisy bins.
    """
    y = np.asarray(labels, dtype=np.float64)
    edges = group_bin_edges(threshold)
    first_flagged = _flag_bin(edges, threshold)
    centres = band_midpoints(edges)
    bins = np.searchsorted(edges, probabilities, side="right")
    noisy = noise_std > 0
    if noisy and rng is None:
        rng = np.random.default_rng()
    cells: dict[str, list[float]] = {}
    for group in AUDIT_GROUPS:
        allowed = sensitive_allowed or group.name not in AUDIT_SENSITIVE
        row_labels = group.labels(audit).fillna("").to_numpy(dtype=str)
        for value in group.values:
            vector = np.zeros(CELL_LENGTH)
            member = row_labels == value
            if allowed and (noisy or member.sum() >= MIN_CELL):
                yb, bb = y[member], bins[member]
                pos = np.bincount(bb, weights=yb, minlength=GROUP_BINS).astype(np.float64)
                neg = np.bincount(bb, weights=1.0 - yb, minlength=GROUP_BINS).astype(np.float64)
                if noisy:
                    assert rng is not None
                    pos += rng.normal(0.0, noise_std, GROUP_BINS)
                    neg += rng.normal(0.0, noise_std, GROUP_BINS)
                    probability_sum = float(((pos + neg) * centres).sum())
                else:
                    probability_sum = float(probabilities[member].sum())
                vector[:GROUP_BINS], vector[GROUP_BINS : 2 * GROUP_BINS] = pos, neg
                vector[-3] = float(pos[first_flagged:].sum())
                vector[-2] = float(neg[first_flagged:].sum())
                vector[-1] = probability_sum
            cells[cell_key(group.name, value)] = vector.tolist()
    return cells


def band_midpoints(edges: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """A representative probability per bin (midpoint in logit), for noisy sums."""
    logits = np.log(edges / (1 - edges))
    mids = np.concatenate(([logits[0] - _LOGIT_STEP / 2], (logits[:-1] + logits[1:]) / 2,
                           [logits[-1] + _LOGIT_STEP / 2]))
    return np.asarray(1.0 / (1.0 + np.exp(-mids)), dtype=np.float64)


def _auc(pos: npt.NDArray[np.float64], neg: npt.NDArray[np.float64]) -> float:
    p, n = pos.sum(), neg.sum()
    if p <= 0 or n <= 0:
        return float("nan")
    below = np.cumsum(neg) - neg
    return float(((pos * below).sum() + 0.5 * (pos * neg).sum()) / (p * n))


@dataclass(frozen=True)
class BandProbabilities:
    """A representative probability for each of the ``GROUP_BINS`` score bands, before
    (``raw``) and after (``calibrated``) the run's recalibration, read by the server
    from the final pooled histogram (``common.audit_reading.band_probabilities``)."""

    raw: npt.NDArray[np.float64]
    calibrated: npt.NDArray[np.float64]


def cell_metrics(
    vector: npt.NDArray[np.float64], z: float = Z95, spread: Mapping[str, float] | None = None,
    bands: BandProbabilities | None = None,
) -> dict[str, object]:
    """Metrics of one pooled cell, each with its interval (``common.intervals``; 95 %,
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
    auc = _auc(pos, neg)
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
    flagged = _flag_bin(edges, noise.threshold)
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


# Gap name -> the group metric it compares (its interval is the metric's ``_ci``).
GAPS: tuple[tuple[str, str], ...] = (
    ("equal_opportunity_gap", "tpr"),
    ("fpr_gap", "fpr"),
    ("calibration_gap", "calibration_error"),
    ("auc_gap", "auc"),
)


def gaps_of(
    reported: Mapping[str, Mapping[str, object]],
    metrics_at: Callable[[str, float], Mapping[str, object]],
) -> dict[str, object]:
    """Each gap of one attribute: largest minus smallest value over its reported groups
    (NaN with fewer than two), the two groups that define it (largest first), and the
    95 % interval of their difference (Newcombe's hybrid score method from the two
    groups' own intervals, ``common.intervals.difference``).

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


@dataclass(frozen=True)
class Placement:
    """Where the ministry's centre register puts a centre: its administrative region and
    whether it is an Indigenous-governed board."""

    region: str
    indigenous_governed: bool = False


@dataclass(frozen=True)
class PooledCell:
    """One cell summed over centres: ``contributing`` centres reach ``MIN_CELL`` in it,
    ``counted`` of them count towards ``MIN_CENTRES_PER_CELL``."""

    total: npt.NDArray[np.float64]
    contributing: int
    counted: int
    noisy_cells: int = 0  # centres' cells summed in it (each with its own noise, if any)

    @property
    def students(self) -> float:
        return _students(self.total)

    @property
    def reportable(self) -> bool:
        return self.students >= MIN_CELL and self.counted >= MIN_CENTRES_PER_CELL


def _students(vector: npt.NDArray[np.float64]) -> float:
    return float(vector[: 2 * GROUP_BINS].sum())


def pool(vectors: Sequence[npt.NDArray[np.float64]],
         counts: Sequence[bool] | None = None, noise_std: float = 0.0,
         summed: Sequence[int] | None = None) -> PooledCell:
    """Sum one cell's vectors; a centre contributes when its count reaches ``MIN_CELL``,
    and counts towards the minimum of centres unless ``counts`` says it does not.

    With DP noise of std ``noise_std`` on each count, a centre's student count carries
    noise of std ``noise_std * sqrt(2 * GROUP_BINS)`` (46 in the demo): a centre with no
    student in the cell would pass ``MIN_CELL`` 4 times in 10. It contributes only when
    its noisy count exceeds ``MIN_CELL`` by two of those standard deviations, so that a
    centre without students in the cell passes 2 times in 100. ``summed``: how many
    noisy cells each vector is the sum of (1 each by default; a region's centre totals
    sum several, :func:`region_cells`)."""
    counts = [True] * len(vectors) if counts is None else counts
    summed = [1] * len(vectors) if summed is None else summed
    reaching = [_students(v) >= MIN_CELL + 2.0 * noise_std * math.sqrt(2 * GROUP_BINS * k)
                for v, k in zip(vectors, summed, strict=True)]
    total = np.sum(vectors, axis=0) if len(vectors) else np.zeros(CELL_LENGTH)
    return PooledCell(np.asarray(total, dtype=np.float64), sum(reaching),
                      sum(r and c for r, c in zip(reaching, counts, strict=True)),
                      sum(k for v, k in zip(vectors, summed, strict=True) if np.any(v)))


#: Attributes a region total may be read from: never restricted by a centre's policy
#: as audit attributes (a centre may still refuse one as a predictor, which drops it).
REGION_SOURCES = tuple(g for g in AUDIT_GROUPS if g.name not in AUDIT_SENSITIVE)


def centre_total(cells: Mapping[str, Sequence[float]]) -> npt.NDArray[np.float64]:
    """One vector over a centre's held-out students, from what it already released: the
    sum of the cells of the attribute of ``REGION_SOURCES`` whose cells hold the most
    students (the first in that order on a tie). Students in a cell the centre suppressed
    (fewer than ``MIN_CELL``), or without that attribute, are not in it."""
    return _centre_total(cells)[0]


def _centre_total(cells: Mapping[str, Sequence[float]]) -> tuple[npt.NDArray[np.float64], int]:
    """:func:`centre_total` and how many cells it sums (each carries its own noise)."""
    best, best_students, summed = np.zeros(CELL_LENGTH), -math.inf, 0
    for group in REGION_SOURCES:
        keys = [cell_key(group.name, value) for value in group.values]
        if not all(key in cells for key in keys):
            continue
        total = np.sum([np.asarray(cells[key], dtype=np.float64) for key in keys], axis=0)
        if _students(total) > best_students:
            best, best_students, summed = total, _students(total), len(keys)
    return np.asarray(best, dtype=np.float64), summed


def region_cells(
    centre_vectors: Sequence[Mapping[str, Sequence[float]]],
    placements: Sequence[Placement | None],
    noise_std: float = 0.0,
) -> dict[str, PooledCell]:
    """Region cells, computed by the server from the centres' releases (post-processing:
    nothing more leaves a centre, nothing more is spent): each centre's
    :func:`centre_total`, summed over the centres the register places in the region.
    A centre it does not place (None) is in no region. Indigenous-governed boards add
    their students to their region but never count towards ``MIN_CENTRES_PER_CELL``."""
    members: dict[str, list[tuple[npt.NDArray[np.float64], bool, int]]] = {}
    for cells, placement in zip(centre_vectors, placements, strict=True):
        if placement is not None and placement.region:
            total, summed = _centre_total(cells)
            members.setdefault(placement.region, []).append(
                (total, not placement.indigenous_governed, summed))
    return {region: pool([v for v, _, _ in entries], [c for _, c, _ in entries], noise_std,
                         [k for _, _, k in entries])
            for region, entries in sorted(members.items())}


def _report(
    attribute: str, cells: Mapping[str, PooledCell], suppressed: list[str],
    threshold: float, noise_std: float, bands: BandProbabilities | None = None,
) -> tuple[dict[str, dict[str, object]], dict[str, object]]:
    """The reported groups of one attribute and its gaps; the cells large enough to
    show but from too few centres are added to ``suppressed``."""

    spreads: dict[str, dict[str, float]] = {}  # the noise's spread does not depend on z

    def metrics_at(value: str, z: float = Z95) -> dict[str, object]:
        cell = cells[value]
        if noise_std > 0 and value not in spreads:
            spreads[value] = noise_spread(cell.total,
                                          CellNoise(noise_std, cell.noisy_cells, threshold))
        return cell_metrics(cell.total, z, spreads.get(value), bands)

    reported: dict[str, dict[str, object]] = {}
    for value, cell in cells.items():
        if cell.reportable:
            reported[value] = {**metrics_at(value), "centres": cell.contributing}
        elif cell.students >= MIN_CELL:
            suppressed.append(f"{attribute}={value}")
    return reported, gaps_of(reported, metrics_at)


def pooled_audit(
    centre_vectors: Sequence[Mapping[str, Sequence[float]]],
    threshold: float,
    placements: Sequence[Placement | None] | None = None,
    noise_std: float = 0.0,
    bands: BandProbabilities | None = None,
) -> dict[str, object]:
    """Sum the centres' cells and report pooled group metrics and gaps.

    Returns the ``equity.json`` structure: ``groups`` (attribute -> value -> metrics),
    ``gaps`` (attribute -> equal-opportunity gap (TPR), FPR gap, calibration gap, AUC
    gap, each with its interval and the two groups behind it, see :func:`gaps_of`) and
    ``suppressed`` cells. With ``placements`` (the centre register's place of each
    centre, in the order of ``centre_vectors``), ``region`` is one more attribute, from
    :func:`region_cells`. ``noise_std`` is the std of the Gaussian noise each centre
    added to each count of its cells (``common.privacy.audit_noise_std``): the intervals
    then include it (:func:`cell_metrics`), and ``noise_std`` is in the result.
    ``bands``: the score bands' representative probabilities, raw and recalibrated
    (:class:`BandProbabilities`), for the calibrated mean predicted of each group.
    """
    groups: dict[str, dict[str, dict[str, object]]] = {}
    gaps: dict[str, dict[str, object]] = {}
    suppressed: list[str] = []
    for group in AUDIT_GROUPS:
        cells = {}
        for value in group.values:
            key = cell_key(group.name, value)
            cells[value] = pool([np.asarray(c[key], dtype=np.float64)
                                 for c in centre_vectors if key in c], noise_std=noise_std)
        groups[group.name], gaps[group.name] = _report(group.name, cells, suppressed,
                                                       threshold, noise_std, bands)
    if placements is not None:
        regions = region_cells(centre_vectors, placements, noise_std)
        groups["region"], gaps["region"] = _report("region", regions, suppressed,
                                                   threshold, noise_std, bands)
    return {
        "threshold": threshold,
        "min_cell": MIN_CELL,
        "min_centres_per_cell": MIN_CENTRES_PER_CELL,
        "noise_std": noise_std,
        "groups": groups,
        "gaps": gaps,
        "suppressed": suppressed,
    }
