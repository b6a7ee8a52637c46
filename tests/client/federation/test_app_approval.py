"""``perseverance-client app`` and the runtime's check of a FAB, on real FABs built by
Flower's own ``flwr build`` code."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest
from flwr.cli.build import build_fab_from_disk
from flwr.supercore.fab import Fab
from typer.testing import CliRunner

from client.cli import app
from client.federation.runtime import task_argv
from client.federation.runtime_task import refusal
from common.app_approval import approve, read_approved

runner = CliRunner()
PYPROJECT = """\
[project]
name = "tiny"
version = "1.0.0"
dependencies = []

[tool.flwr.app]
publisher = "tests"

[tool.flwr.app.components]
serverapp = "tiny:server"
clientapp = "tiny:client"
"""


@pytest.fixture
def app_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "tiny"
    folder.mkdir()
    (folder / "pyproject.toml").write_text(PYPROJECT)
    (folder / "tiny.py").write_text("client = server = None\n")
    return folder


def _fab(folder: Path) -> Fab:
    content = build_fab_from_disk(folder)
    return Fab(hashlib.sha256(content).hexdigest(), content, {})


def test_approving_a_folder_approves_the_fab_a_run_of_it_ships(
    app_folder: Path, tmp_path: Path
) -> None:
    fab = _fab(app_folder)

    result = runner.invoke(app, ["app", "approve", str(app_folder), "--state", str(tmp_path),
                                 "--note", "reviewed"])

    assert result.exit_code == 0, result.output
    assert [a.fab_hash for a in read_approved(tmp_path)] == [fab.hash_str]
    assert refusal(fab, tmp_path) is None


def test_a_one_byte_change_of_an_approved_app_is_refused(app_folder: Path, tmp_path: Path) -> None:
    approve(tmp_path, _fab(app_folder).hash_str)
    (app_folder / "tiny.py").write_text("client = server = 0\n")
    modified = _fab(app_folder)

    reason = refusal(modified, tmp_path)

    assert reason == ("App not approved: this centre runs only apps it approved, and the FAB "
                      f"{modified.hash_str} is not on its list.")


def test_a_fab_announced_under_an_approved_hash_is_refused(
    app_folder: Path, tmp_path: Path
) -> None:
    approved = _fab(app_folder)
    approve(tmp_path, approved.hash_str)
    (app_folder / "tiny.py").write_text("import os\n")
    other = _fab(app_folder)

    reason = refusal(Fab(approved.hash_str, other.content, {}), tmp_path)

    assert reason is not None and f"hashes to {other.hash_str}, not to" in reason


def test_a_damaged_list_refuses_every_app(app_folder: Path, tmp_path: Path) -> None:
    (tmp_path / "approved-apps.json").write_text("not json")

    reason = refusal(_fab(app_folder), tmp_path)

    assert reason is not None and "cannot be read" in reason


def test_list_revoke_and_hash_commands(app_folder: Path, tmp_path: Path) -> None:
    digest = _fab(app_folder).hash_str
    fab_file = tmp_path / "tiny.fab"
    fab_file.write_bytes(build_fab_from_disk(app_folder))

    hashed = runner.invoke(app, ["app", "hash", str(fab_file)])
    empty = runner.invoke(app, ["app", "list", "--state", str(tmp_path), "--lang", "en"])
    vide = runner.invoke(app, ["app", "list", "--state", str(tmp_path), "--lang", "fr"])
    approved = runner.invoke(app, ["app", "approve", digest, "--state", str(tmp_path)])
    listed = runner.invoke(app, ["app", "list", "--state", str(tmp_path)])
    revoked = runner.invoke(app, ["app", "revoke", digest[:10], "--state", str(tmp_path)])

    assert hashed.stdout.strip() == digest
    assert "No app is approved" in empty.stdout
    assert "Aucune application n'est approuvée" in vide.stdout
    hash_cells = "".join(line.split("│")[1].strip() for line in listed.stdout.splitlines()
                         if line.startswith("│"))
    assert approved.exit_code == 0 and digest in hash_cells  # folded in two halves, whole
    assert revoked.exit_code == 0 and read_approved(tmp_path) == []


@pytest.mark.parametrize("args", [
    ["app", "approve", "not-an-app", "--state", "{state}"],
    ["app", "approve", "{folder}", "--state", "{state}/absent"],
    ["app", "revoke", "0123456789abcdef", "--state", "{state}"],
    ["app", "hash", "{state}/missing.fab"],
])
def test_unusable_input_exits_2_with_one_sentence(
    args: list[str], app_folder: Path, tmp_path: Path
) -> None:
    argv = [a.format(state=tmp_path, folder=app_folder) for a in args]

    result = runner.invoke(app, [*argv, "--lang", "en"])
    french = runner.invoke(app, [*argv, "--lang", "fr"])

    assert result.exit_code == french.exit_code == 2
    assert result.stderr.startswith("error: ") and "Traceback" not in result.output
    assert french.stderr.startswith("erreur : ")


def test_the_runtime_without_its_state_folder_exits_2_in_one_sentence(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "client.federation.runtime", "--runtime-api-address", "127.0.0.1:9",
         "--insecure", "--state", str(tmp_path / "absent")],
        capture_output=True, text=True, timeout=60, check=False,
    )

    assert result.returncode == 2
    # French by default, as every command (issue 28); English with --lang en.
    assert result.stderr.strip() == (f"erreur : le dossier d'état {tmp_path / 'absent'} "
                                     "n'existe pas; indiquez le state-dir du centre.")


def test_a_task_process_gets_its_token_on_stdin_not_its_command_line(tmp_path: Path) -> None:
    argv = task_argv("127.0.0.1:9094", tmp_path, insecure=True, root_certificates=None)

    assert argv[:4] == [sys.executable, "-P", "-m", "client.federation.runtime_task"]
    assert "--token" not in argv and argv[argv.index("--state") + 1] == str(tmp_path)


def test_the_approved_list_reads_at_80_columns(app_folder: Path, tmp_path: Path) -> None:
    digest = _fab(app_folder).hash_str
    runner.invoke(app, ["app", "approve", digest, "--state", str(tmp_path), "--note",
                        "revue par l'équipe TI, version 0.1.0 du 7 décembre 2026"])

    listed = runner.invoke(app, ["app", "list", "--state", str(tmp_path)],
                           env={"COLUMNS": "80"})

    rows = [line for line in listed.stdout.splitlines() if line.startswith("│")]
    assert all(len(line) <= 80 and line.endswith("│") for line in rows), listed.stdout
    notes = " ".join(line.split("│")[3].strip() for line in rows)
    assert "version 0.1.0 du 7 décembre 2026" in notes  # folded, never cut
