"""``perseverance-sim years``: one federated training a school year, for several years,
with centres whose privacy ledgers outlive each run.

Each year's extract (``simulations.school_years``) is written to ``OUT/year-N/data`` and
trained on by a full federation (the same ServerApp and ClientApp as ``run``) whose run
folder is ``OUT/year-N``; every run gives its centres the same state root,
``OUT/state`` (``RunConfig.state_root``), so a centre's ledger, records key, run plans
and audit log carry over from year to year, as they would at a real centre. Each run
books under its own name (``<scenario>-year-N-...``).

``OUT/years.json`` is the table, one object a year (``YEAR_KEYS``), rewritten after every
year; each year's run folder gets the table so far too, so its report
(``report.html``) shows the years plot. The centralised and local-only baselines of
``run`` are not computed here: the point is the years, not one run's references.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from sklearn.metrics import roc_auc_score

from client.ingest.centre_data import usable_for_learning
from client.privacy.student_budget import budget_spread, run_cohorts
from client.site_policy import SitePolicy
from common.config import ConfigError
from common.encoding import encode
from common.i18n.catalogue import N_
from common.i18n.waits import Waits, no_waits
from common.model import RiskModel, predict_proba, read_model
from common.schema import STUDENT_ID
from common.split import held_out_mask
from common.workdirs import prepare_environment
from server import run_folder
from server.publication.model_card import write_model_card
from server.summary import Summary
from simulations.centre_states import records_retired
from simulations.inprocess import scores
from simulations.network import MANIFEST, write_network
from simulations.reference import pooled_data
from simulations.report import write_report
from simulations.runner import (
    SimulationError,
    backend_config,
    run_flower_simulation,
    write_centre_policy,
)
from simulations.scenario import Scenario
from simulations.school_years import MAX_YEARS, YearExtract, network_years
from simulations.terminal import SIMULATION_LOG, ThirdPartyOutput

if TYPE_CHECKING:
    from simulations.engine import SimulationEngine

YEARS_FILE = "years.json"
STATE = "state"
#: The keys of each year's object in ``years.json``, in order (the first ones are the
#: issue's: tests and the report rely on them).
YEAR_KEYS = (
    "year", "labelled", "students_trained", "retired", "epsilon_student_max",
    "epsilon_student_median", "auc_pooled", "auc_previous_model",
    "school_year", "run_name", "students_current", "labelled_training_side",
    "labelled_newest", "retired_evaluation", "students_known", "auc_pooled_exact",
    "auc_newest", "newest_held_out", "epsilon_centre_max", "wall_seconds",
)


def year_dir(out: Path, year: int) -> Path:
    """The run folder of year ``year``."""
    return out / f"year-{year}"


def check_years_scenario(scenario: Scenario, years: int) -> None:
    """Refuse, in one sentence, what ``years`` cannot run (``ConfigError``)."""
    if not 1 <= years <= MAX_YEARS:
        raise ConfigError(N_("--years must be between 1 and %(most)s, got %(years)s.",
                             most=MAX_YEARS, years=years))
    if scenario.data.source:
        raise ConfigError(N_("years needs a scenario with a synthetic [network], not "
                             "data.source."))
    if scenario.attack.active:
        raise ConfigError(N_("years runs without an [attack]; drop it (attack.kind=none)."))
    if scenario.run.resume:
        raise ConfigError(N_("years cannot resume a run; drop resume."))


def check_out(out: Path) -> None:
    """Refuse a folder that holds an earlier years simulation (``ConfigError``): its
    centres' ledgers would carry that simulation's spending into this one."""
    if (out / STATE).exists() or (out / YEARS_FILE).exists():
        raise ConfigError(N_("The folder %(out)s already holds a years simulation; give "
                             "another --out.", out=out))


def run_years(scenario: Scenario, years: int, out: Path, *, quiet_flower: bool = True,
              progress: Callable[[dict[str, Any]], None] | None = None,
              waits: Waits = no_waits) -> list[dict[str, Any]]:
    """Run ``years`` yearly federations of ``scenario`` into ``out`` (a folder that holds
    no earlier years simulation); returns the rows of ``years.json`` (also written).
    ``progress`` gets each year's row when it is done; ``waits`` says what each long
    step waits for. The libraries' own logs go to ``out/logs/simulation.log`` (and to
    the terminal too unless ``quiet_flower``)."""
    check_years_scenario(scenario, years)
    out = out.resolve()
    check_out(out)
    prepare_environment()
    out.mkdir(parents=True, exist_ok=True)
    spec = scenario.network
    rows: list[dict[str, Any]] = []
    previous: RiskModel | None = None
    extracts = network_years(  # one year at a time, as the loop asks
        years=years, centres=spec.centres, students=spec.students, seed=spec.seed,
        include_indigenous_boards=spec.include_indigenous_boards,
        consent_refusal_rate=spec.consent_refusal_rate)
    from simulations.engine import SimulationEngine  # imports Ray

    output = ThirdPartyOutput(out / SIMULATION_LOG, verbose=not quiet_flower)
    with output, SimulationEngine(backend_config(scenario)) as engine:  # once for all years
        engine.actor_output = output.actor_output
        with waits(N_("Starting the simulation engine (Ray and its actors, which load "
                      "torch, Opacus and Flower)")):
            engine.start()
        for year in range(1, years + 1):
            with waits(N_("Year %(year)s of %(years)s: its data, federated training and "
                          "evaluation", year=year, years=years)):
                extract = next(extracts)
                row, previous = _year(scenario, extract, out, rows, previous, quiet_flower,
                                      engine)
            rows.append(row)
            if progress is not None:
                progress(row)
    return rows


def _year(scenario: Scenario, extract: YearExtract, out: Path, done: list[dict[str, Any]],
          previous: RiskModel | None, quiet_flower: bool,
          engine: SimulationEngine) -> tuple[dict[str, Any], RiskModel]:
    """One year after the years ``done``: its federation, then years.json, its model card
    and report so far."""
    started = time.monotonic()
    folder = year_dir(out, extract.year)
    row = _run_year(scenario, extract, folder, out / STATE, previous, quiet_flower, engine)
    model = read_model(folder / run_folder.MODEL)
    row["wall_seconds"] = round(time.monotonic() - started, 2)
    run_folder.update_summary(folder, Summary(wall_seconds=row["wall_seconds"]))
    table = {"scenario": scenario.name, "epsilon_cap": SitePolicy().epsilon_cap,
             "delta": scenario.centre_policy.delta, "years": [*done, row]}
    run_folder.write_json(out / YEARS_FILE, table)
    run_folder.write_json(folder / YEARS_FILE, table)  # the report's years plot
    write_model_card(folder)
    write_report(folder)
    return row, model


def _run_year(scenario: Scenario, extract: YearExtract, folder: Path, state_root: Path,
              previous: RiskModel | None, quiet_flower: bool,
              engine: SimulationEngine) -> dict[str, Any]:
    """One year's federation in ``folder``; returns its row (without the wall time)."""
    folder.mkdir(parents=True, exist_ok=True)
    data_dir = folder / "data"
    files = write_network(extract.network, data_dir)
    write_centre_policy(scenario.centre_policy, data_dir)
    config = replace(
        scenario.run, scenario=f"{scenario.name}-year-{extract.year}", run_dir=str(folder),
        data_dir=str(data_dir), state_root=str(state_root),
        evaluation=replace(scenario.run.evaluation, centre_register=str(data_dir / MANIFEST)))
    run_flower_simulation(scenario, config, len(files), quiet_flower, engine=engine,
                          own_logging=False)
    summary = run_folder.read_summary(folder)
    if (summary.rounds_completed or 0) < config.rounds:
        reason = (summary.stopped or "").rstrip(".")
        raise SimulationError(N_(
            "The federation of year %(year)s stopped after %(done)s of %(rounds)s rounds "
            "(%(reason)s); see %(folder)s.", year=extract.year,
            done=summary.rounds_completed or 0, rounds=config.rounds,
            reason=reason or "-", folder=folder))
    model = read_model(folder / run_folder.MODEL)
    probabilities, labels = scores(model, pooled_data(files, config))
    test_fraction = config.evaluation.test_fraction
    counts = _counts(extract, test_fraction)
    newest_x, newest_y = _newest_held_out(extract, test_fraction)
    run_name = summary.run_name or ""
    # Partition i is the i-th data file in name order (client.federation.rounds.state_dir).
    states = [state_root / f"centre-{i}" for i in range(len(files))]
    row: dict[str, Any] = {
        "year": extract.year,
        "school_year": extract.school_year,
        "run_name": run_name,
        **counts,
        **student_figures(states, run_name, scenario.centre_policy.delta),
        "auc_pooled": summary.auc_pooled,
        "auc_pooled_exact": _auc(labels, probabilities),
        "auc_previous_model": (_auc(newest_y, predict_proba(previous, newest_x))
                               if previous is not None else None),
        "auc_newest": _auc(newest_y, predict_proba(model, newest_x)),
        "newest_held_out": len(newest_y),
        "epsilon_centre_max": summary.epsilon_max,
    }
    # The year's run folder gets what ``run`` adds to its summary (model card, report).
    run_folder.update_summary(folder, Summary(
        auc_pooled_exact=row["auc_pooled_exact"],
        records_retired=records_retired(config, files, run_name) if config.privacy.dp else {},
        num_students=sum(len(frame) for frame in extract.frames.values()),
        num_centres_total=len(files), scenario_file=scenario.source_file,
        overrides=scenario.overrides, school_year=extract.school_year))
    return {key: row.get(key) for key in YEAR_KEYS}


