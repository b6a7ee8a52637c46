"""What the console reads from run folders: status without taking the lock, lines
followed as they are appended, nothing outside the runs folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from common.records.key import load_or_create_key
from server.console.follow import JsonLinesFollower
from server.console.runs import FAILED, FINISHED, RUNNING, STOPPED, RunFolders, lock_held
from server.federation.audit_log import ServerAudit
from server.federation.checkpoint import LOCK, run_folder_lock
from tests.server import console_fixtures as fixtures


@pytest.fixture
def runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> RunFolders:
    monkeypatch.setenv("PERSEVERANCE_MINISTRY_KEY", str(tmp_path / "ministry.key"))
    fixtures.write_runs(tmp_path / "runs")
    return RunFolders(tmp_path / "runs")


def test_a_held_run_folder_lock_is_seen_without_taking_it(tmp_path: Path) -> None:
    with run_folder_lock(tmp_path):
        assert lock_held(tmp_path / LOCK)
    assert not lock_held(tmp_path / LOCK)
    assert not lock_held(tmp_path / "no-such.lock")


def test_each_status_is_told_from_the_folder(runs: RunFolders, tmp_path: Path) -> None:
    status = {o.name: o.status for o in runs.overviews()}
    assert status[fixtures.FINISHED] == FINISHED
    assert status[fixtures.STOPPED] == STOPPED
    assert status[fixtures.FAILED] == FAILED
    with run_folder_lock(tmp_path / "runs" / fixtures.FAILED):  # a resumption holds it
        overview = runs.overview(fixtures.FAILED)
        assert overview is not None and overview.status == RUNNING
        assert (overview.rounds_done, overview.rounds_planned) == (1, 5)


def test_a_run_that_died_after_resuming_is_failed_not_stopped(runs: RunFolders,
                                                               tmp_path: Path) -> None:
    stopped = tmp_path / "runs" / fixtures.STOPPED
    ServerAudit(stopped).event("run_resumed", run_name="fixture", rounds=3)  # then killed

    overview = runs.overview(fixtures.STOPPED)

    assert overview is not None and overview.status == FAILED


def test_a_half_written_line_waits_for_its_end(tmp_path: Path) -> None:
    path = tmp_path / "rounds.jsonl"
    follower = JsonLinesFollower(path)
    assert follower.lines() == []
    line = json.dumps({"round": 2, "eval_auc": 0.7})
    path.write_text(json.dumps({"round": 1}) + "\n" + line[:10])

    assert follower.lines() == [{"round": 1}]
    with path.open("a") as handle:
        handle.write(line[10:] + "\nnot json\n")
    assert [entry["round"] for entry in follower.lines()] == [1, 2]
    assert follower.unreadable == 1
    path.write_text(json.dumps({"round": 1}) + "\n")  # rewritten on resume: read again
    assert follower.lines() == [{"round": 1}]


@pytest.mark.parametrize("name", ["..", ".", "../runs", "a/b", ".hidden", ""])
def test_no_folder_outside_the_runs_folder_is_served(runs: RunFolders, name: str) -> None:
    assert runs.folder(name) is None
    assert runs.detail(name) is None


def test_the_audit_log_verifies_and_an_edit_is_found(runs: RunFolders) -> None:
    found = runs.audit(fixtures.FINISHED)
    assert found is not None and found[1].keyed and found[1].problems == []
    tampered = runs.audit("tampered-run")
    assert tampered is not None and "line 3" in tampered[1].problems[0]


def test_the_command_refuses_a_missing_folder_in_one_sentence(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from server.cli import app

    result = CliRunner().invoke(app, ["--lang", "en", "console", "--runs", str(tmp_path / "none")])

    assert result.exit_code == 2
    assert "is not a folder" in result.output and "Traceback" not in result.output


def test_the_audit_page_names_a_foreign_key_and_does_not_say_altered(
    runs: RunFolders, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from starlette.testclient import TestClient

    from server.console import ConsoleSettings
    from server.console.app import create_app

    foreign = tmp_path / "another.key"
    monkeypatch.setenv("PERSEVERANCE_MINISTRY_KEY", str(foreign))
    load_or_create_key(foreign)

    found = runs.audit(fixtures.FINISHED)
    page = TestClient(create_app(ConsoleSettings(runs=tmp_path / "runs"))).get(
        f"/audit/{fixtures.FINISHED}")

    assert found is not None and found[1].problems == [] and not found[1].keyed
    assert found[1].key_problem is not None
    assert "ne peut pas être vérifié ici" in page.text and "modifié après" not in page.text
    assert f"La clé à {foreign}" in page.text and "n&#39;est pas celle qui a signé" in page.text
    foreign.unlink()  # no key here (the console without the key): the chain only
    missing = runs.audit(fixtures.FINISHED)
    assert missing is not None and missing[1].problems == [] and not missing[1].keyed
    assert missing[1].key_problem is None
