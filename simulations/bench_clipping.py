"""The three DP-SGD engines side by side on the risk model (issue 16, item 4): the
hand-written one-pass clipped sum (``common.training``'s fast path), Opacus's
``GradSampleModule`` + ``DPOptimizer``, and Opacus's own fast gradient clipping (ghost
clipping: ``GradSampleModuleFastGradientClipping`` + ``DPLossFastGradientClipping``).

Same batches and same noise (one seeded generator each), the final weights compared,
then one epoch timed for each engine, interleaved ``repeats`` times, the fastest kept
(the machine is shared: the fastest repeat is the least disturbed).

    python -m simulations.bench_clipping [--sizes 2900,23000] [--repeats 5] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path

import numpy as np
import torch

from common.encoding import NUM_FEATURES
from common.model import ModelConfig, build_model, get_weights
from common.privacy.accounting import choose_batch_size
from common.training import ENGINES, DPSettings, train_local

DP = DPSettings(noise_multiplier=1.0, max_grad_norm=1.0)


def _data(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.random((n, NUM_FEATURES), dtype=np.float32)
    return x, (rng.random(n) < 0.2).astype(np.float32)


def _epoch(engine: str, x: np.ndarray, y: np.ndarray, batch: int,
           seed: int = 9) -> tuple[float, dict[str, torch.Tensor]]:
    model = build_model(ModelConfig(), seed=2)
    started = time.perf_counter()
    train_local(model, x, y, epochs=1, batch_size=batch, learning_rate=0.02, dp=DP,
                seed=seed, reproducible=True, engine=engine)
    return time.perf_counter() - started, get_weights(model)


def compare(n: int, repeats: int = 5) -> dict[str, object]:
    """One centre of ``n`` training records at its planned batch: the largest weight
    difference of each engine to the hand-written path, and the fastest epoch of each."""
    x, y = _data(n)
    batch = choose_batch_size(n)
    best = dict.fromkeys(ENGINES, math.inf)
    weights: dict[str, dict[str, torch.Tensor]] = {}
    for _ in range(repeats):
        for engine in ENGINES:
            seconds, weights[engine] = _epoch(engine, x, y, batch)
            best[engine] = min(best[engine], seconds)
    reference = weights["auto"]
    difference = {engine: max(float((weights[engine][k] - reference[k]).abs().max())
                              for k in reference) for engine in ENGINES if engine != "auto"}
    return {"records": n, "batch_size": batch, "steps": math.ceil(n / batch),
            "epoch_seconds": best, "max_weight_difference": difference,
            "opacus_ghost_over_ours": best["opacus-ghost"] / best["auto"],
            "opacus_over_ours": best["opacus"] / best["auto"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="2900,23000",
                        help="training records per centre (demo's typical, quebec-72's largest)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(1)  # as one simulated centre: one core each
    load = [round(v, 2) for v in os.getloadavg()]
    rows = [compare(int(n), args.repeats) for n in args.sizes.split(",")]
    result = {"rows": rows, "load_before": load,
              "load_after": [round(v, 2) for v in os.getloadavg()], "threads": 1}
    for row in rows:
        seconds = row["epoch_seconds"]
        assert isinstance(seconds, dict)
        print(f"{row['records']} records, batch {row['batch_size']}: ours "
              f"{seconds['auto']:.3f} s, Opacus {seconds['opacus']:.3f} s, Opacus ghost "
              f"{seconds['opacus-ghost']:.3f} s per epoch (x{row['opacus_ghost_over_ours']:.2f}"
              f" ghost / ours); largest weight difference {row['max_weight_difference']}")
    print(f"load average before {load}, after {result['load_after']}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
