"""Records that prove themselves to the last line (issue 31): every line a centre
writes for a run is covered by an anchor the ministry holds, so cutting any tail of a
centre's audit log is found, the record of the last reply included.

A real federation (the ClientApp and the ServerApp over ``simulations.direct_grid``)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from flwr.supercore.logger import FLOWER_LOGGER

import tests.server.messages  # noqa: F401  (sets the task identity messages need)
from client.federation.app import build_client_app
from client.federation.secure import build_secure_app
from common.config import RunConfig
from server.audit_verify import verify_run
from server.federation.audit_log import KEY_ENV
from server.federation.run import run_federation
from server.federation.secure import run_secure_federation
from simulations.direct_grid import DirectGrid
from simulations.network import generate_network, write_network

pytestmark = pytest.mark.federation  # an in-process federation: make test, not test-fast

FLOWER_LOGGER.setLevel(logging.WARNING)


@pytest.fixture(scope="module", params=["plain", "secure"])
def run_dir(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    secure = request.param == "secure"
    base = tmp_path_factory.mktemp(f"last-line-{request.param}")
    write_network(generate_network(centres=3, students=3000, seed=5), base / "data")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(KEY_ENV, str(base / "ministry.key"))
        config = RunConfig.from_flat({
            "scenario": "last-line-test", "rounds": 2, "local_epochs": 1, "min_centres": 2,
            "training.hidden": "8", "run_dir": str(base / "run"),
            "data_dir": str(base / "data"), "min_centres_wait": 0.3,
            "privacy.secure_aggregation": secure})
        app = build_secure_app() if secure else build_client_app()
        (run_secure_federation if secure else run_federation)(
            DirectGrid(app, 3, dict(config.to_flat()), 1), config)
    return base / "run"


def _verify(run_dir: Path) -> list[str]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(KEY_ENV, str(run_dir.parent / "ministry.key"))
        problems, _ = verify_run(run_dir)
    return [problem.sentence() for problem in problems]


def test_an_intact_run_verifies(run_dir: Path) -> None:
    assert _verify(run_dir) == []


@pytest.mark.parametrize("cut", [1, 2])
def test_cutting_the_last_lines_of_a_centres_log_is_found(run_dir: Path, cut: int) -> None:
    log = run_dir / "state" / "centre-0" / "audit.jsonl"
    lines = log.read_text().splitlines(keepends=True)
    assert '"reply_sent"' in lines[-1]  # the record of the last reply ends the log...
    try:
        log.write_text("".join(lines[:-cut]))

        found = _verify(run_dir)

        # ...and an anchor the ministry holds covers it: the first missing line is named.
        first = len(lines) - cut + 1
        assert found and any("centre-0" in p and f"the first missing is line {first}," in p
                             for p in found), found
    finally:
        log.write_text("".join(lines))


def test_cutting_everything_after_the_first_reply_is_found(run_dir: Path) -> None:
    log = run_dir / "state" / "centre-1" / "audit.jsonl"
    lines = log.read_text().splitlines(keepends=True)
    first = next(i for i, line in enumerate(lines) if '"reply_sent"' in line)
    try:
        log.write_text("".join(lines[:first + 1]))

        assert any("centre-1" in p and "missing" in p for p in _verify(run_dir))
    finally:
        log.write_text("".join(lines))


def test_the_centres_own_command_agrees(run_dir: Path) -> None:
    from typer.testing import CliRunner

    from client.cli import app

    state = run_dir / "state" / "centre-2"
    log = state / "audit.jsonl"
    lines = log.read_text().splitlines(keepends=True)
    argv = ["audit", "verify", "--state", str(state), "--anchors", str(run_dir),
            "--lang", "en"]
    intact = CliRunner().invoke(app, argv)
    try:
        log.write_text("".join(lines[:-1]))
        cut = CliRunner().invoke(app, argv)
    finally:
        log.write_text("".join(lines))

    assert intact.exit_code == 0, intact.output
    assert cut.exit_code == 4 and "missing" in cut.output, cut.output
