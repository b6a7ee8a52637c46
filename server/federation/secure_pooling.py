"""What the ministry reads from a secure round's SUMMED evaluation
(``common.privacy.secure_release``): the audit's pooled cells with the noise the sums carry, and
what the sums cost a student when the centres added shares of the noise (docs/PRIVACY.md,
"Distributed noise")."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from common.config import RunConfig
from common.equity.audit import (
    AUDIT_GROUPS,
    AUDIT_SENSITIVE,
    GROUP_BINS,
    UNKNOWN,
    all_cell_keys,
    cell_key,
)
from common.equity.pooling import PooledCell, reconciled
from common.privacy.accounting import NoiseShare, run_evaluation_noise, summed_rows
from common.privacy.secure_release import (
    TRUST_ALONE,
    TRUST_SECURE_AGGREGATION,
    TRUST_WHOLE,
    VARIANCE_SCALE,
    SummedRelease,
    pooled_cell,
)
from common.protocol import AUDIT_SENSITIVE as SENSITIVE_KEY
from common.protocol import (
    NOISE_AUDIT,
    NOISE_COLLUDING,
    NOISE_DISTRIBUTED,
    NOISE_HISTOGRAM,
    NOISE_THRESHOLD,
    NOISE_TRUST,
    audit_noise_key,
)

Metrics = Mapping[str, object]
#: Under distributed noise the ministry cannot count the centres that fill a cell: this
#: cell is then never shown (it could be the Cree and Kativik boards alone, whose
#: results are never reported on their own).
HIDDEN_WHEN_DISTRIBUTED = (("indigenous", "true"),)


def number(metrics: Metrics, key: str) -> float:
    """A numeric metric beside a masked vector (0 when absent)."""
    value = metrics.get(key, 0.0)
    return float(value) if isinstance(value, int | float) else 0.0


def trust_of(metrics: Metrics) -> dict[str, object]:
    """How a centre booked its secure evaluation release (public: its site policy and
    the round's threshold, ``common.releases``): ``model`` (``TRUST_WHOLE``,
    ``TRUST_ALONE`` or ``TRUST_SECURE_AGGREGATION``), and under the last the colluding
    centres ``c`` it assumes and the round's threshold ``t``."""
    if number(metrics, NOISE_DISTRIBUTED) <= 0:
        return {"model": TRUST_WHOLE}
    if number(metrics, NOISE_TRUST) <= 0:
        return {"model": TRUST_ALONE}
    return {"model": TRUST_SECURE_AGGREGATION,
            "colluding": int(number(metrics, NOISE_COLLUDING)),
            "threshold": int(number(metrics, NOISE_THRESHOLD))}


def audit_stds_of(metrics: Metrics) -> dict[str, float]:
    """A centre's std on each count of each audit attribute's cells: what it reports
    per attribute (``audit_noise_key``: the run's ``evaluation.audit_weights``), else
    its ``NOISE_AUDIT`` for all."""
    return {g.name: number(metrics, audit_noise_key(g.name)
                           if audit_noise_key(g.name) in metrics else NOISE_AUDIT)
            for g in AUDIT_GROUPS}


def summed_cells(summed: SummedRelease, survivors: Sequence[Metrics], regions: Sequence[str],
                 threshold: float, distributed: bool) -> dict[str, dict[str, PooledCell]]:
    """The audit's pooled cells from the sums. Each count's noise variance is the sum of
    the survivors' for its attribute (:func:`audit_stds_of`; a sensitive cell's, of
    those whose policy released it). With distributed noise no per-centre indicator was
    sent: a cell counts the round's centres, ``indigenous=true`` is hidden and there are
    no region rows."""
    stds = [audit_stds_of(m) for m in survivors]
    variance = {g.name: sum(s[g.name] ** 2 for s in stds) for g in AUDIT_GROUPS}
    sensitive = {g.name: sum(s[g.name] ** 2 for s, m in zip(stds, survivors, strict=True)
                             if number(m, SENSITIVE_KEY) > 0) for g in AUDIT_GROUPS}
    cells: dict[str, dict[str, PooledCell]] = {}
    for group in AUDIT_GROUPS:
        cells[group.name] = {}
        for value in group.cells:
            centres = None
            if distributed:
                hidden = (group.name, value) in HIDDEN_WHEN_DISTRIBUTED
                centres = 0 if hidden else len(survivors)
            block = summed.cells[cell_key(group.name, value)].copy()
            # A withheld attribute's students are all in its UNKNOWN cell, with noise.
            withheld = group.name in AUDIT_SENSITIVE and value != UNKNOWN
            own = (sensitive if withheld else variance)[group.name]
            block[2 * GROUP_BINS + 3] = math.ceil(own * VARIANCE_SCALE)  # its variance slot
            cells[group.name][value] = pooled_cell(block, threshold, centres)
    cells = reconciled(cells, threshold)
    if regions and not distributed:
        cells["region"] = {name: pooled_cell(slot, threshold)
                           for name, slot in zip(regions, summed.regions, strict=True)}
    return cells


def sum_cost(config: RunConfig, shares: Sequence[Metrics], whole: bool,
             server_round: int | None) -> list[tuple[float, float, int]]:
    """Accountant rows of what one exchange's sums cost a student: the distributed
    discrete Gaussian's bound over the centres that added a share (the smallest share
    reported, ``common.privacy.accounting.summed_rows``), or a whole-noise centre's release alone
    when one is in the sum and bounds more. ``server_round``: the round evaluated (None:
    the audit exchange)."""
    noise = run_evaluation_noise(config)
    stds = [audit_stds_of(m) for m in shares]
    smallest = {g.name: min(s[g.name] for s in stds) for g in AUDIT_GROUPS}
    share = NoiseShare(min(number(m, NOISE_HISTOGRAM) for m in shares),
                       min(number(m, NOISE_AUDIT) for m in shares), True, (),
                       () if len(set(smallest.values())) <= 1 else tuple(smallest.items()))
    final = server_round is None or server_round >= config.rounds
    return summed_rows(share, len(shares), 2 * config.evaluation.bins,
                       2 * GROUP_BINS * len(all_cell_keys()), noise if whole else None, final)