def student_figures(states: list[Path], run_name: str, delta: float) -> dict[str, Any]:
    """What the centres' ledgers (``states``) say of their students after ``run_name``:
    records trained on and retired for budget (summed over centres), the students they
    know and the largest and median lifetime epsilon of one student, at ``delta``."""
    epsilons, trained, retired, retired_evaluation, known = [], 0, 0, 0, 0
    for state in states:
        if not state.is_dir():
            continue
        spread = budget_spread(state, delta)
        epsilons.append(np.asarray(spread.epsilons, dtype=np.float64))
        known += int(spread.students)
        for cohort in run_cohorts(state, run_name):
            if cohort.kind == "train":
                trained += int(cohort.records)
                retired += int(cohort.retired)
            elif cohort.kind == "evaluate":
                retired_evaluation += int(cohort.retired)
    pooled = np.concatenate(epsilons) if epsilons else np.zeros(0)
    return {"students_trained": trained, "retired": retired,
            "retired_evaluation": retired_evaluation, "students_known": known,
            "epsilon_student_max": float(pooled.max()) if len(pooled) else None,
            "epsilon_student_median": float(np.median(pooled)) if len(pooled) else None}


def _counts(extract: YearExtract, test_fraction: float) -> dict[str, int]:
    """Records of the year's extracts: current students, labelled (usable: consent and
    label), labelled on the training side, and the newest of those."""
    current = labelled = training = newest = 0
    for centre, frame in extract.frames.items():
        usable = usable_for_learning(frame)
        train_side = usable.loc[~held_out_mask(usable[STUDENT_ID], test_fraction)]
        current += int(frame["left_without_diploma"].isna().sum())
        labelled += len(usable)
        training += len(train_side)
        newest += int(train_side[STUDENT_ID].isin(extract.newest[centre]).sum())
    return {"students_current": current, "labelled": labelled,
            "labelled_training_side": training, "labelled_newest": newest}


def _newest_held_out(extract: YearExtract, test_fraction: float) -> tuple[
        np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """Encoded held-out records labelled for the first time this year, and their labels:
    no model has trained on them, last year's nor this year's."""
    xs, ys = [], []
    for centre, frame in extract.frames.items():
        usable = usable_for_learning(frame)
        keep = (held_out_mask(usable[STUDENT_ID], test_fraction)
                & usable[STUDENT_ID].isin(extract.newest[centre]).to_numpy())
        rows = usable.loc[keep]
        xs.append(encode(rows))
        ys.append(rows["left_without_diploma"].astype(bool).to_numpy(dtype=np.float32))
    return np.concatenate(xs), np.concatenate(ys)


def _auc(labels: np.ndarray[Any, Any], probabilities: np.ndarray[Any, Any]) -> float | None:
    """ROC AUC, or None when the records hold a single label."""
    if len(np.unique(labels)) < 2:
        return None
    value = float(roc_auc_score(labels, probabilities))
    return value if math.isfinite(value) else None
