"""Weights and sums the ministry can trust (docs/ROBUSTNESS.md, "One hostile centre").

A centre's FedAvg weight is the size it releases (``num-examples``): a number only it
knows. Unbounded, one centre claiming 1e15 examples would BE the aggregate. So each
weight is bounded before aggregation, whatever the mode:

- at most ``privacy.secagg_max_weight`` (the largest centre of the network: secure mode's
  centres cap themselves there too);
- at most ``MAX_WEIGHT_SPREAD`` times the round's median weight: one centre counts for at
  most as much as that many typical centres (Québec's largest centre holds about 8 times
  the median's students, so an honest centre is not cut).

In secure mode the weights are inside the masked sum (SecAgg+ sums ``[w, w x update]``
and divides): the ministry cannot clip them, only check them and reject the round
(model unchanged, the reason in ``rounds.jsonl``) with :func:`secure_weight_problem`:

- each weight a centre declares in the clear beside its masked vector is a number in
  ``[1, privacy.secagg_max_weight]`` (honest centres cap themselves there);
- the weight factor unmasked with the sum is at most the survivors' number times the
  cap's factor, and equals the sum of the factors of the declared weights (within one
  quantization level per centre): a centre cannot hide a larger weight in its masked
  vector than it declares.

What SecAgg+ does not let the ministry check: each centre's masked update (a hostile
centre may put any vector in it) and the round's median (a weight cannot be clipped
once summed; the cap is the bound). Every honest update has an L2 norm within
``training.max_update_norm`` and so has any weighted average of them: a sum with a NaN,
an infinity or a norm beyond that bound (SecAgg+ clips each coordinate, not the norm: a
hostile centre can still push it) is rejected and the model left unchanged.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence

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


def weight_factor(weight: float, cap: float, levels: int) -> int:
    """A weight's factor in a SecAgg+ sum, as Flower's ``secaggplus_mod`` computes it
    (``round(weight / max_weight * levels)``)."""
    return round(weight / cap * levels)


def secure_weight_problem(declared: Mapping[int, float], factor: int | None, levels: int,
                          cap: float) -> str | None:
    """What is wrong with the weights of a secure round's sum (None: they may stand).

    ``declared``: each summed centre's declared weight, by node; ``factor``: the weight
    factor unmasked with the sum (None: not known, the sum is not applied); ``levels``:
    SecAgg+'s quantization levels; ``cap``: ``privacy.secagg_max_weight``, its
    ``max_weight``."""
    for node, weight in sorted(declared.items()):
        if not (math.isfinite(weight) and 1.0 <= weight <= cap):
            return f"node {node} declared a weight of {weight:g}, outside [1, {cap:g}]"
    if factor is None:
        return "the weight inside the masked sum is unknown"
    survivors = len(declared)
    if factor > survivors * levels + survivors:
        return (f"the weight inside the masked sum ({factor * cap / levels:.6g}) is beyond "
                f"{survivors} centres x the cap {cap:g}")
    expected = sum(weight_factor(w, cap, levels) for w in declared.values())
    if abs(factor - expected) > survivors:
        return (f"the weight inside the masked sum ({factor * cap / levels:.6g}) is not the "
                f"{sum(declared.values()):g} the centres declared")
    return None
