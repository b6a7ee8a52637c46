"""What a centre releases when it evaluates in secure mode: one integer vector that
SecAgg+ sums with the other centres' (``common.privacy.secure_release``), so the ministry sees
only the sum.

The counts are plain mode's (score histogram, equity cells) with discrete Gaussian
noise (``common.discrete_gaussian``: the same Renyi-DP as the continuous Gaussian of the
same std, so the ledger rows are the same). Two ways to noise them:

- the whole noise (the default, and always at a centre whose floor does not set
  ``allow_distributed_noise``): the centre's release alone meets the run's target, as in
  plain mode; the sum carries the noise of every centre;
- a share (``privacy.distributed_noise`` in the run, ``allow_distributed_noise`` in the
  floor): 1/t of the variance, t the reconstruction threshold of the SecAgg+ round (the
  fewest centres the round can finish with), never below ``MIN_SHARE_STD``; the sum of
  any surviving set carries at least the run's noise. Under its floor's trust model
  (``distributed_noise_trust``, ``client.privacy.trust``) the centre books what its
  share costs ALONE ('alone', the default: a ministry that colludes with other centres,
  or a SecAgg+ that fails, sees its release; more than the run's target, which the sum
  meets), or what the SUM of the t - c honest shares any unmaskable sum holds costs
  ('secure-aggregation', c colluding centres); either is checked against its floor's
  ``max_epsilon_per_run``. Its blocks then carry no per-centre
  indicator (they would be read from its own, lightly noised, counts), and no region
  slot (a region's sum has only its own centres' shares).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from client.ingest.centre_data import CentreData
from client.privacy.evaluation import (
    AUDIT_ROUND_OFFSET,
    audit_round,
    book_evaluation,
    evaluation_noise,
    noise_generator,
)
from client.privacy.ledger import PrivacyLedger
from client.privacy.trust import check_trust, honest_sum
from common.config import RunConfig
from common.discrete_gaussian import discrete_gaussian
from common.equity.audit import GROUP_BINS, attribute_of, centre_cells
from common.equity.consistency import centre_total_of
from common.metrics import padded, score_histogram
from common.privacy.accounting import audit_share, noise_share, reserved_rows
from common.privacy.secure_release import block, encode
from common.protocol import (
    AUDIT_SENSITIVE,
    EPSILON,
    NOISE_AUDIT,
    NOISE_COLLUDING,
    NOISE_DISTRIBUTED,
    NOISE_HISTOGRAM,
    NOISE_THRESHOLD,
    NOISE_TRUST,
    AuditRequest,
    audit_noise_key,
)


@dataclass(frozen=True)
class SecureSlot:
    """Where the ministry's register puts the centre in the summed vector: ``regions``
    region slots, its own ``region`` (-1: none), whether it ``counts`` towards the
    minimum of centres per cell (not for an Indigenous-governed board)."""

    regions: int = 0
    region: int = -1
    counts: bool = True


def secure_release(
    config: RunConfig, data: CentreData, probabilities: npt.NDArray[np.float64],
    server_round: int, ledger: PrivacyLedger | None, run_id: str, slot: SecureSlot,
    survivors_min: int | None, audit: AuditRequest | None = None,
    edges: tuple[float, ...] | None = None,
) -> tuple[npt.NDArray[np.float64], dict[str, float | int]]:
    """The round's vector for SecAgg+ and the plaintext metrics beside it (the
    evaluation epsilon the centre booked for the run, at the run's delta, and the noise
    it added). ``survivors_min``: the SecAgg+ round's reconstruction threshold.
    ``audit``: the audit exchange (the equity cells at its threshold; the histogram
    part is exact zeros), else a round's evaluation (the histogram; the cells zeros).
    ``edges``: the instruction's score bins (None: the fixed ones)."""
    floor = data.policy.privacy
    noise = evaluation_noise(config, floor)
    distributed = bool(config.privacy.distributed_noise and floor.allow_distributed_noise
                       and noise is not None and survivors_min)
    bins = config.evaluation.bins
    share_of = survivors_min if distributed else None
    # Nothing booked under a trust model the round's threshold cannot support.
    check_trust(config, floor, share_of)
    honest = honest_sum(config, floor, share_of)
    rng = noise_generator(config, server_round + (0 if audit is None else AUDIT_ROUND_OFFSET))
    epsilon, std_histogram, std_audit = 0.0, 0.0, 0.0
    stds: dict[str, float] = {}  # the audit's std per attribute (``evaluation.audit_weights``)
    if audit is None:
        histogram = score_histogram(probabilities, data.y_test, bins, edges)
        used = histogram.bins  # placed bins may be fewer: the others are exact zeros
        pos, neg = histogram.positives.copy(), histogram.negatives.copy()
        if noise is not None:
            share = noise_share(noise, server_round, share_of, honest)
            if ledger is not None:
                epsilon = book_evaluation(
                    config, data, ledger, run_id, server_round, list(share.rows),
                    alone=distributed,
                    reserved=reserved_rows(noise, server_round, False, share_of, honest))
            std_histogram = share.histogram
            pos += discrete_gaussian(rng, std_histogram, used)
            neg += discrete_gaussian(rng, std_histogram, used)
        pos, neg = padded(pos, bins), padded(neg, bins)
    else:
        pos, neg = np.zeros(bins), np.zeros(bins)
        if noise is not None:
            share = audit_share(noise, share_of, honest)
            if ledger is not None:
                epsilon = book_evaluation(config, data, ledger, run_id, audit_round(config),
                                          list(share.rows), alone=distributed)
            std_audit, stds = share.audit, share.audit_stds()
    sensitive = data.policy.audit_attributes_allowed and audit is not None
    blocks, region = {}, None
    if audit is not None:
        cells = centre_cells(data.audit_test, probabilities, data.y_test,
                             threshold=audit.cut, sensitive_allowed=sensitive,
                             noise_std=stds or 0.0, rng=rng, discrete=True)
        variances = {name: std**2 for name, std in stds.items()}
        for key, vector in cells.items():
            blocks[key] = block(vector, variances.get(attribute_of(key), 0.0))
            if distributed:
                blocks[key][2 * GROUP_BINS:] = 0  # only the counts: see the module doc
        if not distributed and 0 <= slot.region < slot.regions:
            total = centre_total_of(cells, variances or 0.0, audit.cut)
            # Its bands are rounded to integers: add the rounding's variance (1/12).
            region = (slot.region, block(total.vector, total.variance + 1 / 12, slot.counts))
    metrics: dict[str, float | int] = {
        EPSILON: epsilon, NOISE_HISTOGRAM: std_histogram, NOISE_AUDIT: std_audit,
        NOISE_DISTRIBUTED: int(distributed), NOISE_THRESHOLD: int(survivors_min or 0),
        NOISE_TRUST: int(honest is not None),
        NOISE_COLLUDING: floor.max_colluding_centres if honest is not None else 0,
        AUDIT_SENSITIVE: int(sensitive)}
    if len(set(stds.values())) > 1:  # the run's audit weights: each attribute's std
        metrics.update({audit_noise_key(name): std for name, std in stds.items()})
    return encode(pos, neg, blocks, slot.regions, region), metrics
