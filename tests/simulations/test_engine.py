"""One start of the simulation engine for several runs (``simulations.engine``): the
actors outlive a run, each centre's data is read once per actor and then served from
its cache across rounds and runs, and each run keeps its own privacy bookkeeping."""

from __future__ import annotations

import json
import os
import time
from dataclasses import replace
from pathlib import Path

import pytest

from simulations.engine import SimulationEngine
from simulations.runner import backend_config, prepare_data, run_flower_simulation
from simulations.scenario import load_scenario
from tests.processes import pids_mentioning


@pytest.mark.slow
def test_two_runs_share_one_engine_and_its_actors_caches(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    ray_tmp = Path(f"/tmp/prs-engine-{os.getpid()}")
    monkeypatch.setenv("RAY_TMPDIR", str(ray_tmp))
    monkeypatch.setenv("FLWR_HOME", str(tmp_path / "flwr"))
    # Without evaluation noise: 900 students are too few for a noisy pooled AUC.
    # Seeded noise: with 900 students the two small centres (about 70 training records)
    # would be refused on their noisy released size (std 50, policy min_records 50) in
    # about half of the runs with fresh noise, a draw this test is not about.
    scenario = load_scenario("tiny", ["network.students=900", "rounds=2", "local_epochs=1",
                                      "privacy.evaluation_noise=false",
                                      "centre_policy.allow_unnoised_evaluation=true",
                                      "privacy.reproducible_noise=true",
                                      "centre_policy.allow_replayable_noise=true"])
    files, _ = prepare_data(scenario, tmp_path / "data")
    engine = SimulationEngine(backend_config(scenario))
    try:
        with engine:
            seen = {"hits": 0, "misses": 0}
            for name in ("first", "second"):
                config = replace(scenario.run, run_dir=str(tmp_path / name),
                                 data_dir=str(tmp_path / "data"))
                run_flower_simulation(scenario, config, len(files), engine=engine)
                caches = engine.data_cache_info()
                assert len(caches) == 2  # two actors on this 2-core machine
                total = {k: sum(c[k] for c in caches) for k in ("hits", "misses")}
                # 3 centres x 2 rounds x (train + evaluate) = 12 messages per run: each
                # actor reads a centre at most once over both runs, then serves it from
                # memory (the counts add up over the runs). Ray may hand the second run's
                # centre to the other actor: that actor's first read of it is a miss.
                assert 0 < total["misses"] <= 3 * 2
                assert all(c["misses"] <= 3 for c in caches)
                assert total["hits"] + total["misses"] - sum(seen.values()) >= 12
                seen = total
                # The actors planned each centre's noise once, in the folder they share:
                # at most one plan a centre in a run (two centres may share one), and a
                # second run adds a plan only for a centre whose noisy released size, drawn
                # again, calls for another batch size.
                assert engine.noise_plans is not None
                planned = len(list(engine.noise_plans.glob("training-*.json")))
                assert 0 < planned <= (3 if name == "first" else 6)
            plans = engine.noise_plans
            assert engine.starts == 1 and engine.start_seconds > 0
            engine.forget_caches()
            assert all(c == {"hits": 0, "misses": 0} for c in engine.data_cache_info())
    finally:
        engine.close()
    assert not plans.exists() and engine.noise_plans is None
    for name in ("first", "second"):
        summary = json.loads((tmp_path / name / "summary.json").read_text())
        assert summary["rounds_completed"] == 2
        assert 0 < summary["epsilon_max"] <= 3.0 + 1e-9
        # Each run books its own releases in its own centres' ledgers.
        assert (tmp_path / name / "state" / "centre-0").is_dir()
    deadline = time.monotonic() + 20
    while pids_mentioning(str(ray_tmp)) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert pids_mentioning(str(ray_tmp)) == []


def test_an_engine_refuses_a_run_with_another_backend() -> None:
    engine = SimulationEngine({"client_resources": {"num_cpus": 1.0, "num_gpus": 0.0},
                               "init_args": {"num_cpus": 2}})
    with pytest.raises(ValueError, match="same backend"):
        engine._backend_for({"client_resources": {"num_cpus": 2.0, "num_gpus": 0.0},
                             "init_args": {"num_cpus": 2}, "actor": {"tensorflow": 0}})
