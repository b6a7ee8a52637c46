"""Local training loops, with and without student-level DP-SGD.

DP-SGD here is Opacus's algorithm (``DPOptimizer`` semantics): Poisson sampling at
rate ``1 / steps_per_epoch``, each student's gradient clipped to ``max_grad_norm``,
Gaussian noise of std ``noise_multiplier * max_grad_norm`` on the sum, divided by the
expected batch size, then the optimiser's step. Sampling is done here on tensors: a
DataLoader that collates row by row costs more than the model.

Two engines compute the clipped sum. Models made only of ``nn.Linear`` layers (the
risk model) take the fast path: each student's gradient norm in closed form
(``|dL_i/dW| = |b_i| |a_i|`` for a linear layer, Goodfellow 2015, the "ghost norm" of
Opacus's ghost clipping) and the clipped sum as one matrix product, in a single
backward pass, without materialising per-student gradients. Any other model goes
through Opacus's ``GradSampleModule``. Both draw the same batches and the same noise
from the same generator. Sampling and noise draw from OS entropy unless
``reproducible`` is set (research only): noise an adversary can replay is no privacy.
"""

from __future__ import annotations

import secrets
import warnings
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch
from opacus import GradSampleModule
from opacus.grad_sample import GradSampleModuleFastGradientClipping
from opacus.optimizers import DPOptimizer, DPOptimizerFastGradientClipping
from opacus.utils.fast_gradient_clipping_utils import DPLossFastGradientClipping
from torch import nn

# Opacus's per-sample hooks fire on module outputs because inputs need no gradient:
# expected here, and harmless.
warnings.filterwarnings("ignore", message="Full backward hook is firing", category=UserWarning)

# Opacus's guard against a zero norm in the clipping factor; kept for identical results.
CLIP_EPSILON = 1e-6


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


class _PlainStep:
    """Adam on the mean loss, no privacy (references and tests only)."""

    def __init__(self, model: nn.Module, learning_rate: float) -> None:
        self.model = model
        self.optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
        self.loss_fn = nn.BCEWithLogitsLoss()

    def __call__(self, xb: torch.Tensor, yb: torch.Tensor) -> float:
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.loss_fn(self.model(xb), yb)
        loss.backward()
        self.optimizer.step()
        return float(loss.detach())


class _LinearDPStep:
    """DP-SGD step for a model whose parameters all sit in ``nn.Linear`` layers fed
    (batch, features) inputs: one backward pass to each layer's output, per-student
    norms in closed form, clipped sums as matrix products. Same result as Opacus's
    ``GradSampleModule`` + ``DPOptimizer`` (``loss_reduction="mean"``)."""

    def __init__(self, model: nn.Module, layers: list[nn.Linear], dp: DPSettings,
                 expected_batch_size: int, learning_rate: float,
                 generator: torch.Generator) -> None:
        self.model, self.layers, self.dp = model, layers, dp
        self.expected_batch_size = expected_batch_size
        self.generator = generator
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.Adam(self.params, lr=learning_rate)
        self.loss_fn = nn.BCEWithLogitsLoss(reduction="sum")  # each student's own loss
        self._inputs: list[torch.Tensor] = []
        self._outputs: list[torch.Tensor] = []
        self._hooks = [layer.register_forward_hook(self._capture) for layer in layers]

    def _capture(self, _layer: nn.Module, inputs: tuple[torch.Tensor, ...],
                 output: torch.Tensor) -> None:
        self._inputs.append(inputs[0].detach())
        self._outputs.append(output)

    def __call__(self, xb: torch.Tensor, yb: torch.Tensor) -> float:
        self.optimizer.zero_grad(set_to_none=True)
        mean_loss = 0.0
        if len(yb) > 0:
            self._inputs.clear()
            self._outputs.clear()
            loss = self.loss_fn(self.model(xb), yb)
            # Gradients of each student's own loss with respect to each layer's output.
            backprops = torch.autograd.grad(loss, self._outputs)
            squared_norms = torch.zeros(len(yb))
            for layer, a, b in zip(self.layers, self._inputs, backprops, strict=True):
                b_sq = (b * b).sum(dim=1)
                squared_norms += b_sq * (a * a).sum(dim=1)
                if layer.bias is not None:
                    squared_norms += b_sq
            clip = (self.dp.max_grad_norm / (squared_norms.sqrt() + CLIP_EPSILON)).clamp(max=1.0)
            for layer, a, b in zip(self.layers, self._inputs, backprops, strict=True):
                clipped = b * clip[:, None]
                layer.weight.grad = clipped.t() @ a
                if layer.bias is not None:
                    layer.bias.grad = clipped.sum(dim=0)
            mean_loss = float(loss.detach()) / len(yb)
        # An empty Poisson batch still takes a (noise-only) step: skipping it would
        # tell that the batch was empty, which the accountant does not cover.
        std = self.dp.noise_multiplier * self.dp.max_grad_norm
        for p in self.params:  # the order Opacus draws its noise in
            summed = p.grad if p.grad is not None else torch.zeros_like(p)
            if std > 0:
                summed = summed + torch.normal(mean=0.0, std=std, size=p.shape,
                                               generator=self.generator, dtype=p.dtype)
            p.grad = summed / self.expected_batch_size
        self.optimizer.step()
        return mean_loss

    def close(self) -> None:
        for hook in self._hooks:
            hook.remove()


