"""The ministry's records key as a user meets it: a tiny simulation run
(``perseverance-sim run``, the ``tiny_run`` fixture), then the README's ``perseverance-server
audit verify runs/<run>`` from another working directory, and the console's audit page on
the same folder: intact (0), a foreign key (2, named), no key (2), an edited line (4)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from common.records.key import key_id, load_or_create_key, read_key
from server.console.runs import RunFolders

pytestmark = pytest.mark.slow
SERVER = Path(sys.executable).with_name("perseverance-server")


def _verify(run_dir: Path, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k != "PERSEVERANCE_MINISTRY_KEY"}
    return subprocess.run([str(SERVER), "audit", "verify", str(run_dir)], cwd=cwd,
                          env={**environment, **env}, capture_output=True, text=True,
                          timeout=120, check=False)


def test_a_tiny_run_verifies_from_anywhere_and_a_wrong_key_is_named(
    tiny_run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert tiny_run.proc.returncode == 0, tiny_run.proc.stderr[-2000:]
    flwr_home = tiny_run.out.parent / "flwr"  # the fixture's FLWR_HOME
    signer = key_id(read_key(flwr_home / "perseverance" / "ministry-records.key") or b"")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    run = tmp_path / "runs" / tiny_run.out.name
    shutil.copytree(tiny_run.out, run)

    intact = _verify(run, elsewhere, FLWR_HOME=str(flwr_home))
    foreign_key = tmp_path / "foreign.key"
    foreign = _verify(run, elsewhere, FLWR_HOME=str(flwr_home),
                      PERSEVERANCE_MINISTRY_KEY=str(foreign_key), LANG="fr_CA.UTF-8") \
        if load_or_create_key(foreign_key) else None
    missing = _verify(run, elsewhere, FLWR_HOME=str(tmp_path / "empty-flwr-home"))

    assert (intact.returncode, intact.stderr) == (0, ""), intact.stderr
    assert "Registres intacts" in intact.stdout
    assert foreign is not None and foreign.returncode == 2, foreign.stderr
    assert f"n'est pas celle qui a signé {run / 'audit.jsonl'} ({signer})" in foreign.stderr
    assert "modifi" not in foreign.stderr and len(foreign.stderr.splitlines()) == 1
    assert missing.returncode == 2 and f"signé avec la clé {signer}" in missing.stderr

    monkeypatch.setenv("FLWR_HOME", str(flwr_home))
    monkeypatch.delenv("PERSEVERANCE_MINISTRY_KEY", raising=False)
    console = RunFolders(tmp_path / "runs").audit(run.name)
    assert console is not None and console[1].keyed and console[1].problems == []
    monkeypatch.setenv("PERSEVERANCE_MINISTRY_KEY", str(foreign_key))
    console = RunFolders(tmp_path / "runs").audit(run.name)
    assert console is not None and console[1].key_problem and console[1].problems == []

    log = run / "audit.jsonl"
    lines = log.read_text(encoding="utf-8").splitlines()
    lines[2] = lines[2].replace('"round": 1', '"round": 2', 1)
    assert lines[2] != log.read_text(encoding="utf-8").splitlines()[2]
    log.write_text("\n".join(lines) + "\n", encoding="utf-8")
    edited = _verify(run, elsewhere, FLWR_HOME=str(flwr_home))
    assert edited.returncode == 4 and f"{log}, ligne 3" in edited.stderr, edited.stderr
    monkeypatch.delenv("PERSEVERANCE_MINISTRY_KEY")
    console = RunFolders(tmp_path / "runs").audit(run.name)
    assert console is not None and console[1].problems and "line 3" in console[1].problems[0]
