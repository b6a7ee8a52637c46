"""The records keeper (common.records.keeper): the ministry's key held by one process,
lines appended only on top of the last one it wrote; the ServerApp's audit log written
through it without the key. A real ``perseverance-server records-keeper`` process too."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from common import protocol
from common.records.keeper import KEEPER_ENV, Keeper, KeeperError, append_through, start_in_thread
from common.records.key import load_or_create_key
from common.records.trail import check_trail, read_trail
from common.workdirs import MINISTRY_KEY_ENV
from server.federation.audit_log import ServerAudit


@pytest.fixture
def keeper(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, Path]]:
    """A keeper answering on a socket; the ServerApp's environment names it (and no key
    the ServerApp could read: the key is in the keeper's folder). (socket, runs)."""
    key = tmp_path / "keeper" / "ministry-records.key"
    key.parent.mkdir()
    runs = tmp_path / "runs"
    runs.mkdir()
    socket = tmp_path / "k.sock"
    server = start_in_thread(socket, Keeper(key, runs, tmp_path / "keeper" / "heads",
                                            "ministry"))
    monkeypatch.setenv(KEEPER_ENV, str(socket))
    monkeypatch.setenv(MINISTRY_KEY_ENV, str(tmp_path / "not-here" / "key"))
    try:
        yield socket, runs
    finally:
        server.shutdown()
        server.server_close()


def _key(socket: Path) -> bytes:
    return load_or_create_key(socket.parent / "keeper" / "ministry-records.key")


def test_the_serverapp_writes_its_log_through_the_keeper_without_the_key(
        keeper: tuple[Path, Path]) -> None:
    socket, runs = keeper
    audit = ServerAudit(runs / "run-1")
    audit.event("run_started", run="r", round=0)
    audit.connected(1, [3, 1], [])
    audit.event("run_finished", rounds_completed=1)

    log = runs / "run-1" / "audit.jsonl"
    check = check_trail(log, _key(socket))
    assert check.problems == [] and check.verified == 3
    assert [e["event"] for e in read_trail(log)] == [
        "run_started", "centres_connected", "run_finished"]
    assert {e["actor"] for e in read_trail(log)} == {"ministry"}
    assert audit.trail._key is None  # the ServerApp never loaded a key
    assert not (socket.parent / "not-here").exists()  # nor made one
    assert audit.head()[protocol.MINISTRY_LINES] == 3


def test_a_rewritten_or_cut_log_is_not_signed_on(keeper: tuple[Path, Path]) -> None:
    """The keeper appends only on top of the line it wrote last: after a rewrite (or a
    cut tail, or the file replaced) it refuses, and writes nothing."""
    socket, runs = keeper
    audit = ServerAudit(runs / "run-2")
    for number in range(3):
        audit.event("round_aggregated", round=number + 1, updates=3)
    log = runs / "run-2" / "audit.jsonl"
    lines = log.read_text().splitlines()

    log.write_text("\n".join(lines[:2]) + "\n")  # the last line cut
    with pytest.raises(KeeperError, match="rewritten, cut or replaced"):
        audit.event("run_finished", rounds_completed=3)
    assert log.read_text().splitlines() == lines[:2]

    edited = json.loads(lines[2])
    edited["updates"] = 0
    log.write_text("\n".join([*lines[:2], json.dumps(edited)]) + "\n")  # last line edited
    with pytest.raises(KeeperError, match="rewritten"):
        audit.event("run_finished", rounds_completed=3)

    log.write_text("\n".join(lines) + "\n")  # restored as written: it goes on
    audit.event("run_finished", rounds_completed=3)
    assert check_trail(log, _key(socket)).verified == 4


@pytest.mark.parametrize("where", ["outside", "other-name", "relative", "link", "dotdot"])
def test_only_audit_logs_under_the_runs_folder_by_their_own_path(
        keeper: tuple[Path, Path], tmp_path: Path, where: str) -> None:
    socket, runs = keeper
    target = {"outside": tmp_path / "elsewhere" / "audit.jsonl",
              "other-name": runs / "r" / "summary.json",
              "relative": Path("runs/r/audit.jsonl"),
              "link": runs / "r" / "audit.jsonl",
              "dotdot": runs / "r" / ".." / ".." / "audit.jsonl"}[where]
    if where == "link":  # the keeper's own state behind a link in a run folder
        target.parent.mkdir()
        heads = socket.parent / "keeper" / "heads"
        target.symlink_to(heads / "x.json")
    with pytest.raises(KeeperError):
        append_through(socket, target, "run_started", {})
    assert not (tmp_path / "elsewhere").exists()


def test_a_request_cannot_set_the_time_nor_the_chain(keeper: tuple[Path, Path]) -> None:
    socket, runs = keeper
    with pytest.raises(KeeperError, match="at"):
        append_through(socket, runs / "r" / "audit.jsonl", "run_started",
                       {"at": "2020-01-01T00:00:00"})
    with pytest.raises(KeeperError, match="seq"):
        append_through(socket, runs / "r" / "audit.jsonl", "run_started", {"seq": 1})


def test_no_keeper_listening_is_one_sentence(tmp_path: Path) -> None:
    with pytest.raises(KeeperError, match="cannot be reached"):
        append_through(tmp_path / "none.sock", tmp_path / "audit.jsonl", "x", {})


def test_the_records_keeper_command_serves_the_serverapp(tmp_path: Path) -> None:
    """The real command, started and stopped by its PID; its socket owner and group
    only; the key it made is its own (0600)."""
    runs, state, key = tmp_path / "runs", tmp_path / "state", tmp_path / "key" / "m.key"
    runs.mkdir()
    socket = tmp_path / "keeper.sock"
    env = {**os.environ, MINISTRY_KEY_ENV: str(key)}
    command = [str(Path(sys.executable).parent / "perseverance-server"), "records-keeper",
               "--socket", str(socket), "--runs", str(runs), "--state", str(state)]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not socket.exists():
            assert process.poll() is None and time.monotonic() < deadline, \
                process.communicate()
            time.sleep(0.1)
        entry = append_through(socket, runs / "r" / "audit.jsonl", "run_started",
                               {"round": 0})
        assert entry["seq"] == 1 and entry["actor"] == "ministry"
        assert oct(socket.stat().st_mode & 0o777) == "0o770"
        assert oct(key.stat().st_mode & 0o777) == "0o600"
        assert check_trail(runs / "r" / "audit.jsonl", load_or_create_key(key)).verified == 1
    finally:
        process.terminate()
        process.wait(timeout=30)
