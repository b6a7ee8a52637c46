"""The fast DP-SGD path (closed-form per-student norms for linear layers) against
Opacus's GradSampleModule + DPOptimizer: same batches, same noise, same weights."""

import numpy as np
import pytest
import torch
from torch import nn

from common import training
from common.encoding import NUM_FEATURES
from common.model import ModelConfig, build_model, get_weights
from common.training import DPSettings, linear_layers, train_local


def _data(n, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((n, NUM_FEATURES), dtype=np.float32)
    y = (rng.random(n) < 0.3).astype(np.float32)
    return x, y


def _train(monkeypatch, fast, x, y, batch_size, dp):
    if not fast:
        monkeypatch.setattr(training, "linear_layers", lambda _model: None)
    model = build_model(ModelConfig(), seed=2)
    stats = train_local(model, x, y, epochs=2, batch_size=batch_size, learning_rate=0.02,
                        dp=dp, seed=9, reproducible=True)
    monkeypatch.undo()
    return get_weights(model), stats


@pytest.mark.parametrize(
    ("n", "batch_size", "dp"),
    [
        (600, 50, DPSettings(noise_multiplier=1.0, max_grad_norm=1.0)),
        (600, 50, DPSettings(noise_multiplier=0.7, max_grad_norm=0.05)),  # every norm clipped
        (600, 100, DPSettings(noise_multiplier=0.0, max_grad_norm=100.0)),  # nothing clipped
        (6, 1, DPSettings(noise_multiplier=1.0, max_grad_norm=1.0)),  # empty Poisson batches
    ],
)
def test_fast_path_gives_opacus_weights(monkeypatch, n, batch_size, dp):
    x, y = _data(n)
    reference, reference_stats = _train(monkeypatch, False, x, y, batch_size, dp)
    fast, fast_stats = _train(monkeypatch, True, x, y, batch_size, dp)
    assert fast_stats.steps == reference_stats.steps
    assert fast_stats.mean_loss == pytest.approx(reference_stats.mean_loss, rel=1e-5)
    for key in reference:
        torch.testing.assert_close(fast[key], reference[key], rtol=1e-4, atol=1e-5, msg=key)


def test_only_models_made_of_linear_layers_take_the_fast_path():
    assert linear_layers(build_model(ModelConfig(), seed=0)) is not None
    with_norm = nn.Sequential(nn.Linear(4, 3), nn.LayerNorm(3), nn.Linear(3, 1))
    assert linear_layers(with_norm) is None


@pytest.mark.parametrize(
    ("n", "batch_size", "dp"),
    [
        (600, 50, DPSettings(noise_multiplier=1.0, max_grad_norm=1.0)),
        (600, 50, DPSettings(noise_multiplier=0.7, max_grad_norm=0.05)),
        (6, 1, DPSettings(noise_multiplier=1.0, max_grad_norm=1.0)),  # empty Poisson batches
    ],
)
def test_opacus_fast_gradient_clipping_gives_the_same_weights(n, batch_size, dp):
    # Opacus 1.6's own ghost clipping, measured against ours (docs/BENCHMARKS.md).
    x, y = _data(n)
    weights = {}
    for engine in ("auto", "opacus-ghost"):
        model = build_model(ModelConfig(), seed=2)
        train_local(model, x, y, epochs=2, batch_size=batch_size, learning_rate=0.02, dp=dp,
                    seed=9, reproducible=True, engine=engine)
        weights[engine] = get_weights(model)
    for key in weights["auto"]:
        torch.testing.assert_close(weights["opacus-ghost"][key], weights["auto"][key],
                                   rtol=1e-4, atol=1e-5, msg=key)

