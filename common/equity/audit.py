"""Federated equity audit: per-group counts at each centre, pooled metrics at the server.

Each centre computes, for each audit group (sex, EHDAA, Indigenous, immigrant
generation, home language, IMSE band), a fixed-length vector of COUNTS over its
held-out records: a coarse score histogram by label (for the group's AUC and
calibration), true and false positives at the operating threshold, and the sum of
predicted probabilities; each attribute has one more cell, ``UNKNOWN``, for the
students it places in none of its values. Only these sums leave the centre; a group
with fewer than ``MIN_CELL`` students at a centre is sent as zeros (never reported for
that centre alone). The server sums the vectors and reports a pooled group only when
it holds at least ``MIN_CELL`` students from at least ``MIN_CENTRES_PER_CELL`` centres,
so that no single centre, and in particular no Indigenous-governed board, is shown on
its own.

This module holds what both sides share (the groups, the cells, their bands); the
server's side is in ``common.equity.pooling`` (summing cells, the audit) and
``common.equity.group_metrics`` (a cell's metrics, their intervals, the gaps).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from common.discrete_gaussian import discrete_gaussian
from common.metrics import resolved

MIN_CELL = 10
MIN_CENTRES_PER_CELL = 3
# Coarse score bands, fixed edges on the logit scale, 1 apart below the operating
# threshold, whose logit is the top edge: all flagged students in one band, so true and
# false positives are single counts. With DP noise on every count, few bands buy
# precision: the noise of a group's totals grows with the square root of the number of
# bands (docs/PRIVACY.md "Spending the evaluation budget": 20 bands of 0.4 gave the
# demo's sex=F an AUC interval 0.19 wide, 5 bands 2 apart 0.12 at the same noise). They
# are 1 apart, not 2: at the calibrated operating point (raw threshold 0.06-0.11, logit
# about -2.4) the band below logit t - 4 held under a tenth of a group's students, and
# the noise on a near-empty band moves the AUC the most (a noisy count there ranks
# below every negative); 1 apart, the four lower bands each hold a useful share of a
# group's positives and negatives ("Score bands where the students are"). The group AUC
# is then that of 5 ordered bands: with ties counted half, 0.015-0.03 below the group's
# exact AUC; the ministry credits a group's pairs within a band at the share the
# positives win within it in the finer pooled histogram (``BandProbabilities.ties``,
# issue 30 point 3: 0.001-0.006 below on the demo). Those are the fixed bands
# (``evaluation.placement = "fixed"``); by default the ministry places them from the
# final pooled histogram (:func:`place_bands`), on both sides of the threshold where it
# flags many students (issue 30, point 3).
GROUP_BINS = 5
_LOGIT_STEP = 1.0
# Vector layout of one cell: pos[5], neg[5], tp, fp, probability sum.
CELL_LENGTH = 2 * GROUP_BINS + 3
AUDIT_SENSITIVE = ("sex", "indigenous")  # used only where the centre's policy allows
# The cell of the students an attribute does not place in one of its values. Never
# reported as a group: it is there so that each attribute's cells add up to the centre's
# held-out students, which lets the ministry reconcile the attributes' noisy counts
# (``common.equity.consistency``).
UNKNOWN = "unknown"
# Noise replicates the server draws to estimate how far the DP noise moves a metric.
NOISE_REPLICATES = 400


@dataclass(frozen=True)
class AuditGroup:
    """One audit attribute and how its values are read from the harmonised record."""

    name: str
    column: str
    values: tuple[str, ...]

    @property
    def cells(self) -> tuple[str, ...]:
        """The attribute's cells: its values, then ``UNKNOWN`` (every student whose value
        is none of them, or missing, or withheld by the centre's policy), so that an
        attribute's cells always hold all of a centre's held-out students."""
        return (*self.values, UNKNOWN)

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


class Threshold(float):
    """The audit's raw threshold with the band edges the ministry placed from the final
    pooled histogram (issue 30: ``bands``, ``GROUP_BINS - 2`` increasing logits other
    than the threshold's, on either side of it; None: 1 logit apart below it). A float,
    so that every function that counts or reads the audit at a threshold takes it
    unchanged; the bands follow it to :func:`group_bin_edges` on both sides."""

    bands: tuple[float, ...] | None

    def __new__(cls, value: float, bands: tuple[float, ...] | None = None) -> Threshold:
        made = super().__new__(cls, value)
        made.bands = bands
        return made


#: Placed band edges lie at least this far (logits) from each other and from the
#: threshold's logit, and within +-:data:`BAND_LIMIT`.
BAND_GAP = 1e-3
BAND_LIMIT = 30.0


def bands_problem(threshold: float, bands: tuple[float, ...]) -> str | None:
    """Why ``bands`` cannot be the audit's band edges besides ``threshold`` (None: they
    can): ``GROUP_BINS - 2`` finite logits within +-:data:`BAND_LIMIT`, increasing by at
    least :data:`BAND_GAP`, none within :data:`BAND_GAP` of the threshold's logit (on
    either side of it: the threshold stays an edge, so true and false positives stay
    sums of whole bands). What a centre checks before counting."""
    values = np.asarray(bands, dtype=np.float64)
    if len(values) != GROUP_BINS - 2 or not np.all(np.isfinite(values)):
        return f"{len(values)} band edges, not {GROUP_BINS - 2} finite logits"
    top = math.log(threshold / (1 - threshold))
    if np.any(np.diff(values) < 0.99 * BAND_GAP) or np.any(np.abs(values) > BAND_LIMIT):
        return "the band edges do not increase"
    if np.any(np.abs(values - top) < 0.99 * BAND_GAP):
        return "a band edge is on the threshold"
    return None


def place_bands(threshold: float, positives: Sequence[float], negatives: Sequence[float],
                bounds: npt.NDArray[np.float64], noise_sd: float = 0.0
                ) -> tuple[float, ...] | None:
    """The audit's band edges besides the threshold (logits), from the final pooled
    histogram (``positives``, ``negatives``: its noisy counts per bin, not clipped;
    ``bounds``: its ``bins + 1`` edges on the logit scale, end bins closed), the
    threshold one of the ``GROUP_BINS - 1`` edges. With ``s`` the share of the students
    below the threshold (the mean over the labels of each one's share), ``round(
    GROUP_BINS * s)`` bands lie below it (at least 1, at most ``GROUP_BINS - 1``), the
    others above; each side is cut at the equal quantiles of the mixture of the labels'
    distributions on that side. Where the threshold flags few students (the demo, 15 %)
    every other edge falls below it, at the quantiles 1/4, 2/4, 3/4 below it as before;
    where it flags most (a weak signal at 40 % dropout, 98-100 % flagged), the flagged
    students are no longer one band, whose ties cost each group's band AUC 0.05 (issue
    30, point 3). Post-processing of released counts, the same for every centre. A label
    whose counts the noise (``noise_sd`` on each) does not resolve is left out
    (``common.metrics.resolved``); None (the fixed bands) when neither is."""
    top = math.log(threshold / (1 - threshold))
    if not bounds[-1] > bounds[0]:
        return None
    grid = np.linspace(bounds[0], bounds[-1], 2001)
    cdfs = []
    for values in (positives, negatives):
        if not resolved(np.asarray(values, dtype=np.float64), noise_sd):
            continue
        cumulative = np.maximum.accumulate(np.concatenate(([0.0], np.cumsum(values))))
        if cumulative[-1] > 0:
            cdfs.append(np.clip(np.interp(grid, bounds, cumulative) / cumulative[-1], 0.0, 1.0))
    if not cdfs:
        return None
    at = [float(np.interp(top, grid, f)) for f in cdfs]  # 0 or 1 off the histogram's range
    below_share = float(np.mean(at))
    below = min(max(math.floor(GROUP_BINS * below_share + 0.5), 1), GROUP_BINS - 1)
    above = GROUP_BINS - below
    tiny = np.arange(len(grid)) * 1e-12  # strictly increasing, for the interpolation

    def side(shares: list[npt.NDArray[np.float64]], count: int) -> npt.NDArray[np.float64]:
        if count < 2 or not shares:
            return np.zeros(0)
        mixture = np.clip(np.mean(shares, axis=0), 0.0, 1.0) + tiny
        return np.asarray(np.interp(np.arange(1, count) / count, mixture, grid))

    lower = side([f / a for f, a in zip(cdfs, at, strict=True) if a > 0], below)
    upper = side([(f - a) / (1 - a) for f, a in zip(cdfs, at, strict=True) if a < 1], above)
    if len(lower) + len(upper) != GROUP_BINS - 2:
        return None
    lower = np.minimum(lower, top - BAND_GAP * (len(lower) - np.arange(len(lower))))
    upper = np.maximum(upper, top + BAND_GAP * (1 + np.arange(len(upper))))
    logits = np.concatenate((lower, upper))
    for i in range(1, len(logits)):
        if not logits[i - 1] < top < logits[i]:
            logits[i] = max(logits[i], logits[i - 1] + BAND_GAP)
    placed = tuple(round(float(v), 6) for v in logits)
    return placed if bands_problem(threshold, placed) is None else None


def group_bin_edges(threshold: float) -> npt.NDArray[np.float64]:
    """Interior bin edges (probabilities) of the group histograms, one on ``threshold``;
    besides it the bands the ministry placed (:class:`Threshold`, on either side) or,
    without, 1 logit apart below it."""
    anchor = math.log(threshold / (1 - threshold))
    bands = getattr(threshold, "bands", None)
    if bands is not None:
        logits = np.sort(np.append(np.asarray(bands, dtype=np.float64), anchor))
    else:
        logits = anchor - _LOGIT_STEP * np.arange(GROUP_BINS - 2, -1, -1)
    edges = np.asarray(1.0 / (1.0 + np.exp(-logits)), dtype=np.float64)
    # Exactly the threshold: sigmoid(logit(t)) can fall a rounding below t (0.0593...),
    # which would put the flagged band past the threshold's (no true or false positive).
    edges[int(np.argmin(np.abs(logits - anchor)))] = threshold
    return edges


def flag_bin(edges: npt.NDArray[np.float64], threshold: float) -> int:
    """First bin whose scores are all >= threshold."""
    return int(np.searchsorted(edges, threshold, side="left")) + 1


def cell_key(group: str, value: str) -> str:
    return f"eq.{group}={value}"


def attribute_of(key: str) -> str:
    """The attribute of a cell key (:func:`cell_key`)."""
    return key.removeprefix("eq.").partition("=")[0]


def attribute_stds(noise_std: float | Mapping[str, float]) -> dict[str, float]:
    """One noise std per audit attribute: the same for all, or as given
    (``common.privacy.accounting.audit_noise_stds``)."""
    if isinstance(noise_std, Mapping):
        return {g.name: float(noise_std[g.name]) for g in AUDIT_GROUPS}
    return {g.name: float(noise_std) for g in AUDIT_GROUPS}


def all_cell_keys() -> list[str]:
    return [cell_key(g.name, v) for g in AUDIT_GROUPS for v in g.cells]


def centre_cells(
    audit: pd.DataFrame,
    probabilities: npt.NDArray[np.float64],
    labels: npt.NDArray[np.floating],
    *,
    threshold: float,
    sensitive_allowed: bool,
    noise_std: float | Mapping[str, float] = 0.0,
    rng: np.random.Generator | None = None,
    discrete: bool = False,
) -> dict[str, list[float]]:
    """The counts a centre sends for its held-out records: one vector per cell, every
    cell present so every centre sends the same keys.

    Each attribute's ``UNKNOWN`` cell holds the students it places in none of its values
    (all of them for an attribute the centre's policy withholds, whose value cells are
    then zeros), so the cells of every attribute hold every held-out student once.
    Without noise, a cell under ``MIN_CELL`` students is sent as zeros. With
    ``noise_std`` > 0 (student-level DP: each student adds one count to one cell per
    attribute, so the L2 sensitivity of all cells together is sqrt(number of
    attributes)), Gaussian noise of that std (one per attribute, as
    ``common.privacy.accounting.audit_noise_stds`` gives them) is added to every histogram count of
    every cell, nothing is suppressed here (suppressing on true counts would leak), and the
    true/false positives and probability sums are derived from the noisy bins.
    ``discrete``: the noise is the discrete Gaussian of that std
    (``common.discrete_gaussian``), so the counts stay integers, as SecAgg+ sums them.
    """
    y = np.asarray(labels, dtype=np.float64)
    edges = group_bin_edges(threshold)
    first_flagged = flag_bin(edges, threshold)
    centres = band_midpoints(edges)
    bins = np.searchsorted(edges, probabilities, side="right")
    stds = attribute_stds(noise_std)
    noisy = max(stds.values()) > 0
    if noisy and rng is None:
        rng = np.random.default_rng()
    cells: dict[str, list[float]] = {}
    for group in AUDIT_GROUPS:
        allowed = sensitive_allowed or group.name not in AUDIT_SENSITIVE
        row_labels = group.labels(audit).fillna("").to_numpy(dtype=str)
        if not allowed:
            row_labels = np.full(len(row_labels), "")
        placed = np.isin(row_labels, group.values)
        for value in group.cells:
            vector = np.zeros(CELL_LENGTH)
            member = ~placed if value == UNKNOWN else row_labels == value
            if (allowed or value == UNKNOWN) and (noisy or member.sum() >= MIN_CELL):
                yb, bb = y[member], bins[member]
                pos = np.bincount(bb, weights=yb, minlength=GROUP_BINS).astype(np.float64)
                neg = np.bincount(bb, weights=1.0 - yb, minlength=GROUP_BINS).astype(np.float64)
                if noisy:
                    assert rng is not None
                    pos += _noise(rng, stds[group.name], discrete)
                    neg += _noise(rng, stds[group.name], discrete)
                    probability_sum = float(((pos + neg) * centres).sum())
                else:
                    probability_sum = float(probabilities[member].sum())
                vector[:GROUP_BINS], vector[GROUP_BINS : 2 * GROUP_BINS] = pos, neg
                vector[-3] = float(pos[first_flagged:].sum())
                vector[-2] = float(neg[first_flagged:].sum())
                vector[-1] = probability_sum
            cells[cell_key(group.name, value)] = vector.tolist()
    return cells


def _noise(rng: np.random.Generator, std: float, discrete: bool) -> npt.NDArray[np.float64]:
    if discrete:
        return discrete_gaussian(rng, std, GROUP_BINS).astype(np.float64)
    return rng.normal(0.0, std, GROUP_BINS)


def band_midpoints(edges: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """A representative probability per bin (midpoint in logit), for noisy sums."""
    logits = np.log(edges / (1 - edges))
    # The end bands as wide as their neighbour (1 logit for the fixed bands).
    first = logits[1] - logits[0] if len(logits) > 1 else _LOGIT_STEP
    last = logits[-1] - logits[-2] if len(logits) > 1 else _LOGIT_STEP
    mids = np.concatenate(([logits[0] - first / 2], (logits[:-1] + logits[1:]) / 2,
                           [logits[-1] + last / 2]))
    return np.asarray(1.0 / (1.0 + np.exp(-mids)), dtype=np.float64)


def band_auc(pos: npt.NDArray[np.float64], neg: npt.NDArray[np.float64],
             ties: npt.NDArray[np.float64] | None = None) -> float:
    """The AUC of counts in ordered bands: a positive above a negative wins, a pair in
    one band wins with the share ``ties`` gives that band (None: half, a tie)."""
    p, n = pos.sum(), neg.sum()
    if p <= 0 or n <= 0:
        return float("nan")
    below = np.cumsum(neg) - neg
    shares = np.full(len(pos), 0.5) if ties is None else np.asarray(ties, dtype=np.float64)
    return float(((pos * below).sum() + (shares * pos * neg).sum()) / (p * n))


@dataclass(frozen=True)
class BandProbabilities:
    """A representative probability for each of the ``GROUP_BINS`` score bands, before
    (``raw``) and after (``calibrated``) the run's recalibration, read by the server
    from the final pooled histogram (``common.equity.reading.band_probabilities``)."""

    raw: npt.NDArray[np.float64]
    calibrated: npt.NDArray[np.float64]
    #: Per band, the share of the pooled positive-negative pairs within it that the
    #: positive wins in the final pooled histogram's finer bins (0.5 where either label
    #: is not resolved above the noise there): a group's pairs within a band are credited
    #: at it, not at a tie's half (None: half).
    ties: npt.NDArray[np.float64] | None = None


# Gap name -> the group metric it compares (its interval is the metric's ``_ci``).
GAPS: tuple[tuple[str, str], ...] = (
    ("equal_opportunity_gap", "tpr"),
    ("fpr_gap", "fpr"),
    ("calibration_gap", "calibration_error"),
    ("auc_gap", "auc"),
)


@dataclass(frozen=True)
class Placement:
    """Where the ministry's centre register puts a centre: its administrative region and
    whether it is an Indigenous-governed board."""

    region: str
    indigenous_governed: bool = False


def cell_students(vector: npt.NDArray[np.float64]) -> float:
    """Students in a cell vector: the sum of its band counts."""
    return float(vector[: 2 * GROUP_BINS].sum())


#: Attributes a region total may be read from: never restricted by a centre's policy
#: as audit attributes (a centre may still refuse one as a predictor, which drops it).
REGION_SOURCES = tuple(g for g in AUDIT_GROUPS if g.name not in AUDIT_SENSITIVE)


def centre_total(cells: Mapping[str, Sequence[float]]) -> npt.NDArray[np.float64]:
    """One vector over a centre's held-out students, from what it already released: the
    sum of the cells of the attribute of ``REGION_SOURCES`` whose cells hold the most
    students (the first in that order on a tie). Students in a cell the centre suppressed
    (fewer than ``MIN_CELL``) are not in it. With noisy cells the ministry reads the
    total the attributes agree on instead (``common.equity.consistency.centre_total_of``)."""
    return centre_total_cells(cells)[0]


def centre_total_cells(cells: Mapping[str, Sequence[float]]) -> tuple[npt.NDArray[np.float64], int]:
    """:func:`centre_total` and how many cells it sums (each carries its own noise)."""
    best, best_students, summed = np.zeros(CELL_LENGTH), -math.inf, 0
    for group in REGION_SOURCES:
        keys = [cell_key(group.name, value) for value in group.cells]
        if not all(key in cells for key in keys):
            continue
        total = np.sum([np.asarray(cells[key], dtype=np.float64) for key in keys], axis=0)
        if cell_students(total) > best_students:
            best, best_students, summed = total, cell_students(total), len(keys)
    return np.asarray(best, dtype=np.float64), summed
