"""Privacy-utility sweep: the same scenario at several epsilons (and without DP), the
pooled AUC of each against the centralised reference, as a table and a figure."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import matplotlib

from common.i18n import catalogue as i18n

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from common.config import ConfigError
from common.i18n.catalogue import N_
from server.run_folder import SUMMARY, read_json, write_json
from simulations.runner import run_scenario
from simulations.scenario import load_scenario

NO_DP = "none"


@dataclass(frozen=True)
class SweepPoint:
    """One run of the sweep: its epsilon target (None: no DP) and its figures."""

    epsilon: float | None
    auc_pooled: float
    auc_pooled_exact: float
    auc_centralized: float
    epsilon_max: float | None
    run_dir: str


def parse_epsilons(text: str) -> list[float | None]:
    """``0.5,1,2,none`` -> [0.5, 1.0, 2.0, None]."""
    values: list[float | None] = []
    for part in text.split(","):
        part = part.strip().lower()
        if part == NO_DP:
            values.append(None)
            continue
        try:
            value = float(part)
        except ValueError:
            raise ConfigError(N_("'%(part)s' is neither an epsilon nor 'none'.",
                                 part=part)) from None
        if not (value > 0 and math.isfinite(value)):
            raise ConfigError(N_("Epsilon must be a positive number, got %(part)s.", part=part))
        values.append(value)
    if not values:
        raise ConfigError(N_("Give at least one epsilon, e.g. 0.5,1,2,4,8,none."))
    return values


def run_sweep(
    scenario_name: str, epsilons: list[float | None], overrides: list[str], out: Path
) -> list[SweepPoint]:
    """Run the scenario once per epsilon (baselines off) and write the sweep folder.

    The runs share one start of the simulation engine (Ray and its actors, kept from
    one run to the next), one copy of the centres' data (``out/data``, generated once)
    and the centralised reference, which DP does not touch. Each run keeps its own
    folder, privacy ledgers and audit logs.
    """
    from simulations.engine import SimulationEngine
    from simulations.runner import SharedInputs, backend_config

    out.mkdir(parents=True, exist_ok=True)
    points = []
    # A sweep is research: its centres accept every budget it tries, and say so.
    largest = max((e for e in epsilons if e is not None), default=None)
    floor = ["centre_policy.require_dp=false"] if None in epsilons else []
    if largest is not None:
        floor.append(f"centre_policy.max_epsilon_per_run={largest:g}")
    scenarios = []
    for epsilon in epsilons:
        privacy = ["privacy.dp=false"] if epsilon is None else [
            "privacy.dp=true", f"privacy.epsilon={epsilon:g}"]
        privacy += floor
        scenarios.append(load_scenario(scenario_name,
                                       [*overrides, "baselines.enabled=false", *privacy]))
    # Same network, floor and backend in every run: only the privacy keys differ.
    shared = SharedInputs.prepare(scenarios[0], out / "data")
    with SimulationEngine(backend_config(scenarios[0])) as engine:
        for epsilon, scenario in zip(epsilons, scenarios, strict=True):
            label = "no-dp" if epsilon is None else f"eps-{epsilon:g}"
            run_dir = run_scenario(scenario, out / label, engine=engine, shared=shared)
            summary = read_json(run_dir / SUMMARY)
            points.append(SweepPoint(epsilon, float(summary["auc_pooled"]),
                                     float(summary["auc_pooled_exact"]),
                                     float(summary["auc_centralized"]),
                                     summary.get("epsilon_max"), str(run_dir)))
    write_outputs(scenario_name, points, out,
                  engine={"starts": engine.starts,
                          "start_seconds": round(engine.start_seconds, 2)})
    return points


def write_outputs(scenario_name: str, points: list[SweepPoint], out: Path,
                  engine: dict[str, object] | None = None) -> None:
    """``sweep.json`` (the points; ``engine``: how often Ray and its actors were
    started, and in how many seconds), ``sweep.md`` and ``sweep.png``."""
    document: dict[str, object] = {"scenario": scenario_name,
                                   "points": [p.__dict__ for p in points]}
    if engine is not None:
        document["engine"] = engine
    write_json(out / "sweep.json", document)
    (out / "sweep.md").write_text(table(points), encoding="utf-8")
    plot(scenario_name, points, out / "sweep.png")


def table(points: list[SweepPoint], lang: str = "en") -> str:
    """The sweep's Markdown table in ``lang`` (the catalogue's words and notation)."""
    _ = i18n.gettext(lang)

    def num(value: float, digits: int) -> str:
        return i18n.number(value, digits, lang)

    rows = [f"| {_('epsilon target')} | {_('epsilon spent (max)')} | "
            f"{_('pooled AUC (released)')} | {_('pooled AUC (exact)')} | "
            f"{_('centralised, no DP')} |", "|---|---|---|---|---|"]
    for p in points:
        target = _("no DP") if p.epsilon is None else i18n.compact(p.epsilon, lang)
        spent = "-" if p.epsilon_max is None else num(p.epsilon_max, 2)
        rows.append(f"| {target} | {spent} | {num(p.auc_pooled, 3)} | "
                    f"{num(p.auc_pooled_exact, 3)} | {num(p.auc_centralized, 3)} |")
    return "\n".join(rows) + "\n"


def plot(scenario_name: str, points: list[SweepPoint], path: Path) -> None:
    private = sorted((p for p in points if p.epsilon is not None), key=lambda p: p.epsilon or 0)
    figure, axes = plt.subplots(figsize=(6, 4), dpi=120)
    if private:
        xs = [float(p.epsilon or 0.0) for p in private]
        axes.plot(xs, [p.auc_pooled_exact for p in private], "o-", label="federated with DP")
        axes.plot(xs, [p.auc_pooled for p in private], "x--", alpha=0.7,
                  label="same, as released (noisy evaluation)")
        axes.set_xscale("log")
        axes.set_xticks(xs, [f"{x:g}" for x in xs])
        axes.minorticks_off()
    reference = points[0].auc_centralized
    axes.axhline(reference, color="black", linestyle=":", label="centralised, no DP")
    for p in points:
        if p.epsilon is None:
            axes.axhline(p.auc_pooled_exact, color="grey", linestyle="--",
                         label="federated, no DP")
    axes.set_xlabel("epsilon per centre for the run (delta 1e-6)")
    axes.set_ylabel("pooled held-out ROC AUC")
    axes.set_title(f"Privacy and utility: {scenario_name}")
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def load_points(out: Path) -> list[SweepPoint]:
    raw = json.loads((out / "sweep.json").read_text(encoding="utf-8"))
    return [SweepPoint(**p) for p in raw["points"]]