class _OpacusDPStep:
    """DP-SGD step through Opacus's per-sample gradients, for any model Opacus supports;
    with ``ghost``, through Opacus's own fast gradient clipping instead (per-sample norms
    without per-sample gradients, then a second backward pass of the clipped loss:
    ``engine="opacus-ghost"``, measured against the hand-written fast path in
    docs/BENCHMARKS.md)."""

    def __init__(self, model: nn.Module, dp: DPSettings, expected_batch_size: int,
                 learning_rate: float, generator: torch.Generator, ghost: bool = False) -> None:
        self.module: GradSampleModule | GradSampleModuleFastGradientClipping
        if ghost:
            self.module = GradSampleModuleFastGradientClipping(
                model, loss_reduction="mean", max_grad_norm=dp.max_grad_norm,
                use_ghost_clipping=True)
        else:
            self.module = GradSampleModule(model, loss_reduction="mean")
        optimizer = DPOptimizerFastGradientClipping if ghost else DPOptimizer
        self.optimizer = optimizer(
            torch.optim.Adam(self.module.parameters(), lr=learning_rate),
            noise_multiplier=dp.noise_multiplier,
            max_grad_norm=dp.max_grad_norm,
            expected_batch_size=expected_batch_size,
            loss_reduction="mean",
            generator=generator,
        )
        self.module.train()
        self.loss_fn: nn.Module | DPLossFastGradientClipping = nn.BCEWithLogitsLoss()
        if ghost:
            self.loss_fn = DPLossFastGradientClipping(
                self.module, self.optimizer,
                nn.BCEWithLogitsLoss(), "mean")
        self.ghost = ghost

    def __call__(self, xb: torch.Tensor, yb: torch.Tensor) -> float:
        self.optimizer.zero_grad(set_to_none=True)
        mean_loss = 0.0
        if len(yb) > 0:
            loss = self.loss_fn(self.module(xb), yb)
            loss.backward()
            mean_loss = float(loss.detach().mean())
        elif self.ghost:  # an empty Poisson batch still takes a noise-only step
            for p in self.module.parameters():
                if p.requires_grad:
                    p.grad = torch.zeros_like(p)
        else:
            _empty_batch_grads(self.module)
        self.optimizer.step()
        return mean_loss

    def close(self) -> None:
        self.module.train(False)
        self.module._close()


#: The DP-SGD engines: ``auto`` (the hand-written fast path for linear models, Opacus's
#: GradSampleModule otherwise), ``opacus`` and ``opacus-ghost`` (Opacus's fast gradient
#: clipping), the latter two for comparison.
ENGINES = ("auto", "opacus", "opacus-ghost")


def linear_layers(model: nn.Module) -> list[nn.Linear] | None:
    """The model's ``nn.Linear`` layers in forward order if every trainable parameter
    belongs to one of them (the fast DP path applies), else ``None``."""
    layers = [m for m in model.modules() if isinstance(m, nn.Linear)]
    owned = {id(p) for layer in layers for p in layer.parameters()}
    trainable = [p for p in model.parameters() if p.requires_grad]
    if not layers or any(id(p) not in owned for p in trainable):
        return None
    return layers


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
    steps_per_epoch: int | None = None,
    engine: str = "auto",
) -> TrainStats:
    """Train ``model`` in place for ``epochs`` epochs of ``steps_per_epoch`` steps
    (default ``ceil(n / batch_size)``).

    With ``dp``, each step draws a Poisson batch at rate ``1 / steps_per_epoch`` (the
    rate the accountant is told), clips per-sample gradients and adds noise; the noisy
    sum is divided by ``batch_size``, the expected batch. A centre passes both from its
    public plan (``client.privacy.run_plan``), never from its exact number of records.
    """
    n = len(y)
    assert n > 0 and len(x) == n, "training needs as many labels as rows"
    if steps_per_epoch is None:
        steps_per_epoch = -(-n // batch_size)
    assert steps_per_epoch > 0, "an epoch needs at least one step"
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    generator = _generator(seed, reproducible)
    model.train()
    layers = linear_layers(model) if dp else None
    assert engine in ENGINES, f"unknown DP-SGD engine {engine!r}"
    step: _PlainStep | _LinearDPStep | _OpacusDPStep
    if dp is None:
        step = _PlainStep(model, learning_rate)
    elif engine == "opacus-ghost":
        step = _OpacusDPStep(model, dp, batch_size, learning_rate, generator, ghost=True)
    elif layers is not None and x.ndim == 2 and engine == "auto":
        step = _LinearDPStep(model, layers, dp, batch_size, learning_rate, generator)
    else:
        step = _OpacusDPStep(model, dp, batch_size, learning_rate, generator)
    total_loss, steps = 0.0, 0
    sample_rate = 1.0 / steps_per_epoch
    try:
        for _ in range(epochs):
            order = None if dp else torch.randperm(n, generator=generator)
            for index in range(steps_per_epoch):
                if dp:
                    members = torch.rand(n, generator=generator) < sample_rate
                    xb, yb = xt[members], yt[members]
                else:
                    assert order is not None
                    rows = order[index * batch_size : (index + 1) * batch_size]
                    xb, yb = xt[rows], yt[rows]
                total_loss += step(xb, yb)
                steps += 1
    finally:
        if not isinstance(step, _PlainStep):
            step.close()
    return TrainStats(num_examples=n, steps=steps, mean_loss=total_loss / max(steps, 1))


def _empty_batch_grads(module: nn.Module) -> None:
    """An empty Poisson batch still takes a (noise-only) step: skipping it would tell
    that the batch was empty, which the accountant does not cover."""
    for p in module.parameters():
        if p.requires_grad:
            p.grad_sample = torch.zeros((0, *p.shape), dtype=p.dtype)  # type: ignore[attr-defined]
            p.grad = torch.zeros_like(p)
