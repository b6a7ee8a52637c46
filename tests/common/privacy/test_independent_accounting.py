"""A ledger's figures recomputed with an accountant the project does not book with:
Google's dp-accounting, run in a virtual environment of its own (``make dp-accounting``,
``.work/dpacc``, pinned in ``tools/dpacc/requirements.txt``: dp-accounting pins attrs
below 24, which the project's environment cannot hold) through ``tools/dpacc/recompute.py``
(JSON in, JSON out).

Two real runs (the ServerApp and ClientApp over ``simulations.direct_grid``) share their
centres' ledgers, as two school years do. From each centre's ledger and plans,
dp-accounting's RDP accountant must give the figures the centre booked and reported, to
1e-4: each run's training and evaluation epsilons, the ministry's ``summary.json``, the
calibration of the plans (within the target, and not with 0.5 % less noise), and each
student's lifetime figure across the two runs (the individual filter's: the fixed orders
at delta / their number). Its PLD accountant must give less (the slack docs/PRIVACY.md,
"RDP and PLD", measures).

``make test`` sets ``$PERSEVERANCE_DP_ACCOUNTING`` to that environment's Python: the test
then fails, never skips, when it is missing. Outside ``make`` it is skipped when the
environment was not made."""

from __future__ import annotations

import json
import logging
import os
import subprocess
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from flwr.supercore.logger import FLOWER_LOGGER

from client.federation.app import build_client_app
from client.privacy.ledger import PrivacyLedger, Release
from client.privacy.run_plan import (
    RunPlan,
    load_plan,
    plan_for,
    run_history,
    size_release,
)
from client.site_policy import SitePolicy
from common.config import RunConfig
from common.privacy.accounting import (
    FILTER_ORDERS,
    PLAN_TOLERANCE,
    RDP_ORDERS,
    calibrate_evaluation_noise,
    composed_epsilon,
)
from server.federation.run import run_federation
from simulations.direct_grid import DirectGrid
from tests.server.conftest import small_network

pytestmark = pytest.mark.federation  # an in-process federation: make test, not test-fast

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "tools" / "dpacc" / "recompute.py"
#: Set by ``make test`` (the Makefile's ``pytest`` target): the environment must be there.
REQUIRED_ENV = "PERSEVERANCE_DP_ACCOUNTING"
DELTA = 1e-6
CENTRES = 3
FLOWER_LOGGER.setLevel(logging.WARNING)
#: One worker runs the module (``make pytest``'s ``--dist loadgroup``): the two runs are
#: a module fixture, made once, not once per worker.
pytestmark = pytest.mark.xdist_group("independent-accounting")

Mechanism = tuple[float, float, int]
#: The config of the two runs, their centres' state root, each run's summary.json.
Years = tuple[RunConfig, Path, list[dict[str, Any]]]
#: dp-accounting's answer for each history (:func:`_key`).
Figures = dict[str, dict[str, float]]


def _python() -> Path:
    required = os.environ.get(REQUIRED_ENV)
    python = Path(required) if required else ROOT / ".work" / "dpacc" / "bin" / "python"
    if not python.is_file():
        if required:
            pytest.fail(f"${REQUIRED_ENV} names {python}, which does not exist: "
                        "`make dp-accounting` makes it")
        pytest.skip("dp-accounting's environment is not made (`make dp-accounting`)")
    return python


