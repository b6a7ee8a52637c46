"""The containers' files in step with the loopback launcher, which runs the same programs
with the same flags (the images themselves are built by `make images`, with podman)."""

from __future__ import annotations

import ipaddress
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
#: Where each side's containers find their SuperExec secret (Flower's SuperExec
#: authentication: the Runtime API gives tasks only to the executor holding it).
SECRET = Path("/secrets/superexec.secret")
#: The SuperNode's address on the centre's internal runtime network (its Runtime API).
RUNTIME_ADDRESS = "${CENTRE_RUNTIME_ADDRESS:-10.94.94.2}"


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
        "flower-superlink", PkiPaths(Path("/pki")), Path("/state/superlink.db"), "0.0.0.0", 8000,
        SECRET,
    )

    assert _services("ministry")["superlink"]["command"] == expected[1:]


def test_serverapp_executor_runs_with_the_launchers_flags() -> None:
    expected = deployment.serverapp_executor_argv(
        "flower-superexec", "superlink:8000", Path("/pki/ca.crt"), SECRET
    )

    assert _services("ministry")["serverapp"]["command"] == expected[1:]


def test_supernode_runs_with_the_launchers_flags() -> None:
    command = _services("centre")["supernode"]["command"]
    expected = deployment.supernode_argv(
        "flower-supernode", "FLEET", Path("/pki/ca.crt"), Path("/keys/centre.key"),
        RUNTIME_ADDRESS, 9094, "NODE-CONFIG", SECRET,
    )[1:]

    assert [c for c in command if c.startswith("--")] == [e for e in expected if e.startswith("--")]
    fixed = {"--root-certificates", "--auth-supernode-private-key", "--isolation", "--host",
             "--port", "--superexec-auth-secret-file"}
    for flag in fixed:
        assert command[command.index(flag) + 1] == expected[expected.index(flag) + 1]
    node_config = command[command.index("--node-config") + 1]
    assert tuple(re.findall(r"(\S+?)=", node_config)) == deployment.NODE_CONFIG_KEYS
    assert "state-dir='/state'" in node_config and "data-path='/data/" in node_config


def test_the_centres_own_clientapp_runtime_runs_with_the_launchers_flags() -> None:
    expected = deployment.clientapp_runtime_argv(
        ("perseverance-clientapp",), f"{RUNTIME_ADDRESS}:9094", Path("/state"), SECRET)
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
    assert ministry["networks"]["superlink"]["internal"] is True
    assert ministry["networks"]["operators"]["internal"] is True
    assert [n for n, s in ministry["services"].items() if "ports" in s] == ["proxy"]


def _on_network(side: str, network: str) -> set[str]:
    return {name for name, service in _services(side).items()
            if network in service.get("networks", [])}


def test_the_superlink_is_reached_only_by_the_proxy_and_its_serverapp_executor() -> None:
    """The SuperLink's one port serves the Control API too: only nginx (which demands an
    operator certificate for it) and the ServerApp executor share its network; the
    console and the operator tools go through the proxy's operator listener."""
    ministry = _services("ministry")

    assert _on_network("ministry", "superlink") == {"superlink", "serverapp", "proxy"}
    assert list(ministry["superlink"]["networks"]) == ["superlink"]
    assert _on_network("ministry", "operators") == {"proxy", "console", "operator"}
    for tool in ("console", "operator"):
        entrypoint = ministry[tool]["entrypoint"]
        assert entrypoint[entrypoint.index("--proxy") + 1] == "proxy:9443"


def test_the_runtime_apis_take_only_the_executor_holding_the_secret() -> None:
    """Flower's SuperExec authentication on both sides: the same secret file for the
    Runtime API's server and its one executor, mounted in no other service."""
    for side, server, executor in (("ministry", "superlink", "serverapp"),
                                   ("centre", "supernode", "clientapp")):
        services = _services(side)
        holders = {name: host for name, service in services.items()
                   for host, inside in _mounts(service) if inside == str(SECRET)}
        assert set(holders) == {server, executor}, side
        assert len(set(holders.values())) == 1, holders
        for name in (server, executor):
            command = services[name]["command"]
            assert command[command.index("--superexec-auth-secret-file") + 1] == str(SECRET)


