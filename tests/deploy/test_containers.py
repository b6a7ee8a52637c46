"""The containers' files in step with the loopback launcher, which runs the same programs
with the same flags (the images themselves are built by `make images`, with podman)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tomllib
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
import yaml

from server.deployment import programs as deployment
from server.deployment import proxy
from server.deployment.pki import SUPERLINK_NAMES, PkiPaths

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
OFFLINE = {"FLWR_TELEMETRY_ENABLED": "0", "FLWR_DISABLE_UPDATE_CHECK": "1",
           "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1"}


def _compose(side: str) -> dict[str, Any]:
    return dict(yaml.safe_load((DEPLOY / side / "compose.yaml").read_text()))


def _services(side: str) -> dict[str, Any]:
    return dict(_compose(side)["services"])


def test_every_image_starts_from_a_base_given_as_a_build_argument() -> None:
    """No image is pulled from a registry: each starts from a base made here from
    Debian's archive (deploy/images/make-base.sh), given as a build argument."""
    dockerfiles = sorted(DEPLOY.rglob("*.Dockerfile"))
    assert len(dockerfiles) == 4
    for dockerfile in dockerfiles:
        text = dockerfile.read_text()
        froms = re.findall(r"^FROM (\S+)", text, re.M)
        assert froms and all(f in ("${BASE_IMAGE}", "${BUILD_IMAGE}") for f in froms), dockerfile
        assert re.search(r"^ARG BASE_IMAGE=localhost/", text, re.M), dockerfile
        assert "--no-index" in text or "pip" not in text, dockerfile  # the wheelhouse only


def test_the_images_pin_flower_and_torch_like_pyproject() -> None:
    pyproject = tomllib.loads((DEPLOY.parent / "pyproject.toml").read_text())
    dependencies = pyproject["project"]["dependencies"]
    lock = (DEPLOY / "images" / "requirements.lock").read_text().splitlines()
    torch_pin = next(d for d in dependencies if d.startswith("torch"))

    assert f"flwr[simulation]=={version('flwr')}" in dependencies
    assert f"flwr=={version('flwr')}" in lock
    assert any(line.split("+")[0] == torch_pin for line in lock)  # torch==2.13.0+cpu


def test_superlink_runs_with_the_launchers_flags() -> None:
    expected = deployment.superlink_argv(
        "flower-superlink", PkiPaths(Path("/pki")), Path("/state/superlink.db"), "0.0.0.0", 8000
    )

    assert _services("ministry")["superlink"]["command"] == expected[1:]


def test_serverapp_executor_runs_with_the_launchers_flags() -> None:
    expected = deployment.serverapp_executor_argv(
        "flower-superexec", "superlink:8000", Path("/pki/ca.crt")
    )

    assert _services("ministry")["serverapp"]["command"] == expected[1:]


def test_supernode_runs_with_the_launchers_flags() -> None:
    command = _services("centre")["supernode"]["command"]
    expected = deployment.supernode_argv(
        "flower-supernode", "FLEET", Path("/pki/ca.crt"), Path("/keys/centre.key"), "0.0.0.0",
        9094, "NODE-CONFIG",
    )[1:]

    assert [c for c in command if c.startswith("--")] == [e for e in expected if e.startswith("--")]
    fixed = {"--root-certificates", "--auth-supernode-private-key", "--isolation", "--host",
             "--port"}
    for flag in fixed:
        assert command[command.index(flag) + 1] == expected[expected.index(flag) + 1]
    node_config = command[command.index("--node-config") + 1]
    assert tuple(re.findall(r"(\S+?)=", node_config)) == deployment.NODE_CONFIG_KEYS
    assert "state-dir='/state'" in node_config and "data-path='/data/" in node_config


def test_the_centres_own_clientapp_runtime_runs_with_the_launchers_flags() -> None:
    expected = deployment.clientapp_runtime_argv(
        ("perseverance-clientapp",), "supernode:9094", Path("/state"))
    clientapp = _services("centre")["clientapp"]
    scripts = tomllib.loads((DEPLOY.parent / "pyproject.toml").read_text())["project"]["scripts"]

    assert clientapp["entrypoint"] == expected[:1] and clientapp["command"] == expected[1:]
    assert scripts["perseverance-clientapp"] == "client.federation.runtime:main"
    assert "ledger:/state" in clientapp["volumes"]  # the approved list outlives the container


@pytest.mark.parametrize("side,service", [
    ("ministry", "superlink"), ("ministry", "serverapp"), ("ministry", "operator"),
    ("centre", "supernode"), ("centre", "clientapp"),
])
def test_every_flower_program_runs_offline(side: str, service: str) -> None:
    environment = _services(side)[service]["environment"]

    assert OFFLINE.items() <= dict(environment).items()


def test_centre_data_are_read_only_and_the_ledger_is_a_volume() -> None:
    centre = _compose("centre")
    clientapp = centre["services"]["clientapp"]

    assert any(v.endswith(":/data:ro") for v in clientapp["volumes"])
    assert "ledger:/state" in clientapp["volumes"] and "ledger" in centre["volumes"]
    assert clientapp["networks"] == ["runtime"] and centre["networks"]["runtime"]["internal"]
    assert not any("/data" in v for v in centre["services"]["supernode"]["volumes"])