def _recompute(cases: list[tuple[list[Mechanism], float]]) -> list[dict[str, float]]:
    """dp-accounting's figures for each (history, delta): ``rdp``, ``pld``, ``filter``."""
    asked = {"rdp_orders": list(RDP_ORDERS), "filter_orders": list(FILTER_ORDERS),
             "cases": [{"history": [list(m) for m in history], "delta": delta}
                       for history, delta in cases]}
    done = subprocess.run([str(_python()), str(SCRIPT)], input=json.dumps(asked), text=True,
                          capture_output=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    answers: list[dict[str, float]] = json.loads(done.stdout)
    assert len(answers) == len(cases)
    return answers


def _config(network: Path, run_dir: Path, state_root: Path) -> RunConfig:
    return RunConfig.from_flat({"scenario": "independent-accounting", "rounds": 2,
                                "local_epochs": 1, "min_centres": 2, "training.hidden": "16",
                                "run_dir": str(run_dir), "data_dir": str(network),
                                "state_root": str(state_root), "min_centres_wait": 0.3,
                                "evaluation.progress_every": 1, "privacy.delta": DELTA})


@pytest.fixture(scope="module")
def two_years(tmp_path_factory: pytest.TempPathFactory) -> Years:
    """Two runs whose centres keep one ledger each (``state_root``): the config, the
    state root and each run's ``summary.json``."""
    _python()  # fails or skips before the runs, not after
    root = tmp_path_factory.mktemp("independent-accounting")
    network = small_network(root / "network", CENTRES, 1500, 13)
    summaries = []
    config = _config(network, root / "run-0", root / "state")
    for year in range(2):
        config = _config(network, root / f"run-{year}", root / "state")
        run_federation(DirectGrid(build_client_app(), CENTRES, dict(config.to_flat())), config)
        summaries.append(json.loads((root / f"run-{year}" / "summary.json").read_text()))
    return config, root / "state", summaries


def _ledgers(state_root: Path) -> list[tuple[Path, PrivacyLedger]]:
    found = [(state, PrivacyLedger(state)) for state in sorted(state_root.glob("centre-*"))]
    assert len(found) == CENTRES
    return found


def _key(history: list[Mechanism], delta: float) -> str:
    return json.dumps([[list(m) for m in history], delta])


def _run_cases(config: RunConfig, state_root: Path, summaries: list[dict[str, Any]]
               ) -> list[tuple[list[Mechanism], float]]:
    """Every history the tests below ask dp-accounting about."""
    cases: list[tuple[list[Mechanism], float]] = []
    for state, ledger in _ledgers(state_root):
        for summary in summaries:
            for kind in ("train", "evaluate"):
                cases.append((run_history(ledger, summary["run_name"], kind), DELTA))
            plan = load_plan(state, summary["run_name"])
            assert plan is not None
            cases += [(_whole(plan, config.rounds), DELTA),
                      (_whole(plan, config.rounds, PLAN_TOLERANCE), DELTA)]
        cases += [(history, DELTA) for history in _student_histories(ledger)[0].values()]
    return cases


@pytest.fixture(scope="module")
def figures(two_years: Years) -> Figures:
    """dp-accounting's figures for every history of the two runs, in one call."""
    cases = _run_cases(*two_years)
    return {_key(*case): answer for case, answer in zip(cases, _recompute(cases), strict=True)}


def _whole(plan: RunPlan, rounds: int, less_noise: float = 1.0) -> list[Mechanism]:
    """The plan's whole training: the size release and every round's steps
    (``less_noise``: with the noise multiplier divided by it)."""
    z, q, steps = plan.round_mechanism()
    return [size_release(), *[(z / less_noise, q, steps)] * rounds]


def test_each_runs_booked_and_reported_figures_are_dp_accountings(
        two_years: Years, figures: Figures) -> None:
    config, state_root, summaries = two_years
    for summary in summaries:
        found: dict[str, list[float]] = {"train": [], "evaluate": []}
        for _, ledger in _ledgers(state_root):
            for kind in ("train", "evaluate"):
                history = run_history(ledger, summary["run_name"], kind)
                booked, answer = composed_epsilon(history, DELTA), figures[_key(history, DELTA)]
                assert answer["rdp"] == pytest.approx(booked, abs=1e-4)
                assert booked - 0.5 < answer["pld"] < booked - 0.1  # about 0.2 to 0.3 below
                found[kind].append(answer["rdp"])
        assert summary["accountant"] == "rdp" and summary["delta"] == DELTA
        assert summary["epsilon_train_max"] == pytest.approx(max(found["train"]), abs=1e-4)
        assert summary["epsilon_evaluation"] == pytest.approx(max(found["evaluate"]), abs=1e-4)
        assert max(found["evaluate"]) == pytest.approx(config.privacy.epsilon, abs=2e-3)


def test_each_centres_plan_is_calibrated_as_dp_accounting_prices_it(
        two_years: Years, figures: Figures) -> None:
    """The plan's whole training (the size release and every round's steps) is within
    the target, and the same with 0.5 % less noise (the calibration's precision) is not;
    what the ledger booked is that plan."""
    config, state_root, summaries = two_years
    target = config.privacy.epsilon
    for state, ledger in _ledgers(state_root):
        for summary in summaries:
            plan = load_plan(state, summary["run_name"])
            assert plan is not None and plan.delta == DELTA
            whole = _whole(plan, config.rounds)
            assert run_history(ledger, summary["run_name"], "train") == whole
            planned = figures[_key(whole, DELTA)]["rdp"]
            less_noise = figures[_key(_whole(plan, config.rounds, PLAN_TOLERANCE), DELTA)]["rdp"]
            assert planned <= target * (1 + 1e-3) < less_noise


def _student_histories(ledger: PrivacyLedger) -> tuple[dict[tuple[int, ...], list[Mechanism]],
                                                       list[Release]]:
    """Each distinct lifetime history over the ledger's students, worked out here from
    the rows and cohorts: a row counts for the members of the cohort of its run and kind
    with the largest first round at or before its round."""
    cohorts, releases = ledger.cohorts(), ledger.releases()
    covers: dict[int, int] = {}
    for index, row in enumerate(releases):
        over = [c for c in cohorts if (c.run_id, c.kind) == (row.run_id, row.kind)
                and c.first_round <= row.server_round]
        assert over, "every row of these runs is over a booked cohort"
        covers[index] = max(over, key=lambda c: c.first_round).id
    memberships: dict[bytes, list[int]] = defaultdict(list)
    for cohort in cohorts:
        for student in cohort.members:
            memberships[student].append(cohort.id)
    histories = {}
    for ids in {tuple(sorted(ids)) for ids in memberships.values()}:
        histories[ids] = [(r.noise_multiplier, r.sample_rate, r.steps)
                          for i, r in enumerate(releases) if covers[i] in ids]
    return histories, releases


def test_each_students_lifetime_across_the_two_runs_is_dp_accountings(
        two_years: Years, figures: Figures) -> None:
    """The figure the individual filter checks against the cap: the largest over the
    students, as the ledger books it after its last row and gives it (``epsilon_spent``)."""
    _, state_root, summaries = two_years
    for _, ledger in _ledgers(state_root):
        histories, releases = _student_histories(ledger)
        assert {r.run_id for r in releases} == {s["run_name"] for s in summaries}
        assert len(histories) >= 2  # training students and held-out ones
        answers = [figures[_key(history, DELTA)] for history in histories.values()]

        largest = max(a["filter"] for a in answers)
        assert ledger.epsilon_spent(DELTA) == pytest.approx(largest, abs=1e-4)
        assert releases[-1].epsilon_after == pytest.approx(largest, abs=1e-4)
        assert all(a["filter"] > a["rdp"] > a["pld"] for a in answers)
        assert largest > 4  # two runs of 3 each: composed across the runs


def test_the_demos_training_at_3000_records_is_recomputed(tmp_path: Path) -> None:
    """The figures of docs/measurements/accounting.md: the demo's training at a centre of
    3,000 released records (6 rounds, epsilon 3), booked as a centre books it."""
    config = RunConfig.from_flat({"rounds": 6, "privacy.epsilon": 3.0, "privacy.delta": DELTA,
                                  "evaluation.progress_every": 2})
    plan = plan_for(3000, config, SitePolicy().privacy)
    ledger = PrivacyLedger(tmp_path / "state")
    ledger.book(run_id="demo", server_round=0, kind="train", mechanisms=[size_release()],
                delta=DELTA, cap=10.0)
    for server_round in range(1, config.rounds + 1):
        ledger.book(run_id="demo", server_round=server_round, kind="train",
                    mechanisms=[plan.round_mechanism()], delta=DELTA, cap=10.0)
    training = run_history(ledger, "demo", "train")
    evaluation = calibrate_evaluation_noise(3.0, DELTA, config.rounds, 2).history(config.rounds)

    train, evaluate = _recompute([(training, DELTA), (evaluation, DELTA)])

    assert composed_epsilon(training, DELTA) == pytest.approx(2.9953, abs=1e-3)
    assert train["rdp"] == pytest.approx(composed_epsilon(training, DELTA), abs=1e-4)
    assert train["pld"] == pytest.approx(2.7512, abs=5e-3)
    assert evaluate["rdp"] == pytest.approx(3.0, abs=2e-3)
    assert evaluate["pld"] == pytest.approx(2.7986, abs=5e-3)