def test_the_supernode_runtime_api_listens_only_on_the_internal_network() -> None:
    """The SuperNode is on two networks; its Runtime API binds its address on the
    internal one (a fixed address in the network's subnet), never 0.0.0.0."""
    centre = _compose("centre")
    supernode = centre["services"]["supernode"]
    command = supernode["command"]
    host = command[command.index("--host") + 1]

    assert host == RUNTIME_ADDRESS == supernode["networks"]["runtime"]["ipv4_address"]
    assert centre["networks"]["runtime"]["internal"] is True
    subnet = centre["networks"]["runtime"]["ipam"]["config"][0]["subnet"]
    default_address = re.fullmatch(r"\$\{\w+:-(.*)\}", host)
    default_subnet = re.fullmatch(r"\$\{\w+:-(.*)\}", subnet)
    assert default_address and default_subnet
    assert ipaddress.ip_address(default_address.group(1)) in ipaddress.ip_network(
        default_subnet.group(1))
    assert _on_network("centre", "runtime") == {"supernode", "clientapp"}
    assert "ports" not in supernode and "egress" not in centre["services"]["clientapp"]["networks"]


@pytest.mark.parametrize("side,service", [
    ("ministry", "superlink"), ("ministry", "serverapp"), ("ministry", "proxy"),
    ("ministry", "console"), ("ministry", "operator"),
    ("centre", "supernode"), ("centre", "clientapp"),
])
def test_every_service_is_hardened(side: str, service: str) -> None:
    """No capability, no privilege gain, a read-only root with a tmpfs for what it
    writes, and memory and process limits."""
    spec = _services(side)[service]

    assert spec["cap_drop"] == ["ALL"] and "cap_add" not in spec
    assert spec["security_opt"] == ["no-new-privileges:true"]
    assert spec["read_only"] is True and any(t.startswith("/tmp:") for t in spec["tmpfs"])
    assert re.fullmatch(r"\d+[mg]", spec["mem_limit"])
    assert 0 < spec["pids_limit"] <= 256
    assert "privileged" not in spec and "user" not in spec  # the image's uid 49999
    flwr_home = dict(spec.get("environment", {})).get("FLWR_HOME", "/tmp/")
    assert flwr_home.startswith(("/tmp/", "/operator/")), flwr_home  # writable there


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


def test_only_the_records_keeper_holds_the_ministry_s_records_key() -> None:
    """The ServerApp executor runs whatever app an operator submits: it gets the records
    keeper's socket, never the key's volume or path; the keeper has the key and no
    network; the operator tools read it (audit verify) read-only."""
    services = _compose("ministry")["services"]
    holders = sorted(name for name, spec in services.items()
                     if any(str(v).startswith("ministry-key:") for v in spec.get("volumes", []))
                     or "PERSEVERANCE_MINISTRY_KEY" in (spec.get("environment") or {}))
    assert holders == ["operator", "records-keeper"], holders
    assert "ministry-key:/ministry-key:ro" in services["operator"]["volumes"]
    keeper, executor = services["records-keeper"], services["serverapp"]
    assert keeper["network_mode"] == "none" and "networks" not in keeper
    assert keeper["entrypoint"][:2] == ["perseverance-server", "records-keeper"]
    socket = keeper["entrypoint"][keeper["entrypoint"].index("--socket") + 1]
    assert executor["environment"]["PERSEVERANCE_RECORDS_KEEPER"] == socket
    shared = {v.split(":")[0] for v in keeper["volumes"]} & {
        v.split(":")[0] for v in executor["volumes"]}
    assert shared == {"runs", "keeper-socket"}, shared
