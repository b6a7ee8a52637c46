"""``perseverance-server audit verify RUN_DIR``: the ministry's log against its key, and in
a simulation run folder every centre's records against theirs and the ministry's anchors.
The first test runs a real federation (real ClientApp and ServerApp over
``simulations.direct_grid``) and checks its records as written."""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from flwr.supercore.logger import FLOWER_LOGGER
from typer.testing import CliRunner

from client.federation.app import app as client_app
from client.privacy.ledger import LEDGER_FILE
from common import workdirs
from common.config import RunConfig
from common.records.key import GENESIS, chain_mac, key_id, load_or_create_key, read_key
from common.records.trail import read_trail
from server.cli import app
from server.federation.audit_log import KEY_ENV, ministry_key_path
from server.federation.run import run_federation
from simulations.direct_grid import DirectGrid
from simulations.network import generate_network, write_network
from tests.client.privacy.test_records import serve_rounds

FLOWER_LOGGER.setLevel(logging.WARNING)
DELTA = 1e-6


@pytest.fixture(autouse=True)
def _ministry_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    key = tmp_path / "ministry-secrets" / "ministry.key"
    monkeypatch.setenv(KEY_ENV, str(key))
    return key


def verify(run_dir: Path) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["--lang", "en", "audit", "verify", str(run_dir)])
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """A simulation run folder: two centres, three rounds, their heads in the ministry's log."""
    run = tmp_path / "run"
    for node, centre in enumerate(("centre-0", "centre-1")):
        serve_rounds(run / "state" / centre, run, rounds=3, node=node)
    return run


def test_a_real_federation_s_records_verify_then_a_cut_tail_is_named(tmp_path: Path) -> None:
    """The one federation of ``make test-fast`` (the others are marked ``federation`` or
    ``slow``): three centres, two rounds, in process."""
    data = tmp_path / "centres"
    write_network(generate_network(centres=3, students=1500, seed=5), data)
    # Seeded noise, which the centres' policy accepts: with fresh noise a small centre (34
    # and 57 training records) is refused on its noisy released size in 76 % of runs.
    (data / "policy.toml").write_text("[privacy]\nallow_replayable_noise = true\n",
                                      encoding="utf-8")
    run = tmp_path / "run"
    config = RunConfig.from_flat({"scenario": "records-test", "rounds": 2, "local_epochs": 1,
                                  "min_centres": 2, "training.hidden": "16",
                                  "run_dir": str(run), "data_dir": str(data),
                                  "min_centres_wait": 0.3, "privacy.reproducible_noise": True})
    run_federation(DirectGrid(client_app, 3, dict(config.to_flat()), 1), config)
    rounds = [json.loads(line) for line in (run / "rounds.jsonl").open(encoding="utf-8")]
    assert [r["updates"] for r in rounds] == [3, 3]  # every centre took part
    # Every reply carried its centre's records head; the ministry wrote it down.
    anchors = [e for e in read_trail(run / "audit.jsonl") if e["event"] == "centre_records"]
    assert {e["phase"] for e in anchors} == {"train", "evaluate"}
    assert {e["round"] for e in anchors} == {1, 2}

    code, out, err = verify(run)
    assert (code, err) == (0, ""), err
    assert f"{len(anchors)} centre anchors" in out and "Records intact" in out
    log = run / "state" / "centre-1" / "audit.jsonl"
    lines = log.read_text().splitlines()
    log.write_text("\n".join(lines[:-3]) + "\n")
    code, _, err = verify(run)
    assert code == 4 and str(log) in err and "lines were deleted" in err


def test_intact_run_folder_exits_0(run_dir: Path) -> None:
    code, out, err = verify(run_dir)
    assert (code, err) == (0, "")
    assert "6 centre anchors" in out and out.count("3 ministry anchors checked") == 2


def test_an_edited_ministry_line_exits_4_naming_it(run_dir: Path) -> None:
    log = run_dir / "audit.jsonl"
    lines = log.read_text().splitlines()
    lines[1] = lines[1].replace('"round": 2', '"round": 1')
    log.write_text("\n".join(lines) + "\n")

    code, _, err = verify(run_dir)
    assert code == 4 and err.startswith(f"error: the records were altered: {log}, line 2: its "
                                        "MAC does not match")


def test_a_centre_s_deleted_rows_exit_4(run_dir: Path) -> None:
    ledger = run_dir / "state" / "centre-1" / LEDGER_FILE
    db = sqlite3.connect(ledger)
    db.executescript("DROP TRIGGER releases_no_delete; DELETE FROM releases;")
    db.close()

    code, _, err = verify(run_dir)
    assert code == 4 and f"{ledger}, row 1: missing" in err


def test_a_deleted_centre_folder_exits_4(run_dir: Path) -> None:
    for path in sorted((run_dir / "state" / "centre-0").iterdir()):
        path.unlink()
    (run_dir / "state" / "centre-0").rmdir()

    code, _, err = verify(run_dir)
    assert code == 4 and "centre-0: no centre folder holds its records" in err


