"""The equity audit at the server: the centres' cells summed, and the report.

A pooled cell is shown only when it holds at least ``MIN_CELL`` students from at least
``MIN_CENTRES_PER_CELL`` centres (``common.equity.audit``). In plain mode the server sums the
centres' cells itself (:func:`pooled_audit`); in secure mode SecAgg+ hands it the sums
(``common.privacy.secure_release``) and :func:`audit_report` reads them as they are.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from common.equity.audit import (
    AUDIT_GROUPS,
    CELL_LENGTH,
    GROUP_BINS,
    MIN_CELL,
    MIN_CENTRES_PER_CELL,
    UNKNOWN,
    BandProbabilities,
    Placement,
    attribute_stds,
    cell_students,
    centre_total_cells,
)
from common.equity.consistency import NoisyCell, noisy_cells, reconcile
from common.equity.group_metrics import CellNoise, cell_metrics, gaps_of, noise_spread
from common.equity.intervals import Z95


@dataclass(frozen=True)
class PooledCell:
    """One cell summed over centres: ``contributing`` centres reach ``MIN_CELL`` in it,
    ``counted`` of them count towards ``MIN_CENTRES_PER_CELL``."""

    total: npt.NDArray[np.float64]
    contributing: int
    counted: int
    noise_sd: float = 0.0  # std of the DP noise on each count of ``total``

    @property
    def students(self) -> float:
        return cell_students(self.total)

    @property
    def reportable(self) -> bool:
        return self.students >= MIN_CELL and self.counted >= MIN_CENTRES_PER_CELL


def pool(vectors: Sequence[npt.NDArray[np.float64]], variances: Sequence[float],
         counts: Sequence[bool] | None = None) -> PooledCell:
    """Sum one cell's vectors, each with its noise variance per count (its cells
    reconciled, ``common.equity.consistency``; 0 for an exact one); a centre contributes
    when its count reaches ``MIN_CELL``, and counts towards the minimum of centres unless
    ``counts`` says it does not.

    With DP noise of std s on each count, a centre's student count carries noise of std
    ``s * sqrt(2 * GROUP_BINS)`` (46 in the demo before reconciliation): a centre with no
    student in the cell would pass ``MIN_CELL`` 4 times in 10. It contributes only when
    its noisy count exceeds ``MIN_CELL`` by two of those standard deviations, so that a
    centre without students in the cell passes 2 times in 100."""
    counts = [True] * len(vectors) if counts is None else counts
    reaching = [cell_students(v) >= MIN_CELL + 2.0 * math.sqrt(2 * GROUP_BINS * var)
                for v, var in zip(vectors, variances, strict=True)]
    total = np.sum(vectors, axis=0) if len(vectors) else np.zeros(CELL_LENGTH)
    return PooledCell(np.asarray(total, dtype=np.float64), sum(reaching),
                      sum(r and c for r, c in zip(reaching, counts, strict=True)),
                      math.sqrt(sum(variances)))


def region_cells(
    centre_vectors: Sequence[Mapping[str, Sequence[float]]],
    placements: Sequence[Placement | None],
    totals: Sequence[NoisyCell | None] | None = None,
) -> dict[str, PooledCell]:
    """Region cells, computed by the server from the centres' releases (post-processing:
    nothing more leaves a centre, nothing more is spent): each centre's total (its
    reconciled one in ``totals``, else its exact cells': ``common.equity.audit.centre_total``),
    summed over the centres
    the register places in the region. A centre it does not place (None) is in no
    region. Indigenous-governed boards add their students to their region but never
    count towards ``MIN_CENTRES_PER_CELL``."""
    totals = [None] * len(centre_vectors) if totals is None else totals
    members: dict[str, list[tuple[npt.NDArray[np.float64], bool, float]]] = {}
    for cells, placement, reconciled in zip(centre_vectors, placements, totals, strict=True):
        if placement is not None and placement.region:
            if reconciled is None:
                total, variance = centre_total_cells(cells)[0], 0.0
            else:
                total, variance = reconciled.vector, reconciled.variance
            members.setdefault(placement.region, []).append(
                (total, not placement.indigenous_governed, variance))
    return {region: pool([v for v, _, _ in entries], [k for _, _, k in entries],
                         [c for _, c, _ in entries])
            for region, entries in sorted(members.items())}


def reconciled(cells: Mapping[str, Mapping[str, PooledCell]], threshold: float
               ) -> dict[str, dict[str, PooledCell]]:
    """Pooled cells (secure mode: SecAgg+'s sums, each count with the noise of the
    centres' cells summed in it) reconciled with one another
    (``common.equity.consistency``), their noise the reconciled one; the centres that
    reach and count are unchanged."""
    noisy = {name: {value: NoisyCell(cell.total, cell.noise_sd**2)
                    for value, cell in by_value.items()} for name, by_value in cells.items()}
    out, _ = reconcile(noisy, threshold)
    return {name: {value: PooledCell(out[name][value].vector, cell.contributing, cell.counted,
                                     math.sqrt(out[name][value].variance))
                   for value, cell in by_value.items()} for name, by_value in cells.items()}


def _report(
    attribute: str, cells: Mapping[str, PooledCell], suppressed: list[str],
    threshold: float, bands: BandProbabilities | None = None,
) -> tuple[dict[str, dict[str, object]], dict[str, object]]:
    """The reported groups of one attribute and its gaps; the cells large enough to
    show but from too few centres are added to ``suppressed``."""

    spreads: dict[str, dict[str, float]] = {}  # the noise's spread does not depend on z

    def metrics_at(value: str, z: float = Z95) -> dict[str, object]:
        cell = cells[value]
        if cell.noise_sd > 0 and value not in spreads:
            spreads[value] = noise_spread(cell.total, CellNoise(cell.noise_sd, 1, threshold))
        return cell_metrics(cell.total, z, spreads.get(value), bands)

    reported: dict[str, dict[str, object]] = {}
    for value, cell in cells.items():
        if value == UNKNOWN:
            continue  # bookkeeping: the students an attribute does not place
        if cell.reportable:
            reported[value] = {**metrics_at(value), "centres": cell.contributing}
        elif cell.students >= MIN_CELL:
            suppressed.append(f"{attribute}={value}")
    return reported, gaps_of(reported, metrics_at)


def pooled_audit(
    centre_vectors: Sequence[Mapping[str, Sequence[float]]],
    threshold: float,
    placements: Sequence[Placement | None] | None = None,
    noise_std: float | Mapping[str, float] = 0.0,
    bands: BandProbabilities | None = None,
) -> dict[str, object]:
    """Sum the centres' cells and report pooled group metrics and gaps.

    Returns the ``equity.json`` structure: ``groups`` (attribute -> value -> metrics),
    ``gaps`` (attribute -> equal-opportunity gap (TPR), FPR gap, calibration gap, AUC
    gap, each with its interval and the two groups behind it, see :func:`gaps_of`) and
    ``suppressed`` cells. With ``placements`` (the centre register's place of each
    centre, in the order of ``centre_vectors``), ``region`` is one more attribute, from
    :func:`region_cells`. ``noise_std`` is the std of the Gaussian noise each centre
    added to each count of its cells, one for all attributes or one per attribute
    (``common.privacy.accounting.audit_noise_stds``): the intervals then include it
    (:func:`cell_metrics`), and the result says it.
    ``bands``: the score bands' representative probabilities, raw and recalibrated
    (:class:`BandProbabilities`), for the calibrated mean predicted of each group.
    """
    stds = attribute_stds(noise_std)
    released = [noisy_cells(c, {name: std**2 for name, std in stds.items()})
                for c in centre_vectors]
    totals: list[NoisyCell | None] = [None] * len(released)
    if max(stds.values()) > 0:
        reconciled = [reconcile(cells, threshold) for cells in released]
        released, totals = [c for c, _ in reconciled], [t for _, t in reconciled]
    cells: dict[str, dict[str, PooledCell]] = {
        group.name: {value: pool([c[group.name][value].vector for c in released],
                                 [c[group.name][value].variance for c in released])
                     for value in group.cells}
        for group in AUDIT_GROUPS}
    if placements is not None:
        cells["region"] = region_cells(centre_vectors, placements, totals)
    return audit_report(cells, threshold, stds, bands)


def audit_report(cells: Mapping[str, Mapping[str, PooledCell]], threshold: float,
                 noise_std: float | Mapping[str, float],
                 bands: BandProbabilities | None = None) -> dict[str, object]:
    """The ``equity.json`` structure (:func:`pooled_audit`) from pooled cells by
    attribute and value, each with the noise it carries (``PooledCell.noise_sd``);
    ``noise_std`` is the std of the noise on one centre's count (``noise_std``: the
    smallest, ``noise_std_by_attribute``: each attribute's)."""
    stds = attribute_stds(noise_std)
    groups: dict[str, dict[str, dict[str, object]]] = {}
    gaps: dict[str, dict[str, object]] = {}
    suppressed: list[str] = []
    for attribute, by_value in cells.items():
        groups[attribute], gaps[attribute] = _report(attribute, by_value, suppressed,
                                                     threshold, bands)
    return {
        "threshold": threshold,
        "min_cell": MIN_CELL,
        "min_centres_per_cell": MIN_CENTRES_PER_CELL,
        "noise_std": min(stds.values()),
        "noise_std_by_attribute": stds,
        "groups": groups,
        "gaps": gaps,
        "suppressed": suppressed,
    }
