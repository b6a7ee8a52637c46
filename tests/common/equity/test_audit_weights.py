"""The audit's noise shared unequally between its attributes (``evaluation.audit_weights``):
the same Gaussian mechanism for the ledger, the noise where the weights put it, and
intervals that follow it."""

import math

import numpy as np
import pandas as pd
import pytest

from common.config import ConfigError, RunConfig
from common.discrete_gaussian import MIN_SHARE_STD
from common.equity.audit import AUDIT_GROUPS, GROUP_BINS, cell_key, centre_cells
from common.equity.pooling import pooled_audit
from common.privacy.accounting import (
    NoiseShare,
    audit_noise_std,
    audit_noise_stds,
    audit_scales,
    audit_share,
    composed_epsilon,
    run_evaluation_noise,
    summed_rows,
)


def _config(weights: str, **privacy: object) -> RunConfig:
    flat: dict[str, object] = {"evaluation.audit_weights": weights}
    flat.update({f"privacy.{k}": v for k, v in privacy.items()})
    return RunConfig.from_flat(flat)


def test_equal_weights_are_todays_noise():
    for weights in ("", "sex=2,ehdaa=2,indigenous=2,immigrant_generation=2,"
                        "home_language=2,imse_band=2"):
        config = _config(weights)
        assert audit_scales(config) == pytest.approx({g.name: 1.0 for g in AUDIT_GROUPS})
        assert audit_noise_stds(config) == pytest.approx(
            {g.name: audit_noise_std(config) for g in AUDIT_GROUPS})


@pytest.mark.parametrize("weights", ["imse_band=1.75", "sex=0.5,home_language=3",
                                     "indigenous=0.2,ehdaa=4,imse_band=1.1"])
def test_any_weights_keep_the_audits_multiplier(weights: str):
    """Each student adds 1 to one cell per attribute: with std s_a on attribute a's
    counts, the release is a Gaussian mechanism of multiplier 1 / sqrt(sum 1 / s_a**2),
    which must be the multiplier the ledger books (``EvaluationNoise.audit``)."""
    config = _config(weights)
    stds = audit_noise_stds(config)
    multiplier = 1.0 / math.sqrt(sum(1.0 / s**2 for s in stds.values()))
    assert multiplier == pytest.approx(run_evaluation_noise(config).audit, rel=1e-12)
    named = dict(part.split("=") for part in weights.split(","))
    heaviest = max(named, key=lambda name: float(named[name]))
    assert stds[heaviest] == min(stds.values())


@pytest.mark.parametrize("weights", ["imse=2", "sex=0", "sex=-1", "sex=nan", "sex", "sex=x",
                                     "sex=inf"])
def test_bad_weights_are_refused_in_one_sentence(weights: str):
    with pytest.raises(ConfigError, match=r"evaluation\.audit_weights must list"):
        _config(weights)


def test_distributed_shares_follow_the_weights_and_their_sum_keeps_the_target():
    """Under distributed noise each attribute's share is its own std over sqrt(t),
    floored alone; a centre books one row per attribute (sensitivity 1 each), and the
    sum's bound is composed per attribute, which for equal stds is the one-row bound."""
    equal = run_evaluation_noise(_config("", epsilon=1.0))
    weighted = run_evaluation_noise(_config("imse_band=1.75,home_language=1.2", epsilon=1.0))
    assert equal.audit == weighted.audit and not equal.audit_scales
    plain, shared = audit_share(weighted), audit_share(weighted, survivors_min=8)
    stds = weighted.audit_stds()
    assert plain.audit_stds() == pytest.approx(stds)
    assert shared.audit_stds() == pytest.approx(
        {name: max(std / math.sqrt(8), MIN_SHARE_STD) for name, std in stds.items()})
    # Alone, the weighted share costs what the equal one does when nothing is floored.
    alone = [composed_epsilon(list(audit_share(n, 4).rows), 1e-6) for n in (equal, weighted)]
    assert alone[0] == pytest.approx(alone[1], rel=1e-6)
    # The sum: per attribute equals the one-row bound when the stds are equal ...
    one = audit_share(equal, 8)
    per = NoiseShare(0.0, one.audit, True, (), tuple((g.name, one.audit) for g in AUDIT_GROUPS))
    dim = 2 * GROUP_BINS * sum(len(g.cells) for g in AUDIT_GROUPS)
    assert composed_epsilon(summed_rows(per, 8, 40, dim), 1e-6) == pytest.approx(
        composed_epsilon(summed_rows(one, 8, 40, dim), 1e-6), rel=1e-6)
    # ... and a sum of 8 weighted shares stays within the run's target.
    assert composed_epsilon(summed_rows(shared, 8, 40, dim), 1e-6) <= composed_epsilon(
        summed_rows(one, 8, 40, dim), 1e-6) * (1 + 1e-6)
    assert composed_epsilon(summed_rows(one, 8, 40, dim), 1e-6) < 1.0


def _students(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    audit = pd.DataFrame({
        "sex": rng.choice(["F", "M"], n), "ehdaa": rng.random(n) < 0.3,
        "indigenous": np.zeros(n, dtype=bool),
        "immigrant_generation": rng.choice(["0", "1", "2"], n),
        "home_language": rng.choice(["fr", "en"], n), "imse_decile": rng.integers(1, 11, n),
    })
    y = (rng.random(n) < 0.2).astype(float)
    p = np.clip(0.15 + 0.5 * y + rng.normal(0, 0.1, n), 0.001, 0.999)
    return audit, p, y


def test_the_noise_lands_where_the_weights_say_and_the_intervals_follow():
    config = _config("imse_band=3,sex=0.5")
    stds = {name: 6.0 * scale for name, scale in audit_scales(config).items()}
    centres = [_students(400, s) for s in range(3)]
    exact = [centre_cells(a, p, y, threshold=0.3, sensitive_allowed=True) for a, p, y in centres]
    imse, sex = cell_key("imse_band", "4-7"), cell_key("sex", "F")
    deviations: dict[str, list[float]] = {imse: [], sex: []}
    widths: dict[str, list[float]] = {"imse": [], "sex": []}
    for draw in range(150):
        rng = np.random.default_rng(draw)
        noisy = [centre_cells(a, p, y, threshold=0.3, sensitive_allowed=True, noise_std=stds,
                              rng=rng) for a, p, y in centres]
        for key in deviations:
            band = np.asarray(noisy[0][key][:GROUP_BINS]) - np.asarray(exact[0][key][:GROUP_BINS])
            deviations[key].extend(band)
        audit = pooled_audit(noisy, threshold=0.3, noise_std=stds)
        assert audit["noise_std_by_attribute"] == pytest.approx(stds)
        for name, value in (("imse", ("imse_band", "4-7")), ("sex", ("sex", "F"))):
            low, high = audit["groups"][value[0]][value[1]]["tpr_ci"]
            widths[name].append(high - low)
    assert np.std(deviations[imse]) == pytest.approx(stds["imse_band"], rel=0.1)
    assert np.std(deviations[sex]) == pytest.approx(stds["sex"], rel=0.1)
    assert stds["imse_band"] < audit_noise_std(config) * 0.8 < stds["sex"]
    # sex=F holds more students than imse_band=4-7 (about 600 against 480), yet its
    # interval is the wider one: its counts carry 2.4 times the noise.
    assert np.median(widths["imse"]) < np.median(widths["sex"])
