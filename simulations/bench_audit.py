"""The equity audit's and the calibration error's released figures against the exact
ones (issue 30, point 3), on the runs of the test bed (``simulations.bench_release``).

For each run (``<out>/<case>/seed-N``: its ``summary.json``, ``evaluation.json``,
``equity.json`` and final model) and the same held-out students, split as the centres
split them:

- **the equity audit**: for each group it released (sex, EHDAA, Indigenous, immigrant
  generation, home language, IMSE band; regions left out), the released observed rate,
  TPR, FPR, AUC and calibrated calibration error (``equity.json``) against the exact
  ones (every member's own score at the audit's raw threshold, ``roc_auc_score``, the
  mean of its members' recalibrated probabilities); ``bands``: the same members counted
  in the run's five score bands without noise (its AUC over the bands, its calibrated
  mean from the bands' representatives), so that each error splits into the bands' share
  (``bands - exact``) and the noise's; and whether the exact value lies in the released
  95 % interval;
- **the pooled calibration error** of the recalibrated probabilities: ``released``
  (read from the final release's counts as the ministry reads it, over the groups
  :func:`common.metrics.calibration_groups` places from them; ``before``: over groups of
  equal numbers of bins, as before issue 30's point 3), ``same groups`` (the exact
  recalibrated probabilities in the release's bins and groups, no noise: the noise's
  share is ``released - same groups``) and ``exact`` (10 groups of equal numbers of
  held-out students over their own recalibrated probabilities, the figure someone holding
  every score would compute).

    nice python -m simulations.bench_audit [--cases demo,weak-40] [--seeds 5]
        [--first-seed 1] [--out .work/bench-release] [--run] [--json FILE]

``--run`` first runs the seeds with ``simulations.bench_release`` (into ``--out``);
without it, the runs already in ``--out`` are read (a missing seed is skipped).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt
from sklearn.metrics import roc_auc_score

from client.ingest.centre_data import CentreData
from common.calibration import Calibration, calibrated_error
from common.equity.audit import (
    AUDIT_GROUPS,
    AUDIT_SENSITIVE,
    GROUP_BINS,
    BandProbabilities,
    Threshold,
    band_auc,
    group_bin_edges,
)
from common.equity.reading import band_probabilities
from common.metrics import (
    CALIBRATION_GROUPS,
    ScoreHistogram,
    bin_edges,
    calibration_error,
    calibration_groups,
    score_histogram,
)
from common.model import predict_proba, read_model
from common.workdirs import prepare_environment
from server import run_folder
from server.federation.bookkeeping import histogram_of
from simulations import bench_release
from simulations.inprocess import torch_threads
from simulations.reference import pooled_data
from simulations.scenario import load_scenario

FloatArray = npt.NDArray[np.float64]
#: The audit's figures compared, as ``equity.json`` names them.
AUDIT_METRICS = ("observed_rate", "tpr", "fpr", "auc", "calibration_error_calibrated")
#: Their released 95 % intervals (the calibrated calibration error has none).
INTERVALS = {"observed_rate": "observed_rate_ci", "tpr": "tpr_ci", "fpr": "fpr_ci",
             "auc": "auc_ci"}


def exact_calibration_error(probabilities: npt.ArrayLike, labels: npt.ArrayLike,
                            groups: int = CALIBRATION_GROUPS) -> float:
    """The calibration error of students' own probabilities over ``groups`` groups of
    equal numbers of them (by increasing probability): the mean over students of each
    group's |sum of probabilities - positives|, what someone holding every score would
    compute."""
    p = np.asarray(probabilities, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    if len(p) == 0:
        return math.nan
    order = np.argsort(p, kind="stable")
    gaps = [abs(float(p[part].sum() - y[part].sum()))
            for part in np.array_split(order, min(groups, len(p)))]
    return float(sum(gaps) / len(p))


def equal_bin_groups(bins: int, groups: int = CALIBRATION_GROUPS) -> list[tuple[int, int]]:
    """The calibration error's groups before issue 30's point 3: equal numbers of bins."""
    bounds = np.linspace(0, bins, groups + 1).astype(int)
    return [(int(lo), int(hi)) for lo, hi in itertools.pairwise(bounds)
            if hi > lo]


def recalibrated_histogram(probabilities: FloatArray, labels: FloatArray,
                           calibration: Calibration, bins: int,
                           edges: tuple[float, ...] | None) -> ScoreHistogram:
    """The students counted in the bins of their RAW scores (as the centres count them),
    with the sums of their own recalibrated probabilities."""
    raw = score_histogram(probabilities, labels, bins, edges)
    index = np.searchsorted(bin_edges(raw.bins, edges), probabilities, side="right")
    sums = np.bincount(index, weights=calibration.apply(probabilities), minlength=raw.bins)
    return ScoreHistogram(raw.positives, raw.negatives, sums.astype(np.float64), 0.0, edges)


@dataclass(frozen=True)
class Members:
    """A group's held-out students, pooled over the centres: raw scores and labels."""

    probabilities: FloatArray
    labels: FloatArray


