"""``perseverance-server``: exit codes of the errors a user can cause."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from common.errors import ExitCode
from server.cli import app
from simulations.cli import app as sim_app

runner = CliRunner()


def test_pki_init_then_add_centre(tmp_path: Path) -> None:
    assert runner.invoke(app, ["pki", "init", "--dir", str(tmp_path)]).exit_code == 0

    result = runner.invoke(app, ["pki", "add-centre", "css-a", "--dir", str(tmp_path)])

    assert result.exit_code == 0, result.output
    assert "SHA256:" in result.output
    assert (tmp_path / "centres" / "css-a" / "css-a.key").is_file()


def test_add_centre_twice_exits_3_and_keeps_the_key(tmp_path: Path) -> None:
    runner.invoke(app, ["pki", "add-centre", "css-a", "--dir", str(tmp_path)])
    key = (tmp_path / "centres" / "css-a" / "css-a.key").read_bytes()

    again = runner.invoke(app, ["pki", "add-centre", "css-a", "--dir", str(tmp_path)])
    forced = runner.invoke(app, ["pki", "add-centre", "css-a", "--dir", str(tmp_path), "--force"])

    assert again.exit_code == ExitCode.PKI and "--force" in again.output
    assert forced.exit_code == 0
    assert (tmp_path / "centres" / "css-a" / "css-a.key").read_bytes() != key


def test_a_bad_centre_name_exits_3(tmp_path: Path) -> None:
    result = runner.invoke(app, ["pki", "add-centre", "../x", "--dir", str(tmp_path)])

    assert result.exit_code == ExitCode.PKI


def test_enrol_without_a_key_exits_4(tmp_path: Path) -> None:
    result = runner.invoke(app, ["--lang", "en", "enrol", "css-a", "--dir", str(tmp_path)])

    assert result.exit_code == ExitCode.ENROLMENT
    assert "does not exist" in result.output


def test_dev_federation_with_an_empty_data_folder_exits_5(tmp_path: Path) -> None:
    result = runner.invoke(sim_app, ["dev-federation", "--data", str(tmp_path),
                                 "--out", str(tmp_path / "run"), "--work", str(tmp_path / "w")])

    assert result.exit_code == ExitCode.LAUNCHER_INPUT
    assert "ne contient aucun fichier *.parquet ou *.csv" in result.output


def test_dev_federation_refuses_an_unknown_run_config_key(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "css-a.csv").write_text("x\n")

    result = runner.invoke(sim_app, ["dev-federation", "--data", str(data), "--set", "nope=1",
                                 "--out", str(tmp_path / "run"), "--work", str(tmp_path / "w")])

    assert result.exit_code == ExitCode.LAUNCHER_INPUT
    assert "Clé de configuration inconnue « nope »" in result.output


def test_help_documents_the_exit_codes() -> None:
    result = runner.invoke(app, ["--lang", "en", "--help"])
    aide = runner.invoke(app, ["--lang", "fr", "--help"])

    assert "3 PKI" in result.output and "130 interrupted" in result.output
    assert "3 ICP" in aide.output and "130 interrompu" in aide.output


def test_pki_add_operator_renew_server_and_revoke_an_unknown_centre(tmp_path: Path) -> None:
    runner.invoke(app, ["pki", "init", "--dir", str(tmp_path)])
    proxy_key = (tmp_path / "proxy.key").read_bytes()

    added = runner.invoke(app, ["pki", "add-operator", "jdoe", "--dir", str(tmp_path)])
    renewed = runner.invoke(app, ["pki", "renew-server", "--dir", str(tmp_path)])
    revoked = runner.invoke(app, ["--lang", "en", "pki", "revoke-centre", "css-x", "--dir",
                                  str(tmp_path)])

    assert added.exit_code == 0 and (tmp_path / "operators" / "jdoe" / "jdoe.crt").is_file()
    assert renewed.exit_code == 0 and (tmp_path / "proxy.key").read_bytes() != proxy_key
    assert revoked.exit_code == ExitCode.ENROLMENT and "not enrolled" in revoked.output


def test_operator_tunnel_without_credentials_exits_2(tmp_path: Path) -> None:
    result = runner.invoke(app, ["operator-tunnel", "--proxy", "127.0.0.1:1",
                                 "--dir", str(tmp_path)])

    assert result.exit_code == 2 and "--operator" in result.output


def test_enrol_without_an_open_tunnel_says_the_superlink_was_not_reached_and_exits_8(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    import socket

    from server.deployment.enrolment import write_connection

    pki_dir, flwr_home = tmp_path / "pki", tmp_path / "flwr-home"
    runner.invoke(app, ["pki", "init", "--dir", str(pki_dir)])
    runner.invoke(app, ["pki", "add-centre", "css-a", "--dir", str(pki_dir)])
    monkeypatch.setenv("FLWR_HOME", str(flwr_home))
    never_configured = runner.invoke(app, ["enrol", "css-a", "--dir", str(pki_dir)])
    with socket.socket() as probe:  # a port where no tunnel listens (closed again)
        probe.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{probe.getsockname()[1]}"
    write_connection(flwr_home, "perseverance-operator", address, None)  # as the tunnel does

    closed = runner.invoke(app, ["enrol", "css-a", "--dir", str(pki_dir)])
    english = runner.invoke(app, ["--lang", "en", "enrol", "css-a", "--dir", str(pki_dir)])

    assert closed.exit_code == ExitCode.UNREACHABLE == 8, closed.output
    assert closed.output.startswith("erreur : Le SuperLink n'a pas pu être joint par la "
                                    f"connexion flwr perseverance-operator ({address})")
    assert "perseverance-server operator-tunnel --proxy" in closed.output
    assert "-- perseverance-server enrol css-a" in closed.output
    assert "refusé" not in closed.output
    assert english.exit_code == 8 and "The SuperLink could not be reached" in english.output
    assert never_configured.exit_code == 8 and "non configurée dans" in never_configured.output
    assert not (pki_dir / "inventory.json").exists()
