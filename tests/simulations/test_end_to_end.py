"""A tiny federation through the real simulation engine (Ray), run as a user runs it
(the ``tiny_run`` fixture of conftest.py)."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from client.ingest.centre_data import load_centre
from common.config import RunConfig
from common.model import ModelConfig, build_model, predict_proba
from tests.processes import pids_mentioning
from tests.simulations.conftest import assert_every_region_placed

SIM = Path(sys.executable).with_name("perseverance-sim")


@pytest.mark.slow
def test_tiny_federation_learns_and_stays_within_its_privacy_budget(tiny_run) -> None:
    out, proc = tiny_run.out, tiny_run.proc
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    config = RunConfig()  # the tiny scenario keeps the default model, seed and split
    assert summary["rounds_completed"] == summary["rounds"] == 2
    assert summary["num_centres"] == 3
    assert summary["epsilon_max"] <= summary["epsilon_target"] + 1e-9
    assert summary["delta"] == 1e-6
    # Learning happened: the final global model ranks held-out students far better
    # than the initial model the server sent out.
    files = sorted((out / "data").glob("*.parquet"))
    centres = [load_centre(str(f), None, None, config.evaluation.test_fraction) for f in files]
    x = np.concatenate([c.x_test for c in centres])
    y = np.concatenate([c.y_test for c in centres])
    initial = roc_auc_score(y, predict_proba(build_model(ModelConfig(), seed=config.seed), x))
    assert summary["auc_pooled_exact"] > initial + 0.1
    assert summary["auc_pooled_exact"] > 0.65
    # What the ministry sees is the same figure through DP-noised histograms.
    assert abs(summary["auc_pooled"] - summary["auc_pooled_exact"]) < 0.15
    assert 0.7 < summary["auc_centralized"] < 0.95


@pytest.mark.slow
def test_run_folder_holds_model_rounds_config_and_progress(tiny_run) -> None:
    out, proc = tiny_run.out, tiny_run.proc
    assert (out / "model.pt").is_file() and (out / "config.toml").is_file()
    rounds = [json.loads(line) for line in (out / "rounds.jsonl").read_text().splitlines()]
    assert [r["round"] for r in rounds] == [1, 2]
    assert all(r["eval_centres"] == 3 for r in rounds)
    assert "ronde 2/2 | AUC regroupée 0," in proc.stdout and "Résultats :" in proc.stdout


def test_the_console_command_is_quoted_for_the_shell() -> None:
    from simulations.cli import console_command

    assert console_command(Path("mes runs/tiny-1")) == (
        "perseverance-server console --runs 'mes runs'")
    assert console_command(Path("tiny-1")) == "perseverance-server console --runs ."


@pytest.mark.slow
def test_run_prints_the_console_command_that_lists_its_folder(tiny_run) -> None:
    """At its start (to watch it live) and at its end, the run prints the console's
    command; the folder it names holds the run folder, which the console lists."""
    from server.console.runs import RunFolders

    lines = tiny_run.proc.stdout.splitlines()
    live = [line for line in lines if line.startswith("Pour suivre l'exécution en direct : ")]
    done = [line for line in lines if line.startswith("Pour l'ouvrir dans la console : ")]
    assert len(live) == len(done) == 1
    assert lines.index(live[0]) < lines.index(next(line for line in lines if "ronde 1/2" in line))
    command = shlex.split(done[0].split(" : ", 1)[1])
    assert command == shlex.split(live[0].split(" : ", 1)[1])
    assert command[:3] == ["perseverance-server", "console", "--runs"] and len(command) == 4
    assert Path(command[3]) / tiny_run.out.name == tiny_run.out
    assert tiny_run.out.name in RunFolders(Path(command[3])).names()


@pytest.mark.slow
def test_run_says_where_its_wall_time_went(tiny_run) -> None:
    summary = json.loads((tiny_run.out / "summary.json").read_text())
    split = summary["wall_seconds_split"]
    assert set(split) == {"data", "engine_start", "federation", "engine_stop",
                          "references_and_baselines", "reports"}
    assert split["engine_start"] > 0 and split["federation"] > 0
    assert split["references_and_baselines"] > 0
    # The parts are the whole command, to the rounding of each.
    assert abs(sum(split.values()) - summary["wall_seconds"]) < 0.5
    # The console wraps long lines at its width: read the words.
    words = " ".join(tiny_run.proc.stdout.split())
    line = words[words.index("Durée totale"):].split(".", 1)[0]
    assert f"fédération {split['federation']:.0f} s" in line
    assert f"points de comparaison et références {split['references_and_baselines']:.0f} s" in line


@pytest.mark.slow
def test_the_equity_audit_places_each_centre_in_its_region(tiny_run) -> None:
    assert_every_region_placed(tiny_run.out)


@pytest.mark.slow
def test_nothing_is_left_running(tiny_run) -> None:
    ray_tmp = tiny_run.ray_tmp
    deadline = time.monotonic() + 20
    while pids_mentioning(str(ray_tmp)) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert pids_mentioning(str(ray_tmp)) == []


def test_bad_override_ends_with_one_sentence_and_exit_2(tmp_path: Path) -> None:
    proc = subprocess.run(
        [str(SIM), "--lang", "en", "run", "--scenario", "tiny", "--set", "rounds=zero", "--out",
         str(tmp_path)],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "rounds" in proc.stderr and "needs an integer" in proc.stderr
    assert not any(tmp_path.iterdir())


def test_a_run_folder_that_cannot_be_made_ends_with_one_sentence_and_exit_2(
        tmp_path: Path) -> None:
    taken = tmp_path / "taken"
    taken.write_text("a file, not a folder")
    proc = subprocess.run(
        [str(SIM), "--lang", "en", "run", "--scenario", "tiny", "--out", str(taken)],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "Cannot create the folder" in proc.stderr and str(taken) in proc.stderr
    assert taken.read_text() == "a file, not a folder"


def test_unknown_scenario_is_named_with_the_known_ones() -> None:
    proc = subprocess.run([str(SIM), "--lang", "en", "run", "--scenario", "nowhere"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2
    assert "no scenario named 'nowhere'" in proc.stderr and "demo" in proc.stderr


@pytest.mark.slow
def test_the_equity_audit_is_read_at_the_calibrated_threshold(tiny_run) -> None:
    """After the final round, the audit's exchange counted the flags at the raw score that
    the Platt recalibration of the final pooled histogram maps to evaluation.threshold;
    each centre booked it once, after its final histogram, within the run's budget."""
    from client.privacy.evaluation import audit_round
    from client.privacy.ledger import PrivacyLedger
    from client.privacy.run_plan import run_history
    from common.calibration import Calibration
    from common.privacy.accounting import composed_epsilon

    out = tiny_run.out
    config = RunConfig()
    equity = json.loads((out / "equity.json").read_text())
    summary = json.loads((out / "summary.json").read_text())
    calibration = Calibration(**equity["calibration"])
    assert equity["threshold_scale"] == "calibrated"
    assert equity["threshold"] == pytest.approx(config.evaluation.threshold, abs=1e-9)
    raw = equity["threshold_raw"]
    assert calibration.apply(np.array([raw]))[0] == pytest.approx(config.evaluation.threshold)
    assert abs(raw - config.evaluation.threshold) > 1e-3  # the model's scores are not calibrated
    for centre in sorted((out / "state").iterdir()):
        rows = [r for r in PrivacyLedger(centre).releases()
                if r.run_id == summary["run_name"] and r.kind == "evaluate"]
        assert [r.server_round for r in rows] == [1, 2, audit_round(RunConfig(rounds=2))]
        history = run_history(PrivacyLedger(centre), summary["run_name"], "evaluate")
        assert composed_epsilon(history, 1e-6) <= summary["epsilon_target"] * 1.001
