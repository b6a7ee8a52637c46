"""What the console reads from run folders: status without taking the lock, lines
followed as they are appended, nothing outside the runs folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from common.records.key import load_or_create_key
from server.console.follow import JsonLinesFollower
from server.console.runs import (
    DEPLOYED,
    FAILED,
    FINISHED,
    LOOPBACK,
    RUNNING,
    SIMULATED,
    STOPPED,
    RunFolders,
    lock_held,
)
from server.federation.audit_log import ServerAudit
from server.federation.checkpoint import LOCK, run_folder_lock
from tests.server import console_fixtures as fixtures
from tests.server.run_fixtures import write_run_folder


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


def test_each_run_kind_is_told_from_the_folder(runs: RunFolders) -> None:
    kinds = {o.name: o.kind for o in runs.overviews()}
    assert kinds[fixtures.FINISHED] == DEPLOYED  # no scenario, no data folder of its own
    assert kinds[fixtures.SIMULATED] == SIMULATED  # scenario_file in its summary
    assert kinds[fixtures.LOOPBACK] == LOOPBACK  # "deployment": "loopback"


def test_a_run_every_centre_refused_is_stopped_not_failed(runs: RunFolders,
                                                          tmp_path: Path) -> None:
    refused = write_run_folder(tmp_path / "runs" / "refused", summary_extra={
        "rounds_completed": 0, "stopped": "Round 1: only 0 centres can take part."})
    ServerAudit(refused).event("run_stopped", rounds_completed=0, reason="...")
    overview = runs.overview("refused")
    assert overview is not None and overview.status == STOPPED
    assert overview.stopped == "Round 1: only 0 centres can take part."


def test_a_years_simulation_is_listed_with_its_years(runs: RunFolders, tmp_path: Path) -> None:
    years = tmp_path / "runs" / "years-tiny"
    for year in (1, 2):
        write_run_folder(years / f"year-{year}", summary_extra={"rounds_completed": 3})
    (years / "state" / "centre-0").mkdir(parents=True)
    (years / "years.json").write_text(json.dumps({"years": [
        {"year": 1, "school_year": "2024-2025", "auc_pooled": 0.7},
        {"year": 2, "school_year": "2025-2026", "auc_pooled": 0.72}]}))

    assert "years-tiny" not in runs.names()
    (found,) = runs.years_runs()
    assert found.name == "years-tiny" and found.status == FINISHED
    assert [(y.name, y.year) for y in found.years] == [("years-tiny/year-1", 1),
                                                       ("years-tiny/year-2", 2)]
    assert found.school_year(2) == "2025-2026"
    detail = runs.detail("years-tiny/year-2")
    assert detail is not None and detail.overview.rounds_done == 3
    for name in ("years-tiny/state", "years-tiny/year-3", "years-tiny/../finished-run",
                 "years-tiny/year-1/..", f"{fixtures.FINISHED}/year-1"):
        assert runs.folder(name) is None, name