def group_members(centres: Sequence[CentreData], probabilities: Sequence[FloatArray]
                  ) -> dict[tuple[str, str], Members]:
    """Every audit group's members over all centres, as the centres place them
    (``common.equity.audit.centre_cells``: a centre whose policy withholds the sensitive
    attributes places none of its students in their values)."""
    found: dict[tuple[str, str], list[tuple[FloatArray, FloatArray]]] = {}
    for centre, p in zip(centres, probabilities, strict=True):
        y = np.asarray(centre.y_test, dtype=np.float64)
        for group in AUDIT_GROUPS:
            if group.name in AUDIT_SENSITIVE and not centre.policy.audit_attributes_allowed:
                continue
            labels = group.labels(centre.audit_test).fillna("").to_numpy(dtype=str)
            for value in group.values:
                member = labels == value
                found.setdefault((group.name, value), []).append((p[member], y[member]))
    return {key: Members(np.concatenate([p for p, _ in parts]),
                         np.concatenate([y for _, y in parts]))
            for key, parts in found.items()}


def exact_figures(members: Members, threshold: float, calibration: Calibration
                  ) -> dict[str, float]:
    """A group's exact audit figures: its members' own scores, flagged at ``threshold``
    (raw) as the centres flag them (a score at or above it)."""
    p, y = members.probabilities, members.labels
    n, positives = len(y), float(y.sum())
    flagged = p >= threshold
    both = 0 < positives < n
    observed = positives / n if n else math.nan
    return {
        "n": float(n),
        "observed_rate": observed,
        "tpr": float(flagged[y == 1].mean()) if positives else math.nan,
        "fpr": float(flagged[y == 0].mean()) if positives < n else math.nan,
        "auc": float(roc_auc_score(y, p)) if both else math.nan,
        "calibration_error_calibrated": abs(observed - float(calibration.apply(p).mean()))
        if n else math.nan,
    }


def band_figures(members: Members, cut: Threshold, representatives: BandProbabilities
                 ) -> dict[str, float]:
    """A group's AUC and calibrated calibration error from its exact counts in the run's
    score bands (no noise), read as the ministry reads them (``representatives``: each
    band's recalibrated probability and the share of its tied pairs credited to the
    positive, ``common.equity.reading.band_probabilities``): what the bands alone
    cost."""
    bands = np.searchsorted(group_bin_edges(cut), members.probabilities, side="right")
    y = members.labels
    pos = np.bincount(bands, weights=y, minlength=GROUP_BINS).astype(np.float64)
    neg = np.bincount(bands, weights=1.0 - y, minlength=GROUP_BINS).astype(np.float64)
    n = float(pos.sum() + neg.sum())
    observed = float(pos.sum()) / n if n else math.nan
    mean = float(((pos + neg) * representatives.calibrated).sum()) / n if n else math.nan
    return {"auc": band_auc(pos, neg, representatives.ties),
            "calibration_error_calibrated": abs(observed - mean)}


@dataclass
class RunFigures:
    """One run's released and exact figures."""

    case: str
    seed: int
    #: (attribute, value) -> metric -> (released, exact, bands or NaN, in interval or NaN)
    groups: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    calibration: dict[str, float] = field(default_factory=dict)


