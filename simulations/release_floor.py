"""What the released pooled AUC's noise leaves to gain (issue 30): for each seed a run of
``python -m simulations.bench_release`` kept (``<out>/<case>/seed-N/scores.npz``), the
final model's exact held-out scores counted in the best bins any placement could ask
for (at the quantiles of the mixture of the labels' exact score distributions, ``k`` of
them), the pooled noise of the run's final release on each count (``draws`` seeded
draws, counts clipped at 0 as the ministry does), and:

- the root mean squared error of the released AUC against the exact one for each ``k``
  (ties and noise together): the floor of any bin placement at this noise;
- the share of the run's pooled noise at which the best ``k`` brings it to
  :data:`TARGET_RMSE` (then 5 seeds all fall within 0.02 with probability about 0.9 and
  their median within 0.01): what less noise (secure mode's distributed noise, more
  budget) would have to bring.

    nice python -m simulations.release_floor [--out .work/bench-release]
        [--cases weak-5,realinho] [--draws 200]
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from common.metrics import MIN_EDGE_GAP, ScoreHistogram, auc_from_histogram, score_histogram

#: RMSE of the released AUC at which 5 seeds meet the targets with probability about 0.9
#: (0.02 / 0.0087 = 2.3 standard deviations).
TARGET_RMSE = 0.0087
BINS = (4, 6, 8, 12, 16)


def mixture_edges(probabilities: np.ndarray, labels: np.ndarray, k: int) -> tuple[float, ...]:
    """``k - 1`` interior edges (logits) at the quantiles of ``(F_pos + F_neg) / 2`` of
    the exact scores: what :func:`common.metrics.place_edges` aims at, without noise."""
    logits = np.log(probabilities / (1 - probabilities))
    grid = np.unique(logits)
    below = [np.searchsorted(np.sort(logits[labels == v]), grid, side="right")
             / max(int((labels == v).sum()), 1) for v in (0, 1)]
    share = (below[0] + below[1]) / 2 + np.arange(len(grid)) * 1e-12
    edges = np.interp(np.arange(1, k) / k, share, grid)
    for i in range(1, len(edges)):
        edges[i] = max(edges[i], edges[i - 1] + MIN_EDGE_GAP)
    return tuple(float(v) for v in edges)


def released_rmse(histogram: ScoreHistogram, noise_sd: float, exact: float,
                  rng: np.random.Generator, draws: int) -> float:
    """RMSE of the AUC of ``histogram`` with Gaussian noise of ``noise_sd`` on each
    count, clipped at 0, against ``exact``."""
    errors = []
    for _ in range(draws):
        pos = np.clip(histogram.positives + rng.normal(0, noise_sd, histogram.bins), 0, None)
        neg = np.clip(histogram.negatives + rng.normal(0, noise_sd, histogram.bins), 0, None)
        errors.append(auc_from_histogram(ScoreHistogram(pos, neg, pos, 0.0)) - exact)
    return float(np.sqrt(np.nanmean(np.square(errors))))


def floor(probabilities: np.ndarray, labels: np.ndarray, noise_sd: float, draws: int = 200,
          seed: int = 30) -> tuple[dict[int, float], int, float]:
    """Each ``k``'s RMSE at ``noise_sd``, and the best ``k`` with the share of
    ``noise_sd`` at which its RMSE is :data:`TARGET_RMSE` (0: none reaches it)."""
    rng = np.random.default_rng(seed)
    exact = float(roc_auc_score(labels, probabilities))
    now, best = {}, (BINS[-1], 0.0)
    for k in BINS:
        h = score_histogram(probabilities, labels, k, mixture_edges(probabilities, labels, k))
        now[k] = released_rmse(h, noise_sd, exact, rng, draws)
        if abs(auc_from_histogram(h) - exact) > TARGET_RMSE:
            continue  # the ties alone miss it
        low, high = 0.0, 1.0
        for _ in range(10):
            middle = (low + high) / 2
            if released_rmse(h, noise_sd * middle, exact, rng, draws) <= TARGET_RMSE:
                low = middle
            else:
                high = middle
        if low > best[1]:
            best = (k, low)
    return now, best[0], best[1]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path(".work/bench-release"))
    parser.add_argument("--cases", default="")
    parser.add_argument("--draws", type=int, default=200)
    args = parser.parse_args(argv)
    names = [n for n in args.cases.split(",") if n] or sorted(
        p.name for p in args.out.iterdir() if p.is_dir())
    print("| case, seed | positives / held-out | exact AUC | pooled noise sd | RMSE at it, "
          + ", ".join(f"{k} bins" for k in BINS) + " | best bins | noise share for RMSE "
          f"{TARGET_RMSE} |\n|---|---|---|---|---|---|---|")
    for name in names:
        for path in sorted((args.out / name).glob("seed-*/scores.npz")):
            saved = np.load(path)
            p, y = saved["probabilities"], saved["labels"]
            sd = float(saved["noise_sd"][0])
            if not math.isfinite(sd):
                continue
            now, k, share = floor(p, y, sd, args.draws)
            print(f"| {name}, {path.parent.name} | {int(y.sum()):,} / {len(y):,} | "
                  f"{roc_auc_score(y, p):.3f} | {sd:.1f} | "
                  + ", ".join(f"{v:.4f}" for v in now.values())
                  + f" | {k} | " + ("met at it |" if share >= 0.999 else
                                    f"{share:.2f} (sd {sd * share:.2f}) |"), flush=True)


if __name__ == "__main__":
    main()
