"""Noise plans shared by the processes of a run (``$PERSEVERANCE_NOISE_PLANS``): a plan
read from the folder is used only if it is a plan this process could have made (within
the target, and tight to the bisection's precision), so a stale, foreign or tampered
file can never make a centre spend more than its target."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from common.privacy import accounting as privacy

# A demo-sized centre: 2,900 training records, batch 181, 2 epochs, 6 rounds.
ARGS = (3.0, 1e-6, 1 / 16, 16 * 2 * 6, 6, "rdp")


@pytest.fixture
def plans(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(privacy.NOISE_PLAN_CACHE_ENV, str(tmp_path))
    privacy.calibrate_training_noise.cache_clear()
    yield tmp_path
    privacy.calibrate_training_noise.cache_clear()


def _spent(z: float) -> float:
    _, delta, q, steps, rounds, accountant = ARGS
    return privacy.composed_epsilon(privacy.training_history(z, q, steps, rounds), delta,
                                    accountant)


def test_a_plan_is_written_once_and_read_by_the_next_process(plans: Path) -> None:
    planned = privacy.calibrate_training_noise(*ARGS)
    files = list(plans.glob("training-*.json"))
    assert len(files) == 1
    assert json.loads(files[0].read_text())["noise_multiplier"] == planned
    privacy.calibrate_training_noise.cache_clear()  # as a fresh process
    assert privacy.calibrate_training_noise(*ARGS) == planned
    assert _spent(planned) <= ARGS[0] < _spent(planned / privacy.PLAN_TOLERANCE)


@pytest.mark.parametrize("factor", [0.9, 0.99, 1.1])
def test_a_tampered_plan_is_planned_again(plans: Path, factor: float) -> None:
    planned = privacy.calibrate_training_noise(*ARGS)
    (path,) = plans.glob("training-*.json")
    stored = json.loads(path.read_text())
    # Less noise would overspend; more would be loose: neither is this process's plan.
    stored["noise_multiplier"] = planned * factor
    path.write_text(json.dumps(stored))
    privacy.calibrate_training_noise.cache_clear()
    assert privacy.calibrate_training_noise(*ARGS) == planned


def test_a_plan_for_another_configuration_or_garbage_is_ignored(plans: Path) -> None:
    planned = privacy.calibrate_training_noise(*ARGS)
    (path,) = plans.glob("training-*.json")
    stored = json.loads(path.read_text())
    stored["key"][0] = 8.0  # a plan for epsilon 8 under this configuration's name
    path.write_text(json.dumps(stored))
    privacy.calibrate_training_noise.cache_clear()
    assert privacy.calibrate_training_noise(*ARGS) == planned
    path.write_text("{not json")
    privacy.calibrate_training_noise.cache_clear()
    assert privacy.calibrate_training_noise(*ARGS) == planned


def test_without_the_folder_nothing_is_written(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(privacy.NOISE_PLAN_CACHE_ENV, raising=False)
    privacy.calibrate_training_noise.cache_clear()
    try:
        privacy.calibrate_training_noise(*ARGS)
    finally:
        privacy.calibrate_training_noise.cache_clear()
    assert not list(tmp_path.iterdir())
