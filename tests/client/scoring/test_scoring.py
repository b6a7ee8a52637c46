"""Local scoring: levels from thresholds, the policy's [support] table, model files,
exit codes of ``perseverance-client score`` and the scoring throughput."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from client.cli import app
from client.ingest.centre_data import DataError, SitePolicy
from client.scoring.scores import (
    ModelFileError,
    SupportThresholds,
    load_model,
    load_scoring_policy,
    score_frame,
    support_priority,
    support_thresholds,
)
from common.calibration import Calibration
from common.encoding import FEATURE_SLICES, encode
from common.model import predict_proba
from tests.client.conftest import harmonised_frame, said_lines, write_csv, write_text
from tests.client.model_files import random_model, save_checkpoint

runner = CliRunner()


def test_levels_follow_the_thresholds_inclusive_at_each_threshold() -> None:
    probability = np.array([0.0, 0.2499, 0.25, 0.4999, 0.5, 0.99])

    levels = support_priority(probability, SupportThresholds(high=0.5, moderate=0.25))

    assert levels.tolist() == ["low", "low", "moderate", "moderate", "high", "high"]


def test_thresholds_must_be_ordered_within_0_and_1() -> None:
    with pytest.raises(ValueError, match="0 < moderate < high < 1"):
        SupportThresholds(high=0.3, moderate=0.4)


def test_no_policy_gives_the_documented_defaults() -> None:
    policy, thresholds = load_scoring_policy(None)

    assert policy == SitePolicy()
    assert (thresholds.high, thresholds.moderate) == (0.5, 0.25)


def test_the_support_table_of_the_site_policy_sets_the_thresholds(tmp_path: Path) -> None:
    path = write_text(
        tmp_path / "policy.toml",
        'refused_predictors = ["home_language"]\n\n[support]\nhigh = 0.6\nmoderate = 0.3\n',
    )

    policy, thresholds = load_scoring_policy(path)

    assert (thresholds.high, thresholds.moderate) == (0.6, 0.3)
    assert policy.refused_predictors == frozenset({"home_language"})


def test_thresholds_are_read_from_the_policys_extra_support_table() -> None:
    policy = SitePolicy(extra={"support": {"high": 0.7}})

    thresholds = support_thresholds(policy)

    assert (thresholds.high, thresholds.moderate) == (0.7, 0.25)


def test_a_support_table_out_of_order_is_refused_in_one_sentence(tmp_path: Path) -> None:
    path = write_text(tmp_path / "policy.toml", "[support]\nhigh = 0.2\nmoderate = 0.4\n")

    with pytest.raises(DataError, match=r"policy.toml, Support thresholds need"):
        load_scoring_policy(path)


def test_other_policy_errors_name_the_centres_file(tmp_path: Path) -> None:
    path = write_text(tmp_path / "policy.toml", "min_record = 3\n[support]\nhigh = 0.6\n")

    with pytest.raises(DataError, match="unknown key") as raised:
        load_scoring_policy(path)
    assert str(path) in str(raised.value)


def test_a_saved_model_scores_as_the_original(tmp_path: Path) -> None:
    model = random_model()
    x = encode(harmonised_frame(20))

    loaded = load_model(save_checkpoint(tmp_path / "model.pt", model))

    np.testing.assert_allclose(predict_proba(loaded, x), predict_proba(model, x))


def test_support_levels_are_read_on_the_recalibrated_probabilities(tmp_path: Path) -> None:
    """The run's recalibration (saved in model.pt) is what ``score`` applies before the
    support thresholds: a DP model's own probabilities run low, so levels read on them
    would flag fewer students than the calibrated probabilities the team is shown."""
    model = random_model()
    path = save_checkpoint(tmp_path / "model.pt", model)
    checkpoint = torch.load(path, weights_only=True)
    torch.save({**checkpoint, "calibration": {"slope": 0.4, "intercept": 1.5}}, path)
    frame = harmonised_frame(60)
    raw = predict_proba(model, encode(frame))

    scored = score_frame(load_model(path), frame, SitePolicy(), SupportThresholds())

    calibrated = Calibration(0.4, 1.5).apply(raw)
    np.testing.assert_allclose(scored.probability, calibrated)
    assert list(scored.priority) == list(support_priority(calibrated, SupportThresholds()))
    assert list(scored.priority) != list(support_priority(raw, SupportThresholds()))


def test_a_file_that_is_not_a_model_is_refused(tmp_path: Path) -> None:
    path = write_text(tmp_path / "model.pt", "not a checkpoint")

    with pytest.raises(ModelFileError, match="is not a Persévérance model"):
        load_model(path)


def test_a_model_of_another_encoding_version_is_refused(tmp_path: Path) -> None:
    model = random_model()
    path = tmp_path / "model.pt"
    torch.save({"state_dict": model.state_dict(),
                "model_config": {**model.config.to_dict(), "encoding_version": "0.9+enc0"}}, path)

    with pytest.raises(ModelFileError, match=r"feature encoding 0\.9\+enc0"):
        load_model(path)


def test_refused_predictors_are_scored_as_missing() -> None:
    frame = harmonised_frame(6)
    policy = SitePolicy(refused_predictors=frozenset({"absence_rate"}))

    scored = score_frame(random_model(), frame, policy, SupportThresholds())

    cols = FEATURE_SLICES["absence_rate"]
    assert (scored.x[:, cols.stop - 1] == 1.0).all() and (scored.x[:, cols.start] == 0.0).all()
    assert scored.identifiers.columns.tolist() == ["student_id", "school_id", "school_year"]


def test_the_cli_refuses_a_bad_model_file_with_exit_2_and_one_sentence(tmp_path: Path) -> None:
    data = write_csv(tmp_path / "x.csv", harmonised_frame(10))
    model = write_text(tmp_path / "model.pt", "garbage")

    result = runner.invoke(app, ["score", "--lang", "en",
                                 "--model", str(model), "--data", str(data),
                                 "--out", str(tmp_path / "out")])

    assert result.exit_code == 2
    assert len(said_lines(result.stderr)) == 1
    assert "is not a Persévérance model" in result.stderr
    assert "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


def test_the_cli_speaks_french_unless_told_english(tmp_path: Path) -> None:
    model = save_checkpoint(tmp_path / "model.pt", random_model())
    data = write_csv(tmp_path / "x.csv", harmonised_frame(12))
    garbage = write_text(tmp_path / "garbage.pt", "garbage")
    no_locale = {"LC_ALL": "", "LC_MESSAGES": "", "LANG": "C.UTF-8"}
    args = ["score", "--data", str(data), "--no-explain"]

    french = runner.invoke(app, [*args, "--model", str(model), "--out", str(tmp_path / "fr")],
                           env=no_locale)
    english = runner.invoke(app, [*args, "--model", str(model), "--out", str(tmp_path / "en"),
                                  "--lang", "en"], env=no_locale)
    refused = runner.invoke(app, [*args, "--model", str(garbage), "--out", str(tmp_path / "x")],
                            env=no_locale)

    assert french.exit_code == english.exit_code == 0, french.output
    assert french.stdout.startswith("Scores calculés pour 12 élèves en ")
    assert "(seuils 0,50 et 0,25)" in french.stdout
    assert english.stdout.startswith("Scored 12 students in ")
    assert "(thresholds 0.50 and 0.25)" in english.stdout
    assert refused.exit_code == 2
    assert said_lines(refused.stderr)[0].startswith(
        f"erreur : Le fichier de modèle {garbage} n'est pas un modèle Persévérance")


def test_the_console_script_says_what_it_loads_before_the_first_result(
        tmp_path: Path) -> None:
    # A real process (stderr not a terminal): its seconds of loading PyTorch and Captum
    # are said in one plain French line, before the result, without terminal codes.
    model = save_checkpoint(tmp_path / "model.pt", random_model())
    data = write_csv(tmp_path / "x.csv", harmonised_frame(12))
    script = Path(sys.executable).parent / "perseverance-client"
    env = {**os.environ, "LC_ALL": "", "LC_MESSAGES": "", "LANG": "C.UTF-8"}

    done = subprocess.run([str(script), "score", "--model", str(model), "--data", str(data),
                           "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=300, check=False, env=env)

    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines()[0] == (
        "Chargement des outils de calcul des scores (PyTorch, Captum)…")
    assert "\x1b" not in done.stderr + done.stdout
    assert done.stdout.startswith("Scores calculés pour 12 élèves en ")


def test_the_cli_refuses_unusable_data_with_exit_2(tmp_path: Path) -> None:
    model = save_checkpoint(tmp_path / "model.pt", random_model())
    data = write_csv(tmp_path / "x.csv", harmonised_frame(5).drop(columns=["student_id"]))

    result = runner.invoke(app, ["score", "--lang", "en",
                                 "--model", str(model), "--data", str(data),
                                 "--out", str(tmp_path / "out")])

    assert result.exit_code == 2
    assert "lacks the required column student_id" in said_lines(result.stderr)[0]
    assert "Traceback" not in result.output


def test_scoring_itself_handles_at_least_100000_students_per_second() -> None:
    frame = pd.concat([harmonised_frame(1000)] * 200, ignore_index=True)
    model, policy, thresholds = random_model(), SitePolicy(), SupportThresholds()
    score_frame(model, frame[:100], policy, thresholds)  # warm-up

    best = min(_seconds(lambda: score_frame(model, frame, policy, thresholds)) for _ in range(3))

    assert len(frame) / best >= 100_000, f"{len(frame) / best:,.0f} students per second"


def _seconds(action: object) -> float:
    started = time.perf_counter()
    action()  # type: ignore[operator]
    return time.perf_counter() - started