def test_bad_input_exits_2(run_dir: Path, _ministry_key: Path) -> None:
    assert verify(run_dir.parent / "nowhere")[0] == 2
    signer = key_id(read_key(_ministry_key) or b"")
    _ministry_key.unlink()
    code, _, err = verify(run_dir)
    assert code == 2 and f"signed with the key {signer}, but there is no key at" in err
    assert f"(${KEY_ENV})" in err and "altered" not in err


def test_a_foreign_ministry_key_exits_2_naming_both_keys(run_dir: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch,
                                                        _ministry_key: Path) -> None:
    signer = key_id(read_key(_ministry_key) or b"")
    foreign = tmp_path / "another-ministry.key"
    monkeypatch.setenv(KEY_ENV, str(foreign))
    mine = key_id(load_or_create_key(foreign))

    code, _, err = verify(run_dir)

    assert code == 2 and "altered" not in err, err
    assert f"The key at {foreign} ({mine}) is not the one that signed" in err
    assert f"({signer})" in err
    french = CliRunner().invoke(app, ["audit", "verify", str(run_dir)])
    assert french.exit_code == 2
    assert french.stderr.startswith(f"erreur : La clé à {foreign} ({mine}) n'est pas celle qui "
                                    "a signé"), french.stderr


def test_a_foreign_centre_key_exits_2(run_dir: Path) -> None:
    key = run_dir / "state" / "centre-1" / "records.key"
    key.unlink()
    load_or_create_key(key)

    code, _, err = verify(run_dir)

    assert code == 2 and f"The key at {key}" in err and "(--key)" in err, err


def test_a_line_naming_another_key_among_lines_of_the_key_exits_4(run_dir: Path) -> None:
    log = run_dir / "audit.jsonl"
    lines = log.read_text().splitlines()
    entry = json.loads(lines[1])
    entry["key_id"] = "0123456789abcdef"
    lines[1] = json.dumps(entry, sort_keys=True)
    log.write_text("\n".join(lines) + "\n")

    code, _, err = verify(run_dir)

    assert code == 4 and f"{log}, line 2: it names the key 0123456789abcdef" in err, err


def _strip_key_ids(log: Path, key: bytes) -> None:
    """Rewrite a log as it was written before key ids (same key, no ``key_id``)."""
    previous, lines = GENESIS, []
    for line in log.read_text().splitlines():
        entry = json.loads(line)
        entry.pop("key_id"), entry.pop("mac")
        entry["prev"] = previous
        content = json.dumps(entry, sort_keys=True, default=str, allow_nan=False)
        entry["mac"] = previous = chain_mac(key, previous, content)
        lines.append(json.dumps(entry, sort_keys=True))
    log.write_text("\n".join(lines) + "\n")


def test_a_log_without_key_ids_verifies_and_a_wrong_key_is_named_not_an_edit(
    run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, _ministry_key: Path,
) -> None:
    _strip_key_ids(run_dir / "audit.jsonl", read_key(_ministry_key) or b"")
    assert verify(run_dir)[0] == 0
    monkeypatch.setenv(KEY_ENV, str(tmp_path / "another.key"))
    load_or_create_key(tmp_path / "another.key")

    code, _, err = verify(run_dir)

    assert code == 2 and "verifies none of the 6 keyed lines" in err, err
    assert "written before key ids" in err


def test_the_key_and_flower_s_home_are_the_same_from_any_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("FLWR_HOME", raising=False)
    monkeypatch.delenv(KEY_ENV, raising=False)
    seen = set()
    for folder in (tmp_path, Path("/")):
        monkeypatch.chdir(folder)
        seen.add((workdirs.flwr_home(), ministry_key_path()))
    project = Path(__file__).resolve().parents[2]
    assert seen == {(project / ".work" / "flwr-home",
                     project / ".work" / "flwr-home" / "perseverance" / "ministry-records.key")}
    monkeypatch.setenv("FLWR_HOME", str(tmp_path / "flwr"))
    assert ministry_key_path() == tmp_path / "flwr" / "perseverance" / "ministry-records.key"


def test_the_console_script_exits_4_on_tampering(run_dir: Path) -> None:
    command = [sys.executable, "-c", "from server.cli import main; main()", "audit", "verify",
               str(run_dir)]
    assert subprocess.run(command, capture_output=True, env=os.environ, check=False,
                          timeout=120).returncode == 0
    log = run_dir / "state" / "centre-0" / "audit.jsonl"
    log.write_text(log.read_text().replace('"round": 1', '"round": 4', 1))
    done = subprocess.run(command, capture_output=True, text=True, env=os.environ,
                          check=False, timeout=120)
    # French by default: the check's sentences come from the catalogue.
    assert done.returncode == 4 and f"{log}, ligne 1 : son MAC ne correspond pas à son " \
        "contenu" in " ".join(done.stderr.split())
