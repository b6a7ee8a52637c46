"""Released figures on score distributions we did not tune on (issue 30): for each case
of a test bed, the released (DP-noised) pooled AUC of a federated run against the exact
pooled AUC of the same final model on the same held-out students, over several seeds.

Each run is the real ServerApp logic and the real ClientApp in one process
(``simulations.direct_grid``: no Ray), over files written as the simulation writes
them. The cases:

- ``realinho``: UCI "Predict Students' Dropout" (../shared/data), its 17 programmes as
  centres (scenario ``uci-dropout-realinho``; about 890 held-out students);
- ``por``: UCI "Student Performance" (Portuguese), its 2 schools as centres (about 140);
- ``weak-5`` and ``weak-40``: the generated network (13 centres, 33,000 students, about
  6,500 held out, as the real network of the issue), its labels redrawn with the signal
  weakened (``WEAKENING``) and the dropout rate moved to 5 % and 40 %;
- ``concentrated``: the demo's network with 80 % of the EHDAA students of the other
  centres moved into the largest one (one centre holds most of one group);
- ``demo``: the demo scenario as it is (no worse than before).

For each run: ``exact`` (roc_auc_score of the final model's raw held-out scores),
``released`` (``auc_pooled`` of ``summary.json``), ``bins`` (the AUC of the exact
scores counted in the final evaluation's bins, no noise: the bins' own error) and
``fixed`` (the same in the fixed bins on logit -7..5: what the bins alone cost before).
The error splits into the bins' (``bins - exact``) and the noise's (``released - bins``).
Each seed's raw held-out scores, labels, bins and released counts are kept in
``<out>/<case>/seed-N/scores.npz`` (for offline studies of the estimator).

    nice python -m simulations.bench_release [--cases weak-5,realinho] [--seeds 5]
        [--first-seed 1] [--set evaluation.placement=fixed] [--out .work/bench-release]
        [--json FILE]

Seeds run one after the other (``seed`` = 1..N, or N seeds from ``--first-seed``: the
model's initialisation, the training's sampling and noise, the evaluation's noise); the
data of a case are the same in every seed.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from common.calibration import Calibration
from common.metrics import auc_from_histogram, score_histogram
from common.model import read_model
from common.workdirs import prepare_environment
from server import run_folder
from simulations.direct_grid import run_direct
from simulations.inprocess import scores, torch_threads
from simulations.reference import pooled_data
from simulations.runner import prepare_data
from simulations.scenario import Scenario, load_scenario

#: Share of labels redrawn at random (at the case's rate) in the weak-signal cases: the
#: model's exact AUC falls from about 0.80 to about 0.60.
WEAKENING = 0.65
LABEL = "left_without_diploma"
Transform = Callable[[dict[Path, pd.DataFrame], np.random.Generator], None]


@dataclass(frozen=True)
class Case:
    name: str
    scenario: str
    overrides: tuple[str, ...] = ()
    transform: Transform | None = None


def _relabel(rate: float) -> Transform:
    """Labels moved to ``rate`` (positives thinned, or random ones added), then a share
    ``WEAKENING`` of them redrawn at ``rate``: a weak signal at a moved base rate."""
    def transform(frames: dict[Path, pd.DataFrame], rng: np.random.Generator) -> None:
        labelled = pd.concat([f[LABEL] for f in frames.values()]).dropna().astype(bool)
        base = float(labelled.mean())
        for frame in frames.values():
            known = frame[LABEL].notna().to_numpy()
            y = frame[LABEL].fillna(False).astype(bool).to_numpy()
            u = rng.random(len(y))
            # Thin the positives, or add random ones, to reach ``rate``.
            y = y & (u < rate / base) if rate < base else y | (u < (rate - base) / (1 - base))
            redraw = rng.random(len(y)) < WEAKENING
            y = np.where(redraw, rng.random(len(y)) < rate, y)
            labels = pd.array(y, dtype="boolean")
            labels[~known] = pd.NA
            frame[LABEL] = labels
    return transform


def _concentrate(frames: dict[Path, pd.DataFrame], rng: np.random.Generator) -> None:
    """80 % of the EHDAA students of every other centre move to the largest one."""
    largest = max(frames, key=lambda path: len(frames[path]))
    moved = []
    for path, frame in frames.items():
        if path == largest:
            continue
        ehdaa = frame["ehdaa"].fillna(False).astype(bool).to_numpy()
        move = ehdaa & (rng.random(len(frame)) < 0.8)
        rows = frame[move].copy()
        rows["student_id"] = path.stem + "-" + rows["student_id"].astype(str)
        moved.append(rows)
        frames[path] = frame[~move].reset_index(drop=True)
    frames[largest] = pd.concat([frames[largest], *moved], ignore_index=True)


WEAK = ("network.centres=13", "network.students=33000")
CASES = {case.name: case for case in (
    Case("realinho", "uci-dropout-realinho"),
    Case("por", "uci-student-por"),
    Case("weak-5", "demo", WEAK, _relabel(0.05)),
    Case("weak-40", "demo", WEAK, _relabel(0.40)),
    Case("concentrated", "demo", (), _concentrate),
    Case("demo", "demo"),
)}


def _read(path: Path) -> pd.DataFrame:
    return pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)


def _write(path: Path, frame: pd.DataFrame) -> None:
    if path.suffix == ".parquet":
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False)


def prepare_case(case: Case, folder: Path, overrides: list[str]) -> tuple[Scenario, list[Path]]:
    """The case's scenario and its centres' files in ``folder/data`` (the same for every
    seed: the transforms draw from a fixed generator)."""
    scenario = load_scenario(case.scenario, [*case.overrides, "baselines.enabled=false",
                                             *overrides])
    data_dir = folder / "data"
    files, _ = prepare_data(scenario, data_dir)
    if case.transform is not None:
        frames = {path: _read(path) for path in files}
        case.transform(frames, np.random.default_rng(20261207))
        for path, frame in frames.items():
            _write(path, frame)
    return scenario, files


@dataclass(frozen=True)
class Outcome:
    seed: int
    exact: float
    released: float
    bins: float
    fixed: float
    held_out: int
    seconds: float

    @property
    def error(self) -> float:
        return self.released - self.exact

    @property
    def noise(self) -> float:
        """The noise's share of the error: released minus the noiseless binned AUC."""
        return self.released - self.bins


