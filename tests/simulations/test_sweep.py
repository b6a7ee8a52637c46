from pathlib import Path

import pytest

from common.config import ConfigError
from simulations.sweep import SweepPoint, parse_epsilons, table, write_outputs


def test_parse_epsilons_with_a_run_without_dp():
    assert parse_epsilons("0.5, 1,2,none") == [0.5, 1.0, 2.0, None]


@pytest.mark.parametrize("bad", ["", "1,abc", "-1", "0", "inf"])
def test_bad_epsilons_are_refused(bad):
    with pytest.raises(ConfigError):
        parse_epsilons(bad)


def test_sweep_outputs_table_figure_and_json(tmp_path: Path):
    points = [SweepPoint(1.0, 0.77, 0.78, 0.80, 1.0, "a"),
              SweepPoint(4.0, 0.79, 0.795, 0.80, 4.0, "b"),
              SweepPoint(None, 0.80, 0.80, 0.80, None, "c")]
    write_outputs("demo", points, tmp_path)
    assert (tmp_path / "sweep.png").stat().st_size > 5000
    text = (tmp_path / "sweep.md").read_text()
    assert "| no DP | - | 0.800 |" in text and text == table(points)
    assert (tmp_path / "sweep.json").is_file()


@pytest.mark.slow
def test_a_sweep_starts_the_engine_once_and_keeps_each_run_apart(tmp_path: Path) -> None:
    import json
    import os
    import subprocess
    import sys
    import time

    from tests.processes import pids_mentioning

    ray_tmp = Path(f"/tmp/prs-sweep-{os.getpid()}")
    env = {**os.environ, "RAY_TMPDIR": str(ray_tmp), "FLWR_HOME": str(tmp_path / "flwr")}
    out = tmp_path / "sweep"
    # Without evaluation noise: 900 students are too few for a noisy pooled AUC.
    sim = Path(sys.executable).with_name("perseverance-sim")
    proc = subprocess.run(
        [str(sim), "sweep", "--scenario", "tiny", "--epsilons", "3,none",
         "--set", "network.students=900", "--set", "rounds=1",
         "--set", "privacy.evaluation_noise=false",
         "--set", "centre_policy.allow_unnoised_evaluation=true",
         # Seeded noise: the two small centres (about 70 training records) would be refused
         # on their noisy released size in about half of the runs with fresh noise.
         "--set", "privacy.reproducible_noise=true",
         "--set", "centre_policy.allow_replayable_noise=true", "--out", str(out)],
        env=env, capture_output=True, text=True, timeout=400, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    sweep = json.loads((out / "sweep.json").read_text())
    assert sweep["engine"]["starts"] == 1 and sweep["engine"]["start_seconds"] > 0
    first, second = (json.loads((out / label / "summary.json").read_text())
                     for label in ("eps-3", "no-dp"))
    assert first["wall_seconds_split"]["engine_start"] > 0
    assert second["wall_seconds_split"]["engine_start"] < 0.05
    # The same data (generated once) and the same reference, computed once.
    assert (out / "eps-3" / "data").resolve() == (out / "data").resolve()
    assert first["auc_centralized"] == second["auc_centralized"]
    # Each run its own privacy bookkeeping: DP spent in the first, none in the second.
    assert first["epsilon_max"] <= 3.0 + 1e-9 and first["epsilon_max"] > 0
    assert not second.get("epsilon_max")
    assert (out / "eps-3" / "state" / "centre-0").is_dir()
    assert (out / "no-dp" / "state" / "centre-0").is_dir()
    deadline = time.monotonic() + 20
    while pids_mentioning(str(ray_tmp)) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert pids_mentioning(str(ray_tmp)) == []