def analyse(case: str, run_dir: Path, centres: Sequence[CentreData]) -> RunFigures | None:
    """The figures of one run of ``case`` in ``run_dir`` (None: no final model)."""
    if not (run_dir / run_folder.MODEL).is_file():
        return None
    model = read_model(run_dir / run_folder.MODEL)
    calibration = model.calibration or Calibration()
    model.calibration = Calibration()  # the raw scores the centres count
    with torch_threads(1):
        probabilities = [np.asarray(predict_proba(model, c.x_test), dtype=np.float64)
                         for c in centres]
    p = np.concatenate(probabilities)
    y = np.concatenate([np.asarray(c.y_test, dtype=np.float64) for c in centres])
    figures = RunFigures(case, int(run_dir.name.removeprefix("seed-")))
    summary = run_folder.read_json(run_dir / run_folder.SUMMARY)
    kept = run_dir / run_folder.EVALUATION
    evaluation = run_folder.read_json(kept) if kept.is_file() else {}
    if evaluation:
        histogram = histogram_of(evaluation)
        noise = (evaluation.get("noise_sd") or [0.0])[0] ** 2
        edges = histogram.edges
        exact = recalibrated_histogram(p, y, calibration, histogram.bins, edges)
        released_groups = calibration_groups(histogram.positives + histogram.negatives)
        figures.calibration = {
            "released": calibrated_error(histogram, calibration, noise),
            "before": calibrated_error(histogram, calibration, noise,
                                       equal_bin_groups(histogram.bins)),
            "summary": _number(summary.get("calibration_error_pooled_calibrated")),
            "same_groups": _exact_in(exact, released_groups),
            "same_groups_before": _exact_in(exact, equal_bin_groups(histogram.bins)),
            "exact": exact_calibration_error(calibration.apply(p), y),
            "groups": float(len(released_groups)),
            "bins": float(histogram.bins),
        }
    equity_file = run_dir / run_folder.EQUITY
    if not equity_file.is_file() or not evaluation:
        return figures
    equity = run_folder.read_json(equity_file)
    released: Mapping[str, Mapping[str, Mapping[str, object]]] = equity.get("groups", {})
    bands = equity.get("bands_raw")
    cut = Threshold(float(equity["threshold_raw"]), tuple(bands) if bands else None)
    audit_calibration = Calibration(**equity["calibration"])
    representatives = band_probabilities(histogram_of(evaluation), cut, audit_calibration)
    for (attribute, value), members in group_members(centres, probabilities).items():
        reported = released.get(attribute, {}).get(value)
        if reported is None or not len(members.labels):
            continue
        exact_values = exact_figures(members, float(cut), audit_calibration)
        band_values = band_figures(members, cut, representatives)
        row: dict[str, list[float]] = {"n": [_number(reported.get("n")), exact_values["n"],
                                             math.nan, math.nan]}
        for metric in AUDIT_METRICS:
            value_released = _number(reported.get(metric))
            interval = reported.get(INTERVALS.get(metric, ""), None)
            inside = math.nan
            if isinstance(interval, list) and math.isfinite(exact_values[metric]):
                low, high = (_number(v) for v in interval)
                if math.isfinite(low) and math.isfinite(high):
                    inside = float(low <= exact_values[metric] <= high)
            row[metric] = [value_released, exact_values[metric],
                           band_values.get(metric, math.nan), inside]
        figures.groups[f"{attribute}={value}"] = row
    return figures


def _number(value: object) -> float:
    """A released figure (JSON's null, a NaN that was not measurable: NaN)."""
    return float(value) if isinstance(value, int | float) else math.nan


def _exact_in(histogram: ScoreHistogram, bounds: list[tuple[int, int]]) -> float:
    return calibration_error(histogram, bounds=bounds)


def _finite(values: list[float]) -> list[float]:
    return [v for v in values if math.isfinite(v)]


def _shown(value: float) -> str:
    return f"{value:.4f}" if math.isfinite(value) else "-"


def _median(values: list[float]) -> float:
    finite = _finite(values)
    return statistics.median(finite) if finite else math.nan


#: The audit table's rows: every released group, and those of at least this many exact
#: members (the issue's "groups of at least 2,000 held-out students").
LARGE_GROUP = 2_000


def audit_rows(case: str, runs: list[RunFigures]) -> list[str]:
    """The audit table's rows per metric, for every released group and for the groups of
    at least :data:`LARGE_GROUP` students: over the groups of every seed, the median and
    largest |released - exact|, the median |bands - exact|, the share of exact values
    inside the released interval."""
    rows = []
    for least, label in ((0, "all"), (LARGE_GROUP, f">= {LARGE_GROUP:,}")):
        for metric in AUDIT_METRICS:
            cells = [g[metric] for r in runs for g in r.groups.values() if g["n"][1] >= least]
            if not cells:
                continue
            errors = [abs(c[0] - c[1]) for c in cells]
            bands = [abs(c[2] - c[1]) for c in cells]
            inside = _finite([c[3] for c in cells])
            coverage = f"{sum(inside) / len(inside):.2f}" if inside else "-"
            rows.append(f"| {case} | {label} | {metric} | {len(runs)} ({len(cells)}) | "
                        f"{_shown(_median(errors))} | "
                        f"{_shown(max(_finite(errors), default=math.nan))} | "
                        f"{_shown(_median(bands))} | {coverage} |")
    return rows