def run_seed(scenario: Scenario, files: list[Path], folder: Path, seed: int) -> Outcome:
    """One federated run of the case with ``seed``, and its figures."""
    started = time.monotonic()
    data_dir = files[0].parent
    run_dir = folder / f"seed-{seed}"
    config = replace(scenario.run, seed=seed, run_dir=str(run_dir), data_dir=str(data_dir))
    manifest = data_dir / "centres.json"
    if not config.evaluation.centre_register and manifest.is_file():
        config = replace(config, evaluation=replace(config.evaluation,
                                                    centre_register=str(manifest)))
    with torch_threads(1):
        run_direct(config, len(files))
        summary = run_folder.read_json(run_dir / run_folder.SUMMARY)
        model = read_model(run_dir / run_folder.MODEL)
        model.calibration = Calibration()  # the raw scores the centres count
        mapping = data_dir / "mapping.toml"
        centres = pooled_data(files, config, mapping if mapping.is_file() else None)
        probabilities, labels = scores(model, centres)
    kept = run_dir / run_folder.EVALUATION  # absent: no pooled figure stood above the noise
    evaluation = run_folder.read_json(kept) if kept.is_file() else {}
    edges = evaluation.get("edges")
    bins = config.evaluation.bins
    placed = score_histogram(probabilities, labels, bins,
                             tuple(edges) if edges else None)
    fixed = score_histogram(probabilities, labels, bins)
    released = summary.get("auc_pooled", math.nan)
    np.savez(run_dir / "scores.npz", probabilities=probabilities, labels=labels,
             edges=np.asarray(edges or [], dtype=np.float64),
             noise_sd=np.asarray(evaluation.get("noise_sd") or [math.nan]),
             pos=np.asarray(evaluation.get("hist_pos_raw") or [], dtype=np.float64),
             neg=np.asarray(evaluation.get("hist_neg_raw") or [], dtype=np.float64),
             released=np.asarray([released if released is not None else math.nan]))
    return Outcome(seed, float(roc_auc_score(labels, probabilities)),
                   float(released) if released is not None else math.nan,
                   auc_from_histogram(placed), auc_from_histogram(fixed), len(labels),
                   time.monotonic() - started)


def _row(name: str, outcomes: list[Outcome]) -> str:
    errors = [abs(o.error) for o in outcomes]
    finite = [e for e in errors if math.isfinite(e)]
    median = statistics.median(finite) if finite else math.nan
    worst = max(finite) if finite else math.nan
    within = median <= 0.01 and worst <= 0.02 and len(finite) == len(errors)
    return (f"| {name} | {statistics.median(o.held_out for o in outcomes):,.0f} | "
            f"{statistics.median(o.exact for o in outcomes):.3f} | "
            + ", ".join(f"{o.error:+.4f}" for o in outcomes)
            + f" | {median:.4f} | {worst:.4f} | "
            f"{statistics.median(o.bins - o.exact for o in outcomes):+.4f} | "
            f"{statistics.median(o.fixed - o.exact for o in outcomes):+.4f} | "
            f"{'yes' if within else 'no'} |")


HEADER = ("| case | held-out | exact AUC (median) | released - exact, per seed | "
          "median abs. | max abs. | bins alone (placed) | bins alone (fixed -7..5) | "
          "targets |\n|---|---|---|---|---|---|---|---|---|")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--first-seed", type=int, default=1,
                        help="the first seed (more seeds of a case in another --out)")
    parser.add_argument("--set", action="append", default=[], dest="overrides")
    parser.add_argument("--out", type=Path, default=Path(".work/bench-release"))
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    prepare_environment()
    names = [n.strip() for n in args.cases.split(",") if n.strip()]
    unknown = [n for n in names if n not in CASES]
    if unknown:
        parser.error(f"unknown cases {unknown}; known: {', '.join(CASES)}")
    results: dict[str, list[Outcome]] = {}
    rows = []
    for name in names:
        folder = (args.out / name).resolve()
        scenario, files = prepare_case(CASES[name], folder, args.overrides)
        results[name] = []
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            outcome = run_seed(scenario, files, folder, seed)
            results[name].append(outcome)
            print(f"{name} seed {seed}: exact {outcome.exact:.4f} released "
                  f"{outcome.released:.4f} ({outcome.error:+.4f}) bins {outcome.bins:.4f} "
                  f"({outcome.bins - outcome.exact:+.4f}) noise {outcome.noise:+.4f} "
                  f"fixed {outcome.fixed:.4f}, {outcome.seconds:.0f} s", flush=True)
        rows.append(_row(name, results[name]))
    print(HEADER)
    print("\n".join(rows))
    if args.json is not None:
        args.json.write_text(json.dumps(
            {name: [o.__dict__ for o in outcomes] for name, outcomes in results.items()},
            indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
