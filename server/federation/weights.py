"""Weights and sums the ministry can trust (docs/ROBUSTNESS.md, "One hostile centre").

A centre's FedAvg weight is the size it releases (``num-examples``): a number only it
knows. Unbounded, one centre claiming 1e15 examples would BE the aggregate. So each
weight is bounded before aggregation, whatever the mode:

- at most ``privacy.secagg_max_weight`` (the largest centre of the network: secure mode's
  centres cap themselves there too);
- at most ``MAX_WEIGHT_SPREAD`` times the round's median weight: one centre counts for at
  most as much as that many typical centres (Québec's largest centre holds about 8 times
  the median's students, so an honest centre is not cut).

In secure mode the ministry sees only the weighted average of the updates; every honest
update has an L2 norm within ``training.max_update_norm`` and so has any weighted
average of them. A sum with a NaN, an infinity or a norm beyond that bound (SecAgg+
clips each coordinate, not the norm: a hostile centre can still push it) is rejected
and the model left unchanged.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

#: A centre weighs at most this many times the round's median centre.
MAX_WEIGHT_SPREAD = 10.0
#: Relative slack over the update bound for a secure sum: float32 rounding and SecAgg+'s
#: quantization (2**22 levels over the clipping range), nothing more.
SUM_SLACK = 1e-3


def bounded_weights(reported: Sequence[float], cap: float) -> list[int]:
    """The weights FedAvg uses: each reported size clipped to ``[1, cap]`` and to
    ``MAX_WEIGHT_SPREAD`` times the median of the clipped sizes (whole numbers)."""
    clipped = [min(max(float(w), 1.0), float(cap)) if math.isfinite(w) else 1.0
               for w in reported]
    if not clipped:
        return []
    ceiling = MAX_WEIGHT_SPREAD * statistics.median(clipped)
    return [max(1, int(min(w, ceiling))) for w in clipped]


def sum_problem(update: Sequence[npt.ArrayLike], shapes: Sequence[tuple[int, ...]],
                max_update_norm: float) -> str | None:
    """What is wrong with a secure round's average update (None: it may be applied)."""
    if len(update) != len(shapes):
        return f"it has {len(update)} arrays, the model {len(shapes)}"
    squared = 0.0
    for array, shape in zip(update, shapes, strict=True):
        values = np.asarray(array, dtype=np.float64)
        if values.shape != tuple(shape):
            return f"an array has shape {values.shape} instead of {tuple(shape)}"
        if not np.isfinite(values).all():
            return "it holds NaN or infinite values"
        squared += float((values**2).sum())
    norm = math.sqrt(squared)
    if norm > max_update_norm * (1 + SUM_SLACK):
        return f"its norm {norm:.3g} is beyond the update bound {max_update_norm:g}"
    return None