AUDIT_HEADER = ("| case | groups | figure | seeds (groups x seeds) | median abs. error | "
                "max abs. | bands alone (median abs.) | exact inside the 95 % interval |\n"
                "|---|---|---|---|---|---|---|---|")


def calibration_row(case: str, runs: list[RunFigures]) -> str:
    """The pooled calibration error's row: per seed released / before / exact."""
    kept = [r for r in runs if r.calibration]
    per_seed = ", ".join(f"{r.calibration['released']:.3f} / {r.calibration['before']:.3f} / "
                         f"{r.calibration['exact']:.3f}" for r in kept)
    after = [abs(r.calibration["released"] - r.calibration["exact"]) for r in kept]
    before = [abs(r.calibration["before"] - r.calibration["exact"]) for r in kept]
    noise = [abs(r.calibration["released"] - r.calibration["same_groups"]) for r in kept]
    groups = [abs(r.calibration["same_groups"] - r.calibration["exact"]) for r in kept]
    return (f"| {case} | {len(kept)} | {per_seed} | {_median(after):.4f} "
            f"({max(_finite(after), default=math.nan):.4f}) | {_median(before):.4f} "
            f"({max(_finite(before), default=math.nan):.4f}) | {_median(groups):.4f} | "
            f"{_median(noise):.4f} |")


CALIBRATION_HEADER = (
    "| case | seeds | released / before / exact, per seed | released - exact: median abs. "
    "(max) | before - exact: median abs. (max) | groups' share (median abs.) | "
    "noise's share (median abs.) |\n|---|---|---|---|---|---|---|")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--cases", default=",".join(bench_release.CASES))
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--first-seed", type=int, default=1)
    parser.add_argument("--set", action="append", default=[], dest="overrides")
    parser.add_argument("--out", type=Path, default=Path(".work/bench-release"))
    parser.add_argument("--run", action="store_true",
                        help="run the seeds first (simulations.bench_release)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    prepare_environment()
    names = [n.strip() for n in args.cases.split(",") if n.strip()]
    unknown = [n for n in names if n not in bench_release.CASES]
    if unknown:
        parser.error(f"unknown cases {unknown}; known: {', '.join(bench_release.CASES)}")
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    results: dict[str, list[RunFigures]] = {}
    for name in names:
        folder = (args.out / name).resolve()
        case = bench_release.CASES[name]
        if args.run:
            scenario, files = bench_release.prepare_case(case, folder, args.overrides)
            for seed in seeds:
                bench_release.run_seed(scenario, files, folder, seed)
        data_dir = folder / "data"
        if not data_dir.is_dir():
            continue
        scenario = load_scenario(case.scenario, [*case.overrides, "baselines.enabled=false",
                                                 *args.overrides])
        files = sorted(p for p in data_dir.iterdir() if p.suffix in (".csv", ".parquet"))
        mapping = data_dir / "mapping.toml"
        centres = pooled_data(files, scenario.run, mapping if mapping.is_file() else None)
        results[name] = []
        for seed in seeds:
            figures = analyse(name, folder / f"seed-{seed}", centres)
            if figures is None:
                continue
            results[name].append(figures)
            c = figures.calibration
            print(f"{name} seed {seed}: {len(figures.groups)} groups; calibration error "
                  f"released {c.get('released', math.nan):.4f} (before "
                  f"{c.get('before', math.nan):.4f}, summary {c.get('summary', math.nan):.4f}) "
                  f"same groups {c.get('same_groups', math.nan):.4f} exact "
                  f"{c.get('exact', math.nan):.4f}", flush=True)
    print(AUDIT_HEADER)
    print("\n".join(row for name, runs in results.items() for row in audit_rows(name, runs)))
    print()
    print(CALIBRATION_HEADER)
    print("\n".join(calibration_row(name, runs) for name, runs in results.items()))
    if args.json is not None:
        args.json.write_text(json.dumps(
            {name: [r.__dict__ for r in runs] for name, runs in results.items()}, indent=1),
            encoding="utf-8")


if __name__ == "__main__":
    main()
