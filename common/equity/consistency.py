"""The equity audit's noisy counts made consistent with one another (post-processing).

Every attribute's cells (its values and its ``UNKNOWN`` cell, ``common.equity.audit``) hold
each held-out student exactly once, so for each score band and label the six
attributes' cells add up to the SAME total: six noisy measurements of one number. The
ministry uses it: the generalised least-squares estimate of all cells under these
constraints (each count weighted by the inverse of its noise variance) is unbiased and
has less noise than the released counts, and it costs nothing (it reads only what was
released). For one band and label, with ``y[a, g]`` the released count of value ``g``
of attribute ``a``, ``v[a, g]`` its noise variance, ``S[a]`` and ``V[a]`` their sums
over ``g``:

    W = sum_a 1 / V[a],        T = (sum_a S[a] / V[a]) / W     (the total's estimate)
    c[a, g] = y[a, g] + v[a, g] / V[a] * (T - S[a])
    var c[a, g] = v - v**2 / V[a] + v**2 / (V[a]**2 * W)       (v = v[a, g]),  var T = 1 / W

At the demo's noise, a value of a three-valued attribute (four cells with ``UNKNOWN``)
keeps 0.79 of its noise variance (sd 0.89), of a two-valued one 0.73 (sd 0.86), and the
total has 0.6 of one cell's variance where a single attribute's cells sum to 3 or 4
times it (the region rows, read from the centres' totals, have half or less of the
noise sd). The bands and labels are reconciled separately (their noise is independent),
so every count of a cell keeps the same variance, which ``common.equity.group_metrics``
draws from for the intervals. The true and false positives and the probability sum are
read again from the reconciled bands, as the centres derive them from noisy bands.

docs/PRIVACY.md, "Counts that agree with one another", gives the measured widths.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from common.equity.audit import (
    AUDIT_GROUPS,
    CELL_LENGTH,
    GROUP_BINS,
    attribute_stds,
    band_midpoints,
    cell_key,
    centre_total_cells,
    flag_bin,
    group_bin_edges,
)

BANDS = 2 * GROUP_BINS


@dataclass(frozen=True)
class NoisyCell:
    """A cell's vector (``CELL_LENGTH``) and the noise variance of each of its band
    counts (0: exact, as a cell the centre's policy withholds, sent as zeros)."""

    vector: npt.NDArray[np.float64]
    variance: float


Cells = Mapping[str, Mapping[str, NoisyCell]]


def with_bands(bands: npt.NDArray[np.float64], threshold: float) -> npt.NDArray[np.float64]:
    """A cell vector from its band counts: true and false positives (the flagged bands)
    and the probability sum (the bands' midpoints), as ``centre_cells`` derives them
    from noisy bands."""
    edges = group_bin_edges(threshold)
    flagged = flag_bin(edges, threshold)
    pos, neg = bands[:GROUP_BINS], bands[GROUP_BINS:BANDS]
    vector = np.zeros(CELL_LENGTH)
    vector[:BANDS] = bands
    vector[-3], vector[-2] = pos[flagged:].sum(), neg[flagged:].sum()
    vector[-1] = float(((pos + neg) * band_midpoints(edges)).sum())
    return vector


def reconcile(cells: Cells, threshold: float
              ) -> tuple[dict[str, dict[str, NoisyCell]], NoisyCell | None]:
    """``cells`` (attribute -> cell -> :class:`NoisyCell`, every attribute's cells
    holding the same students) reconciled, and the estimate of their common total.

    Without noise in some attribute (every cell exact, as in a run without DP, where
    the centres suppress small cells and the sums need not agree), or with fewer than
    two attributes, nothing is changed and there is no total (None)."""
    sums = {name: np.sum([c.vector[:BANDS] for c in by_cell.values()], axis=0)
            for name, by_cell in cells.items()}
    variances = {name: sum(c.variance for c in by_cell.values()) for name, by_cell in cells.items()}
    if len(cells) < 2 or min(variances.values()) <= 0.0:
        return {name: dict(by_cell) for name, by_cell in cells.items()}, None
    weight = sum(1.0 / v for v in variances.values())
    total = sum(sums[name] / variances[name] for name in cells) / weight
    out: dict[str, dict[str, NoisyCell]] = {}
    for name, by_cell in cells.items():
        share_of = variances[name]
        out[name] = {}
        for value, cell in by_cell.items():
            v = cell.variance
            if v <= 0.0:
                out[name][value] = cell
                continue
            bands = cell.vector[:BANDS] + v / share_of * (total - sums[name])
            variance = v - v**2 / share_of + v**2 / (share_of**2 * weight)
            out[name][value] = NoisyCell(with_bands(bands, threshold), variance)
    return out, NoisyCell(with_bands(np.asarray(total, dtype=np.float64), threshold), 1.0 / weight)


def noisy_cells(vectors: Mapping[str, object], variance: float | Mapping[str, float]
                ) -> dict[str, dict[str, NoisyCell]]:
    """One centre's released cells (``cell_key`` -> vector) by attribute and cell, each
    band count with noise of ``variance`` (one for all attributes, or one per
    attribute; none in a cell sent as zeros: a cell its policy withholds; an absent key
    counts as one)."""
    variances = attribute_stds(variance)
    out: dict[str, dict[str, NoisyCell]] = {}
    for group in AUDIT_GROUPS:
        out[group.name] = {}
        for value in group.cells:
            raw = vectors.get(cell_key(group.name, value))
            vector = (np.zeros(CELL_LENGTH) if raw is None
                      else np.asarray(raw, dtype=np.float64))
            out[group.name][value] = NoisyCell(vector, variances[group.name]
                                               if np.any(vector) else 0.0)
    return out


def centre_total_of(vectors: Mapping[str, object], variance: float | Mapping[str, float],
                    threshold: float) -> NoisyCell:
    """A centre's total over its held-out students from its released cells, each band
    count with noise of ``variance`` (as in :func:`noisy_cells`): the reconciled
    estimate when the cells are noisy, else the cells of one attribute summed
    (``common.equity.audit.centre_total_cells``, exact)."""
    _, total = reconcile(noisy_cells(vectors, variance), threshold)
    if total is not None:
        return total
    vector, _ = centre_total_cells(vectors)  # type: ignore[arg-type]
    return NoisyCell(vector, 0.0)
