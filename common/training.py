"""Local training and evaluation loops, with and without student-level DP-SGD.

DP training uses Opacus's ``GradSampleModule`` (per-sample gradients) and
``DPOptimizer`` (per-sample clipping + Gaussian noise) directly, with Poisson sampling
done here on tensors: a DataLoader that collates row by row costs more than the model.
Sampling and noise draw from OS entropy unless ``reproducible`` is set (research
only): noise an adversary can replay is no privacy.
"""

from __future__ import annotations

import secrets
import warnings
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch
from opacus import GradSampleModule
from opacus.optimizers import DPOptimizer
from torch import nn

# Opacus's per-sample hooks fire on module outputs because inputs need no gradient:
# expected here, and harmless.
warnings.filterwarnings("ignore", message="Full backward hook is firing", category=UserWarning)


@dataclass(frozen=True)
class DPSettings:
    """DP-SGD parameters for one centre: Gaussian noise of std
    ``noise_multiplier * max_grad_norm`` on the sum of clipped per-sample gradients."""

    noise_multiplier: float
    max_grad_norm: float


@dataclass(frozen=True)
class TrainStats:
    """What one local training call did. ``num_examples`` counts records, not batches."""

    num_examples: int
    steps: int
    mean_loss: float


def _generator(seed: int, reproducible: bool) -> torch.Generator:
    generator = torch.Generator()
    generator.manual_seed(seed if reproducible else secrets.randbits(63))
    return generator


def train_local(
    model: nn.Module,
    x: npt.NDArray[np.float32],
    y: npt.NDArray[np.float32],
    *,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    dp: DPSettings | None,
    seed: int = 0,
    reproducible: bool = False,
) -> TrainStats:
    """Train ``model`` in place for ``epochs`` epochs of ``ceil(n / batch_size)`` steps.

    With ``dp``, each step draws a Poisson batch at rate ``1 / steps_per_epoch`` (the
    rate the accountant is told), clips per-sample gradients and adds noise.
    """
    n = len(y)
    assert n > 0 and len(x) == n, "training needs as many labels as rows"
    steps_per_epoch = -(-n // batch_size)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    generator = _generator(seed, reproducible)
    loss_fn = nn.BCEWithLogitsLoss()
    trained: nn.Module = GradSampleModule(model, loss_reduction="mean") if dp else model
    optimizer: torch.optim.Optimizer = torch.optim.Adam(trained.parameters(), lr=learning_rate)
    if dp:
        optimizer = DPOptimizer(
            optimizer,
            noise_multiplier=dp.noise_multiplier,
            max_grad_norm=dp.max_grad_norm,
            expected_batch_size=batch_size,
            loss_reduction="mean",
            generator=generator,
        )
    trained.train()
    total_loss, steps = 0.0, 0
    sample_rate = 1.0 / steps_per_epoch
    for _ in range(epochs):
        order = None if dp else torch.randperm(n, generator=generator)
        for step in range(steps_per_epoch):
            if dp:
                members = torch.rand(n, generator=generator) < sample_rate
                xb, yb = xt[members], yt[members]
            else:
                assert order is not None
                rows = order[step * batch_size : (step + 1) * batch_size]
                xb, yb = xt[rows], yt[rows]
            optimizer.zero_grad(set_to_none=True)
            if len(yb) > 0:
                loss = loss_fn(trained(xb), yb)
                loss.backward()
                total_loss += float(loss.detach())
            else:
                _empty_batch_grads(trained)
            optimizer.step()
            steps += 1
    if dp:
        trained.train(False)
        assert isinstance(trained, GradSampleModule)
        trained._close()
    return TrainStats(num_examples=n, steps=steps, mean_loss=total_loss / max(steps, 1))


def _empty_batch_grads(module: nn.Module) -> None:
    """An empty Poisson batch still takes a (noise-only) step: skipping it would tell
    that the batch was empty, which the accountant does not cover."""
    for p in module.parameters():
        if p.requires_grad:
            p.grad_sample = torch.zeros((0, *p.shape), dtype=p.dtype)  # type: ignore[attr-defined]
            p.grad = torch.zeros_like(p)
