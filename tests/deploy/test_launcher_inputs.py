"""The launcher's inputs, without starting anything: data files, centres' names, the
run configuration and what reaches the console."""

from __future__ import annotations

from pathlib import Path

import pytest

from simulations.loopback.launcher import (
    DevFederationOptions,
    LauncherInputError,
    _worth_showing,
    centre_files,
    centre_floor,
    round_seconds,
    run_config,
)


def _data_dir(tmp_path: Path, *names: str) -> Path:
    folder = tmp_path / "data"
    folder.mkdir()
    for name in names:
        (folder / name).write_text("x\n")
    return folder


def test_every_parquet_or_csv_file_is_a_centre_in_name_order(tmp_path: Path) -> None:
    data = _data_dir(tmp_path, "css-b.parquet", "css-a.csv", "notes.txt", "mapping.toml")

    files = centre_files(DevFederationOptions(data=data), tmp_path / "unused")

    assert [f.name for f in files] == ["css-a.csv", "css-b.parquet"]
    assert all(f.is_absolute() for f in files)


def test_centres_must_agree_with_the_data_folder(tmp_path: Path) -> None:
    data = _data_dir(tmp_path, "css-a.csv", "css-b.csv")

    with pytest.raises(LauncherInputError, match="--centres 3 disagrees with the 2 data files"):
        centre_files(DevFederationOptions(centres=3, data=data), tmp_path / "unused")


def test_a_file_name_that_cannot_name_a_centre_is_refused(tmp_path: Path) -> None:
    data = _data_dir(tmp_path, "CSS de Montréal.csv")

    with pytest.raises(LauncherInputError, match="Rename the file"):
        centre_files(DevFederationOptions(data=data), tmp_path / "unused")


def test_generated_centres_are_written_to_the_run_folder(tmp_path: Path) -> None:
    files = centre_files(DevFederationOptions(centres=2, students=600), tmp_path / "data")

    assert len(files) == 2 and all(f.parent == tmp_path / "data" for f in files)
    assert (tmp_path / "data" / "centres.json").is_file()


def test_run_config_uses_loopback_defaults_and_overrides(tmp_path: Path) -> None:
    options = DevFederationOptions(rounds=3, overrides=["privacy.epsilon=2.5", "min_centres=2"])

    config = run_config(options, tmp_path, centres=4)

    assert config.rounds == 3 and config.min_centres == 2 and config.scenario == "loopback"
    assert config.privacy.epsilon == 2.5 and config.run_dir == str(tmp_path)


def test_the_run_folder_is_set_with_out_only(tmp_path: Path) -> None:
    options = DevFederationOptions(overrides=["run_dir=/elsewhere"])

    with pytest.raises(LauncherInputError, match="--out"):
        run_config(options, tmp_path, centres=3)


@pytest.mark.parametrize("line,shown", [
    ("\x1b[92mINFO \x1b[0m:      [ROUND 1/2]", False),
    ("\x1b[92mINFO \x1b[0m:      aggregate_train: Received 3 results", False),
    ("DEBUG :   Will push ServerApp task output", False),
    ("12/07/2026 17:58:14:INFO:configure_train: Sampled 3 nodes (out of 3)", False),
    ("12/07/2026 17:58:36\u26a0round 1: 2 valid updates, fewer than the 3 required", False),
    ("Successfully installed perseverance to /tmp/flwr-home/apps/perseverance", False),
    ('  File "/app/server/app.py", line 33, in main', False),
    ("  round 1/2 | pooled AUC 0.733 | epsilon max 2.36", True),
    ("\x1b[91mERROR \x1b[0m:     ServerApp raised an exception", False),
    ("Using SuperLink: perseverance-operator (127.0.0.1:1)", False),
    ("", False),
])
def test_the_console_shows_the_serverapps_own_lines_only(line: str, shown: bool) -> None:
    assert _worth_showing(line) is shown
    # --verbose: every line but an empty one (logs/run.log keeps them all anyway).
    assert _worth_showing(line, verbose=True) is bool(line)


def test_centre_policy_keys_lower_the_generated_centres_floor_not_the_run(tmp_path) -> None:
    options = DevFederationOptions(overrides=["privacy.dp=false",
                                              "centre_policy.require_dp=false"])

    floor = centre_floor(options)
    config = run_config(options, tmp_path / "run", 2)

    assert floor.require_dp is False and floor.max_epsilon_per_run == 3.0
    assert config.privacy.dp is False
    with pytest.raises(LauncherInputError, match=r"policy\.toml"):
        centre_floor(DevFederationOptions(data=_data_dir(tmp_path, "css-a.csv"),
                                          overrides=["centre_policy.require_dp=false"]))
    with pytest.raises(LauncherInputError, match=r"centre_policy\.nope"):
        centre_floor(DevFederationOptions(overrides=["centre_policy.nope=1"]))


def test_seconds_per_round_come_from_the_serverapps_log_stamps() -> None:
    log = "\n".join([
        "Using SuperLink: perseverance-operator (127.0.0.1:41159)",
        "\x1b[92mINFO \x1b[0m:      configure_train: Sampled 3 nodes (out of 3)",
        "12/02/2026 05:51:14:INFO:configure_train: Sampled 3 nodes (out of 3)",
        "12/02/2026 05:51:40:INFO:aggregate_train: Received 3 results and 0 failures",
        "  round 1/2 | pooled AUC 0.811 | epsilon max 2.37",
        "12/02/2026 05:51:56:INFO:configure_train: Sampled 3 nodes (out of 3)",
        "12/02/2026 05:52:32:DEBUG:ServerApp finished running.",
    ])
    assert round_seconds(log) == [42.0, 36.0]
    # A run that never finished has its complete rounds only.
    assert round_seconds(log.rsplit("\n", 1)[0]) == [42.0]
    assert round_seconds("") == []
