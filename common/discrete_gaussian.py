"""The discrete Gaussian N_Z(0, sigma^2) and what a sum of them guarantees.

Secure mode (``privacy.secure_aggregation``) sums the centres' evaluation counts with
SecAgg+, which adds integers modulo 2^32: the noise on an integer count must be an
integer too. The discrete Gaussian (Canonne, Kamath and Steinke 2020) gives a count the
same Renyi-DP as the continuous Gaussian of the same sigma: D_alpha <= alpha ||d||^2 /
(2 sigma^2) for every integer difference d, so a centre's ledger books it as the
Gaussian row it already knows. A sum of n independent N_Z(0, sigma^2) is not exactly
N_Z(0, n sigma^2), but Kairouz, Liu and Steinke (2021, Theorem 1 / Proposition 14,
"the distributed discrete Gaussian") bound it: for every integer difference vector d of
dimension dim,

    D_alpha(Z || Z + d) <= alpha / 2 * (||d||_2^2 / (n sigma^2) + tau * dim / 2),
    tau = 10 * sum_{k=1}^{n-1} exp(-2 pi^2 sigma^2 k / (k + 1)),    sigma >= 1/2.

With sigma >= ``MIN_SHARE_STD`` the tau term is below 1e-6 of the first for the
federations here (72 centres, a few hundred counts), so the sum is as private as one
Gaussian release of variance n sigma^2 (``sum_multiplier`` keeps the term anyway).
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

#: The smallest std a centre's share of the noise may have: below it the tau term of
#: the sum's bound grows quickly (Quebec's audit share at epsilon 3 over 20 rounds,
#: 0.94, would double the bound's epsilon^2; at 0.77, 17 times the noise's own term);
#: at 1.5, tau < 1e-8 for 72 centres.
MIN_SHARE_STD = 1.5


def discrete_gaussian(rng: np.random.Generator, sigma: float, size: int) -> npt.NDArray[np.int64]:
    """``size`` independent draws of N_Z(0, sigma^2): P(x) proportional to exp(-x^2 /
    (2 sigma^2)) on the integers (sigma 0: zeros).

    Canonne, Kamath and Steinke's Algorithm 3: draw Y from the discrete Laplace of
    scale t = floor(sigma) + 1 (a difference of two geometric counts), keep it with
    probability exp(-(|Y| - sigma^2 / t)^2 / (2 sigma^2)). Their exact version does the
    Bernoulli trials in rational arithmetic; here they are floating point, which moves
    each probability by about 1e-16 of itself (the output is an integer: no low-order
    bits to leak, unlike a floating-point Laplace)."""
    if sigma <= 0:
        return np.zeros(size, dtype=np.int64)
    t = math.floor(sigma) + 1
    success = -math.expm1(-1.0 / t)  # P(stop) of each geometric trial
    out = np.empty(0, dtype=np.int64)
    while out.size < size:
        want = max(2 * (size - out.size), 16)
        y = rng.geometric(success, want) - rng.geometric(success, want)
        keep = rng.random(want) < np.exp(-((np.abs(y) - sigma**2 / t) ** 2) / (2 * sigma**2))
        out = np.concatenate([out, y[keep].astype(np.int64)])
    return out[:size]


def sum_tau(sigma: float, summands: int) -> float:
    """Kairouz, Liu and Steinke's tau for a sum of ``summands`` draws of N_Z(0, sigma^2)."""
    k = np.arange(1, max(summands, 1), dtype=np.float64)
    return float(10.0 * np.exp(-2 * math.pi**2 * sigma**2 * k / (k + 1)).sum())


def sum_multiplier(sigma: float, summands: int, l2_squared: float, dim: int) -> float:
    """The Gaussian noise multiplier whose Renyi-DP bounds that of ``summands`` shares of
    N_Z(0, sigma^2) summed, for a release of ``dim`` counts whose squared L2
    sensitivity is ``l2_squared``: 1 / sqrt(l2^2 / (n sigma^2) + tau dim / 2), a row the
    accountant (``common.privacy.accounting.composed_epsilon``, q = 1) composes as it is."""
    assert sigma >= 0.5, "the bound needs sigma >= 1/2"
    epsilon_squared = (l2_squared / (summands * sigma**2)
                       + sum_tau(sigma, summands) * dim / 2)
    return 1.0 / math.sqrt(epsilon_squared)