def _mounts(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(host side, container side) of a service's bind mounts (named volumes left out)."""
    pairs = [re.fullmatch(r"(.*):(/[^:]*)(?::ro)?", v) for v in service.get("volumes", [])]
    found = [(m.group(1), m.group(2)) for m in pairs if m is not None]
    return [(host, inside) for host, inside in found if "/" in host or host.startswith("$")]


def test_no_container_gets_a_ca_key_the_pki_folder_or_another_service_s_key() -> None:
    own_key = {"superlink": "/superlink.key", "proxy": "/proxy.key",
               "operator": "/operator.key", "console": "/console.key"}
    for side in ("ministry", "centre"):
        for name, service in _services(side).items():
            for host, _inside in _mounts(service):
                assert "ca.key" not in host and "operator-ca.key" not in host, (name, host)
                assert not host.rstrip("/").endswith(("pki", "PKI_DIR:-./pki}")), (name, host)
                if host.endswith(".key"):
                    expected = own_key.get(name, "/centre.key")
                    assert host.endswith(expected) or name in ("operator", "console"), (
                        name, host)
    ministry = _services("ministry")
    superlink_keys = [h for h, _ in _mounts(ministry["superlink"]) if h.endswith(".key")]
    proxy_keys = [h for h, _ in _mounts(ministry["proxy"]) if h.endswith(".key")]
    assert superlink_keys == ["${PKI_DIR:-./pki}/superlink.key"]
    assert proxy_keys == ["${PKI_DIR:-./pki}/proxy.key"]
    assert ministry["proxy"]["environment"]["TLS_CERTIFICATE_KEY"] == "/pki/proxy.key"


def test_the_operator_tools_reach_the_control_api_through_the_tunnel() -> None:
    operator = _services("ministry")["operator"]
    entrypoint = operator["entrypoint"]

    assert entrypoint[:2] == ["perseverance-server", "operator-tunnel"]
    assert entrypoint[entrypoint.index("--proxy") + 1] == "proxy:9443"
    assert entrypoint[-1] == "--"
    inside = dict((b, a) for a, b in _mounts(operator))
    assert {"/credentials/operator.crt", "/credentials/operator.key", "/pki/ca.crt"} <= set(inside)


def test_the_operator_listener_is_not_published_on_every_interface() -> None:
    ministry = _compose("ministry")
    ports = ministry["services"]["proxy"]["ports"]

    operator = next(p for p in ports if p.endswith(":9443"))
    assert operator.startswith("${OPERATOR_BIND:-127.0.0.1}:")
    assert ministry["networks"]["backend"]["internal"] is True
    assert "ports" not in ministry["services"]["superlink"]


def test_proxy_container_and_launcher_fill_the_same_placeholders() -> None:
    environment = _services("ministry")["proxy"]["environment"]
    entrypoint = (DEPLOY / "ministry" / "proxy-entrypoint.sh").read_text()
    listed = re.search(r"VARIABLES='([^']*)'", entrypoint)

    assert listed is not None
    assert re.findall(r"\$\{(\w+)\}", listed.group(1)) == list(proxy.TEMPLATE_VARIABLES)
    assert set(environment) == set(proxy.TEMPLATE_VARIABLES)
    assert environment["SUPERLINK_TLS_NAME"] in SUPERLINK_NAMES
    assert environment["SUPERLINK_ADDRESS"] == "superlink:8000"
    assert "COPY deploy/nginx/perseverance.conf.template" in (
        DEPLOY / "ministry" / "proxy.Dockerfile").read_text()


@pytest.mark.skipif(shutil.which("envsubst") is None, reason="envsubst (gettext-base) missing")
def test_envsubst_renders_the_template_like_the_launcher() -> None:
    settings = proxy.ProxySettings("8443", "9443", "superlink:8000", "superlink",
                                   Path("/pki/proxy.crt"), Path("/pki/proxy.key"),
                                   Path("/pki/ca.crt"), Path("/pki/operator-ca.crt"))
    entrypoint = (DEPLOY / "ministry" / "proxy-entrypoint.sh").read_text()
    listed = re.search(r"VARIABLES='([^']*)'", entrypoint)
    assert listed is not None

    rendered = subprocess.run(
        ["envsubst", listed.group(1)], input=proxy.template_path().read_text(),
        capture_output=True, text=True, check=True,
        env={**os.environ, **settings.as_variables()},
    ).stdout

    assert rendered == proxy.render_site(settings)


def test_no_key_certificate_or_data_can_enter_a_build_context() -> None:
    for ignore in DEPLOY.rglob("*.Dockerfile.dockerignore"):
        assert ignore.read_text().splitlines()[-1] != "" and "*" in ignore.read_text()
    for dockerfile in DEPLOY.rglob("*.Dockerfile"):
        assert Path(f"{dockerfile}.dockerignore").is_file(), dockerfile
    assert "**/*.key" in (DEPLOY / "app.Dockerfile.dockerignore").read_text()
