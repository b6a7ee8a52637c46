"""Enrolment without a SuperLink: the inventory, the refusals made before asking, the
flwr connection profile and the config strings handed to Flower."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from server.deployment import enrolment, pki
from server.deployment import programs as deployment


@pytest.fixture
def centre_key(tmp_path: Path) -> Path:
    return pki.add_centre(tmp_path / "pki", "css-a").centre_public_key("css-a")


def _registrar(node_id: int, calls: list[str]):  # type: ignore[no-untyped-def]
    def register(public_key: Path, connection: str, centre: str, env: object = None) -> int:
        calls.append(centre)
        return node_id

    return register


def test_enrol_records_node_id_fingerprint_and_date(
    centre_key: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    monkeypatch.setattr(enrolment, "register_public_key", _registrar(42, calls))
    inventory = tmp_path / "inventory.json"

    entry = enrolment.enrol("css-a", centre_key, inventory, "op")

    assert calls == ["css-a"]
    assert enrolment.read_inventory(inventory) == [entry]
    assert entry.node_id == 42
    assert entry.fingerprint == pki.fingerprint(pki.load_public_key(centre_key.read_bytes()))
    assert entry.enrolled_at.endswith("+00:00")


def test_a_centre_is_enrolled_once(
    centre_key: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    monkeypatch.setattr(enrolment, "register_public_key", _registrar(7, calls))
    inventory = tmp_path / "inventory.json"
    enrolment.enrol("css-a", centre_key, inventory, "op")

    with pytest.raises(enrolment.EnrolmentError, match="already enrolled as node 7"):
        enrolment.enrol("css-a", centre_key, inventory, "op")
    with pytest.raises(enrolment.EnrolmentError, match="already enrolled for css-a"):
        enrolment.enrol("css-b", centre_key, inventory, "op")
    assert calls == ["css-a"]  # the SuperLink was never asked again


def test_an_invalid_public_key_is_refused_before_registration(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pub"
    bad.write_text("not a key\n")

    with pytest.raises(enrolment.EnrolmentError, match="not an OpenSSH public key"):
        enrolment.enrol("css-a", bad, tmp_path / "inventory.json", "op")


def test_a_refusal_by_the_superlink_is_one_sentence(
    centre_key: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_flwr = tmp_path / "flwr"
    fake_flwr.write_text(
        "#!/bin/sh\necho '{\"success\": false, \"error-message\": "
        "\"Using SuperLink\\\\n[code: 23] Public key already in use.\"}'\n"
    )
    fake_flwr.chmod(0o755)
    monkeypatch.setattr(enrolment, "flower_executable", lambda name: str(fake_flwr))

    with pytest.raises(enrolment.EnrolmentError, match=r"refused .*Public key already in use"):
        enrolment.register_public_key(centre_key, "op", "css-a")


def test_write_connection_keeps_other_connections(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text(
        '[superlink]\ndefault = "x"\n[superlink.x]\naddress = "a:1"\n'
    )
    ca = tmp_path / "ca.crt"
    ca.write_text("ca")

    enrolment.write_connection(tmp_path, "op", "127.0.0.1:9", ca)

    config = tomllib.loads((tmp_path / "config.toml").read_text())
    assert config["superlink"]["x"] == {"address": "a:1"}
    assert config["superlink"]["op"] == {"address": "127.0.0.1:9", "root-certificates": str(ca)}
    assert config["superlink"]["default"] == "op"


def test_config_strings_parse_back_with_flowers_parser() -> None:
    from flwr.common.config import parse_config_args

    text = deployment.config_string(
        {"data-path": "/d/a b.parquet", "rounds": 2, "privacy.epsilon": 3.0, "privacy.dp": True}
    )

    assert parse_config_args([text]) == {
        "data-path": "/d/a b.parquet", "rounds": 2, "privacy.epsilon": 3.0, "privacy.dp": True,
    }


def test_config_strings_refuse_quotes() -> None:
    with pytest.raises(ValueError, match="quote"):
        deployment.config_string({"data-path": "/d/o'brien.csv"})


def test_node_config_has_exactly_the_keys_the_client_reads(tmp_path: Path) -> None:
    from flwr.common.config import parse_config_args

    parsed = parse_config_args([deployment.node_config(tmp_path / "c.csv", tmp_path / "s")])

    assert tuple(parsed) == deployment.NODE_CONFIG_KEYS
    assert parsed["mapping-path"] == "" and parsed["data-path"] == str(tmp_path / "c.csv")
