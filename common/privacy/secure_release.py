"""A centre's evaluation release as one integer vector, for SecAgg+ to sum.

In secure mode the centres' evaluation counts are summed by SecAgg+ (fixed point,
modulo 2^32), like the training updates: the ministry learns only the sum. Every entry
is an integer (counts with discrete Gaussian noise, ``common.discrete_gaussian``), so
SecAgg+'s quantization is made exact: clipping range ``CLIP`` and quantization range
2 x ``CLIP`` map each integer v to v + ``CLIP`` unchanged, the weight factor is 1, and
the unmasked average times the number of summed centres is the exact integer sum.

Layout (``evaluation.bins`` = B, ``regions`` = R):
- the score histogram: positives[B], negatives[B];
- each equity cell (``common.equity.audit.all_cell_keys`` order): ``BLOCK`` integers, the
  score bands positives[5], negatives[5], then ``reach`` (1 when the centre's noisy
  count reaches ``MIN_CELL`` by two of its noise's std), ``counted`` (reach, for a
  group cell), ``cells`` (noisy cells summed in it: 1) and ``variance`` (its noise
  variance per count, in thousandths, rounded up);
- each region slot: the same block, filled by the centre the ministry's register places
  there only (its total over the cells of one attribute, ``common.equity.audit.centre_total``).
Probability sums, squared errors, true and false positives are derived from the summed
bins at the server (post-processing), as plain mode's centres derive them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from common.equity.audit import (
    GROUP_BINS,
    MIN_CELL,
    all_cell_keys,
    cell_students,
)
from common.equity.consistency import with_bands
from common.equity.pooling import PooledCell
from common.metrics import bin_centres

# The secure evaluation's wire keys are the protocol's.
from common.protocol import HIST_NEG, HIST_POS, NUM_EXAMPLES, PROB_SUM, SQ_ERR_SUM

#: SecAgg+ clipping range of an evaluation entry: a centre's count (at most its
#: held-out students, about 6,000 at the CSS de Montréal) plus noise stays far inside;
#: 2 x 2^20 x 1,024 centres < 2^32, so the modular sum cannot wrap.
CLIP = 2**20
QUANTIZATION_RANGE = 2 * CLIP
BLOCK = 2 * GROUP_BINS + 4
#: How a centre's secure evaluation releases were booked, as the ministry's summary and
#: the model card name it: the whole noise (its release alone meets the target), a share
#: booked alone, or a share booked as the honest sum (``NOISE_TRUST``).
TRUST_WHOLE, TRUST_ALONE, TRUST_SECURE_AGGREGATION = ("whole-noise", "alone",
                                                      "secure-aggregation")
_REACH, _COUNTED, _CELLS, _VARIANCE = range(2 * GROUP_BINS, BLOCK)
VARIANCE_SCALE = 1000.0


def length(bins: int, regions: int) -> int:
    """Entries of a release vector."""
    return 2 * bins + BLOCK * (len(all_cell_keys()) + regions)


def block(cell: npt.ArrayLike, variance: float, counted: bool = True, cells: int = 1,
          ) -> npt.NDArray[np.int64]:
    """One cell's block from a centre's (noisy, integer) cell vector (the ``CELL_LENGTH``
    layout of ``common.equity.audit.centre_cells``) and its noise variance per count."""
    out = np.zeros(BLOCK, dtype=np.int64)
    bands = np.rint(np.asarray(cell, dtype=np.float64)[: 2 * GROUP_BINS]).astype(np.int64)
    if not bands.any():
        return out  # a suppressed or unreleased cell: nothing, no noise
    out[: 2 * GROUP_BINS] = bands
    std = math.sqrt(max(variance, 0.0) * cells)
    reach = cell_students(bands.astype(np.float64)) >= MIN_CELL + 2.0 * std * math.sqrt(
        2 * GROUP_BINS)
    out[_REACH] = int(reach)
    out[_COUNTED] = int(reach and counted)
    out[_CELLS] = cells
    out[_VARIANCE] = math.ceil(variance * cells * VARIANCE_SCALE)
    return out


def encode(positives: npt.ArrayLike, negatives: npt.ArrayLike,
           cells: Mapping[str, npt.NDArray[np.int64]], regions: int,
           region: tuple[int, npt.NDArray[np.int64]] | None = None) -> npt.NDArray[np.float64]:
    """The vector a centre hands to SecAgg+: its histogram, its cell blocks
    (:func:`block`, keyed as ``all_cell_keys``; absent keys are zeros) and, in slot
    ``region[0]``, its region block ``region[1]``."""
    parts = [np.rint(np.asarray(positives, dtype=np.float64)),
             np.rint(np.asarray(negatives, dtype=np.float64))]
    parts += [cells.get(key, np.zeros(BLOCK, dtype=np.int64)).astype(np.float64)
              for key in all_cell_keys()]
    slots = np.zeros((regions, BLOCK))
    if region is not None and 0 <= region[0] < regions:
        slots[region[0]] = region[1]
    vector = np.concatenate([*parts, slots.ravel()])
    assert np.all(np.abs(vector) < CLIP), "a count outside SecAgg+'s range"
    return vector


def exact_sum(average: npt.NDArray[np.float64], summed: int) -> npt.NDArray[np.int64]:
    """The integer sum from SecAgg+'s unmasked average over ``summed`` centres."""
    return np.rint(np.asarray(average, dtype=np.float64) * summed).astype(np.int64)


