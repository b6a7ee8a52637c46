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
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

MIN_CELL = 10
MIN_CENTRES_PER_CELL = 3
# Coarse score bins, fixed edges on the logit scale, 0.4 apart (about -5..3, i.e. 0.7 %
# to 95 %: group sizes are small, so few bins, placed where dropout risks lie), one edge
# on the operating threshold so that true and false positives follow from the bins.
GROUP_BINS = 20
_LOGIT_STEP = 0.4
# Vector layout of one cell: pos[20], neg[20], tp, fp, probability sum.
CELL_LENGTH = 2 * GROUP_BINS + 3
AUDIT_SENSITIVE = ("sex", "indigenous")  # used only where the centre's policy allows


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
    """Interior bin edges (probabilities) of the group histograms, one on ``threshold``."""
    anchor = math.log(threshold / (1 - threshold))
    below = math.floor((anchor + 5.0) / _LOGIT_STEP)
    logits = anchor + _LOGIT_STEP * (np.arange(1, GROUP_BINS) - below)
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
    centres = _bin_centres(edges)
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


def _bin_centres(edges: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
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


def auc_interval(auc: float, positives: float, negatives: float) -> tuple[float, float]:
    """95 % interval of an AUC (Hanley & McNeil 1982)."""
    if math.isnan(auc) or positives < 1 or negatives < 1:
        return (float("nan"), float("nan"))
    auc = min(max(auc, 0.0), 1.0)  # noisy (DP) counts can push the estimate outside
    q1, q2 = auc / (2 - auc), 2 * auc**2 / (1 + auc)
    variance = (
        auc * (1 - auc) + (positives - 1) * (q1 - auc**2) + (negatives - 1) * (q2 - auc**2)
    ) / (positives * negatives)
    half = 1.96 * math.sqrt(max(variance, 0.0))
    return (max(0.0, auc - half), min(1.0, auc + half))


def _rate_interval(successes: float, trials: float) -> tuple[float, float, float]:
    """Rate and 95 % Wilson interval."""
    if trials < 1:
        return (float("nan"), float("nan"), float("nan"))
    rate, z = min(max(successes / trials, 0.0), 1.0), 1.96  # noisy counts: keep to 0-1
    centre = (rate + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z * math.sqrt(rate * (1 - rate) / trials + z * z / (4 * trials**2)) / (
        1 + z * z / trials
    )
    return (rate, max(0.0, centre - half), min(1.0, centre + half))


def cell_metrics(vector: npt.NDArray[np.float64]) -> dict[str, object]:
    """Metrics of one pooled cell."""
    pos, neg = vector[:GROUP_BINS], vector[GROUP_BINS : 2 * GROUP_BINS]
    tp, fp, probability_sum = vector[-3], vector[-2], vector[-1]
    positives, negatives = float(pos.sum()), float(neg.sum())
    n = positives + negatives
    auc = _auc(pos, neg)
    if not math.isnan(auc):
        auc = min(max(auc, 0.0), 1.0)  # noisy (DP) counts can push the estimate outside
    tpr, tpr_lo, tpr_hi = _rate_interval(tp, positives)
    fpr, fpr_lo, fpr_hi = _rate_interval(fp, negatives)
    mean_predicted = probability_sum / n if n else float("nan")
    observed = positives / n if n else float("nan")
    return {
        "n": round(n),
        "positives": round(positives),
        "auc": auc,
        "auc_ci": list(auc_interval(auc, positives, negatives)),
        "tpr": tpr,
        "tpr_ci": [tpr_lo, tpr_hi],
        "fpr": fpr,
        "fpr_ci": [fpr_lo, fpr_hi],
        "mean_predicted": mean_predicted,
        "observed_rate": observed,
        "calibration_error": abs(mean_predicted - observed) if n else float("nan"),
    }


def _gap(cells: Mapping[str, Mapping[str, object]], key: str) -> float:
    values = [float(c[key]) for c in cells.values() if not math.isnan(float(c[key]))]  # type: ignore[arg-type]
    return max(values) - min(values) if len(values) >= 2 else float("nan")


def pooled_audit(
    centre_vectors: list[Mapping[str, list[float]]], threshold: float
) -> dict[str, object]:
    """Sum the centres' cells and report pooled group metrics and gaps.

    Returns the ``equity.json`` structure: ``groups`` (attribute -> value -> metrics),
    ``gaps`` (attribute -> equal-opportunity gap (TPR), FPR gap, calibration gap, AUC
    gap: largest minus smallest over the reported values) and ``suppressed`` cells.
    """
    groups: dict[str, dict[str, dict[str, object]]] = {}
    gaps: dict[str, dict[str, float]] = {}
    suppressed: list[str] = []
    for group in AUDIT_GROUPS:
        reported: dict[str, dict[str, object]] = {}
        for value in group.values:
            key = cell_key(group.name, value)
            vectors = [np.asarray(c[key], dtype=np.float64) for c in centre_vectors if key in c]
            # A centre contributes when its (possibly noisy) count reaches the minimum.
            contributing = sum(1 for v in vectors if v[: 2 * GROUP_BINS].sum() >= MIN_CELL)
            total = np.sum(vectors, axis=0) if vectors else np.zeros(CELL_LENGTH)
            if total[: 2 * GROUP_BINS].sum() < MIN_CELL or contributing < MIN_CENTRES_PER_CELL:
                if total[: 2 * GROUP_BINS].sum() >= MIN_CELL:
                    suppressed.append(f"{group.name}={value}")
                continue
            reported[value] = {**cell_metrics(total), "centres": contributing}
        groups[group.name] = reported
        gaps[group.name] = {
            "equal_opportunity_gap": _gap(reported, "tpr"),
            "fpr_gap": _gap(reported, "fpr"),
            "calibration_gap": _gap(reported, "calibration_error"),
            "auc_gap": _gap(reported, "auc"),
        }
    return {
        "threshold": threshold,
        "min_cell": MIN_CELL,
        "min_centres_per_cell": MIN_CENTRES_PER_CELL,
        "groups": groups,
        "gaps": gaps,
        "suppressed": suppressed,
    }