@dataclass(frozen=True)
class SummedRelease:
    """What the ministry learns of a round's evaluation in secure mode: the sums."""

    positives: npt.NDArray[np.float64]
    negatives: npt.NDArray[np.float64]
    cells: dict[str, npt.NDArray[np.int64]]
    regions: list[npt.NDArray[np.int64]]

    def histogram_release(self, edges: tuple[float, ...] | None = None
                          ) -> dict[str, int | float | list[float]]:
        """The pooled histogram as plain mode's release keys (``hist_pos`` ...), with the
        probability sums and squared errors derived from the centres of the bins the
        instructions asked for (``edges``; None: the fixed ones)."""
        used = len(self.positives) if edges is None else len(edges) + 1
        centres = bin_centres(used, edges)
        pos, neg = self.positives[:used], self.negatives[:used]
        return {NUM_EXAMPLES: max(0, round(float(pos.sum() + neg.sum()))),
                HIST_POS: pos.tolist(), HIST_NEG: neg.tolist(),
                PROB_SUM: ((pos + neg) * centres).tolist(),
                SQ_ERR_SUM: float((pos * (1 - centres) ** 2 + neg * centres**2).sum())}


def decode(vector: npt.NDArray[np.int64], bins: int, regions: int) -> SummedRelease:
    """Split a summed vector (:func:`encode`'s layout) into its parts."""
    assert len(vector) == length(bins, regions), "the release layout differs"
    keys = all_cell_keys()
    blocks = vector[2 * bins:].reshape(len(keys) + regions, BLOCK)
    return SummedRelease(vector[:bins].astype(np.float64),
                         vector[bins: 2 * bins].astype(np.float64),
                         dict(zip(keys, blocks[: len(keys)], strict=True)),
                         list(blocks[len(keys):]))


def pooled_cell(summed: npt.NDArray[np.int64], threshold: float,
                centres: int | None = None) -> PooledCell:
    """A summed block as the audit's pooled cell: the ``CELL_LENGTH`` vector (true and
    false positives, probability sum from the bands), the centres that reach
    ``MIN_CELL`` and count (or ``centres`` for both, when the blocks' indicators were not
    sent), and the std of the noise on each count."""
    total = with_bands(summed[: 2 * GROUP_BINS].astype(np.float64), threshold)
    reach = int(summed[_REACH]) if centres is None else centres
    counted = int(summed[_COUNTED]) if centres is None else centres
    return PooledCell(total, reach, counted, math.sqrt(float(summed[_VARIANCE]) / VARIANCE_SCALE))
