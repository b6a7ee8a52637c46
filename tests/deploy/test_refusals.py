"""The real ministry side on loopback (SuperLink with TLS and SuperNode authentication,
nginx in front) refuses what it must: unregistered keys, SuperNodes that do not trust
our CA, plaintext, and the Control API on the centres' listener."""

from __future__ import annotations

import http.client
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from server.deployment import enrolment
from server.deployment import programs as deployment
from server.deployment.pki import PkiPaths
from server.deployment.processes import (
    ManagedProcess,
    ProcessGroup,
    free_ports,
    group_alive,
    offline_environment,
    wait_until,
)
from simulations.loopback.launcher import _flwr, nodes_online
from simulations.loopback.sides import HOST, Ministry, start_ministry

pytestmark = pytest.mark.slow
REFUSAL_TIMEOUT = 60.0


@dataclass
class RunningMinistry:
    group: ProcessGroup
    ministry: Ministry
    paths: PkiPaths
    env: dict[str, str]
    flwr_home: Path


@pytest.fixture(scope="module")
def running(nginx: str, pki_dir: PkiPaths, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[RunningMinistry]:
    tmp = tmp_path_factory.mktemp("ministry")
    (tmp / "state").mkdir()
    flwr_home = tmp / "flwr-home"
    env = offline_environment({"FLWR_HOME": str(flwr_home)})
    group = ProcessGroup(tmp / "logs", env)
    try:
        superlink, centres, operator, tunnel = free_ports(4)
        ministry = Ministry(pki_dir, tmp / "state", superlink, centres, operator,
                            tmp / "nginx", tunnel)
        start_ministry(group, ministry)  # the tunnel writes OPERATOR_CONNECTION
        enrolment.write_connection(flwr_home, "centres-listener", ministry.fleet_address,
                                   pki_dir.ca_certificate, default=False)
        # The operator listener straight from the flwr CLI: server-side TLS only.
        enrolment.write_connection(flwr_home, "operator-listener", ministry.operator_address,
                                   pki_dir.ca_certificate, default=False)
        enrolment.enrol("css-registered", pki_dir.centre_public_key("css-registered"),
                        tmp / "inventory.json", deployment.OPERATOR_CONNECTION, env)
        yield RunningMinistry(group, ministry, pki_dir, env, flwr_home)
    finally:
        group.stop_all()
    assert not [p.name for p in group.processes if group_alive(p.pid)], "servers left behind"


def _supernode(running: RunningMinistry, name: str, *, key: str | None, ca: bool = True,
               insecure: bool = False, address: str | None = None) -> ManagedProcess:
    argv = [enrolment.flower_executable("flower-supernode"),
            "--superlink", address or running.ministry.fleet_address,
            "--isolation", "process", "--host", HOST, "--port", str(free_ports(1)[0]),
            "--max-retries", "2", "--max-wait-time", "30"]
    if key:
        argv += ["--auth-supernode-private-key", str(running.paths.centre_private_key(key))]
    if ca:
        argv += ["--root-certificates", str(running.paths.ca_certificate)]
    if insecure:
        argv += ["--insecure"]
    return running.group.start(name, argv, expect_exit=True)


def _refused(process: ManagedProcess) -> str:
    process.popen.wait(timeout=REFUSAL_TIMEOUT)
    assert process.exited() not in (None, 0)
    return process.log_path.read_text()


def _https(running: RunningMinistry, address: str, method: str, path: str,
           client: tuple[Path, Path] | None = None) -> int:
    host, port = address.rsplit(":", 1)
    context = ssl.create_default_context(cafile=str(running.paths.ca_certificate))
    if client is not None:
        context.load_cert_chain(*map(str, client))
    connection = http.client.HTTPSConnection(host, int(port), context=context, timeout=10)
    try:
        connection.request(method, path, body=b"" if method == "POST" else None)
        return connection.getresponse().status
    finally:
        connection.close()


def test_a_registered_centre_connects_through_the_proxy(running: RunningMinistry) -> None:
    node = running.group.start("supernode-registered", deployment.supernode_argv(
        enrolment.flower_executable("flower-supernode"), running.ministry.fleet_address,
        running.paths.ca_certificate, running.paths.centre_private_key("css-registered"),
        HOST, free_ports(1)[0], ""))
    try:
        wait_until(lambda: nodes_online(running.env) == 1, timeout=60,
                   what="the registered SuperNode online", group=running.group, interval=1.0)
    finally:
        running.group.stop(node)


def test_a_supernode_with_an_unregistered_key_is_refused(running: RunningMinistry) -> None:
    log = _refused(_supernode(running, "supernode-stranger", key="css-stranger"))

    assert "Exit Code: 305" in log and "Failed to activate SuperNode" in log


def test_a_supernode_without_the_ca_certificate_is_refused(running: RunningMinistry) -> None:
    log = _refused(_supernode(running, "supernode-no-ca", key="css-registered", ca=False))

    assert "Exit Code: 305" in log and "CERTIFICATE_VERIFY_FAILED" in log


def test_a_plaintext_supernode_is_refused(running: RunningMinistry) -> None:
    log = _refused(_supernode(running, "supernode-plaintext", key=None, ca=False, insecure=True))

    assert "Exit Code: 305" in log and "400 Bad Request" in log


@pytest.mark.parametrize("which", ["fleet_address", "operator_address", "superlink_address"])
def test_plaintext_http_to_the_tls_ports_fails(running: RunningMinistry, which: str) -> None:
    host, port = getattr(running.ministry, which).rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        connection.request("GET", "/health")
        status = connection.getresponse().status
    except (http.client.HTTPException, ConnectionError):
        status = None  # the SuperLink drops the connection: no HTTP answer at all
    finally:
        connection.close()

    assert status in (None, 400)  # nginx: "The plain HTTP request was sent to HTTPS port"


def test_the_control_api_is_refused_on_the_centres_listener(running: RunningMinistry) -> None:
    through_centres = _flwr(["supernode", "list", "centres-listener"], running.env)
    through_operator = _flwr(["supernode", "list", deployment.OPERATOR_CONNECTION], running.env)

    assert through_centres.get("success") is False
    assert "404" in str(through_centres.get("error-message"))
    assert through_operator.get("success") is True


@pytest.mark.parametrize("path", [
    "/v1/control/list-runs",
    "/v1/fleet/../control/list-runs",
    "/v1/fleet/%2e%2e/control/list-runs",
    "/v1/runtime/get-run",
    "/docs",
])
def test_only_fleet_routes_reach_the_superlink_from_the_centres(
    running: RunningMinistry, path: str
) -> None:
    assert _https(running, running.ministry.fleet_address, "POST", path) == 404


def _operator(running: RunningMinistry) -> tuple[Path, Path]:
    name = running.ministry.operator
    return running.paths.operator_certificate(name), running.paths.operator_key(name)


def test_the_operator_listener_serves_no_fleet_route(running: RunningMinistry) -> None:
    assert _https(running, running.ministry.operator_address, "POST",
                  "/v1/fleet/pull-messages", client=_operator(running)) == 404
    assert _https(running, running.ministry.fleet_address, "GET", "/health") == 200


def test_refused_requests_never_reached_the_superlink(running: RunningMinistry) -> None:
    superlink_log = (running.group.log_dir / "superlink.log").read_text()

    assert "POST /v1/control/list-nodes" in superlink_log  # its access log is on
    for path in ("/v1/control/list-runs", "/v1/runtime/get-run", "/docs"):
        assert path not in superlink_log


def _foreign_operator(tmp: Path, signer: str, running: RunningMinistry) -> tuple[Path, Path]:
    """A well-formed client certificate the operator listener must refuse: signed by
    another CA, or by the federation's CA (which signs servers, not operators)."""
    from server.deployment import pki

    if signer == "federation-ca":
        ca_key, ca_cert = pki.load_ca(running.paths)
    else:
        ca_key, ca_cert = pki.generate_ca("Someone else's CA")
    key, cert = pki.issue_client_certificate(ca_key, ca_cert, "intruder")
    pki.write_secret(tmp / "intruder.key", pki._key_pem(key))
    pki.write_public(tmp / "intruder.crt", pki._pem(cert))
    return tmp / "intruder.crt", tmp / "intruder.key"


@pytest.mark.parametrize("signer", ["none", "another-ca", "federation-ca"])
def test_the_control_api_is_refused_without_an_operator_certificate(
    running: RunningMinistry, signer: str, tmp_path: Path
) -> None:
    client = None if signer == "none" else _foreign_operator(tmp_path, signer, running)

    status = _https(running, running.ministry.operator_address, "POST",
                    "/v1/control/list-nodes", client=client)

    assert status == 400  # nginx: no required / bad SSL certificate; never proxied


def test_the_flwr_cli_is_refused_straight_and_accepted_through_the_tunnel(
    running: RunningMinistry,
) -> None:
    straight = _flwr(["ls", "operator-listener"], running.env)
    tunnelled = _flwr(["ls", deployment.OPERATOR_CONNECTION], running.env)

    assert straight.get("success") is False
    assert "400" in str(straight.get("error-message")), straight
    assert tunnelled.get("success") is True, tunnelled
    assert _https(running, running.ministry.operator_address, "GET", "/health",
                  client=_operator(running)) == 200


def test_the_tunnel_runs_one_command_and_passes_its_exit_code(running: RunningMinistry) -> None:
    import subprocess
    import sys

    from simulations.loopback.sides import operator_tunnel_argv

    argv = operator_tunnel_argv(running.ministry)
    argv[argv.index("--listen") + 1] = f"{HOST}:{free_ports(1)[0]}"
    argv[argv.index("--connection") + 1] = "one-shot"
    flwr = enrolment.flower_executable("flwr")

    listed = subprocess.run([*argv, "--", flwr, "ls", "one-shot", "--format", "json"],
                            capture_output=True, text=True, env=running.env, timeout=120)
    failed = subprocess.run([*argv, "--", sys.executable, "-c", "raise SystemExit(9)"],
                            capture_output=True, text=True, env=running.env, timeout=120)

    assert listed.returncode == 0 and '"success": true' in listed.stdout, listed.stderr
    assert failed.returncode == 9


def _node_status(running: RunningMinistry, node_id: int) -> str:
    answer = _flwr(["supernode", "list", deployment.OPERATOR_CONNECTION], running.env)
    nodes = answer.get("nodes", [])
    assert isinstance(nodes, list), answer
    return next((str(n.get("status")) for n in nodes
                 if isinstance(n, dict) and str(n.get("node-id")) == str(node_id)), "absent")


def test_a_revoked_centre_is_refused(running: RunningMinistry) -> None:
    from typer.testing import CliRunner

    from server.cli import app

    inventory = running.flwr_home.parent / "inventory.json"
    entry = enrolment.enrol("css-revoked", running.paths.centre_public_key("css-revoked"),
                            inventory, deployment.OPERATOR_CONNECTION, running.env)
    argv = deployment.supernode_argv(
        enrolment.flower_executable("flower-supernode"), running.ministry.fleet_address,
        running.paths.ca_certificate, running.paths.centre_private_key("css-revoked"),
        HOST, free_ports(1)[0], "")
    node = running.group.start("supernode-revoked", [*argv, "--max-retries", "2"],
                               expect_exit=True)
    wait_until(lambda: _node_status(running, entry.node_id) == "online", timeout=60,
               what="the centre's SuperNode online", group=running.group, interval=1.0)

    superlink_log = running.group.log_dir / "superlink.log"
    seen = len(superlink_log.read_text())
    result = CliRunner(env={"FLWR_HOME": str(running.flwr_home)}).invoke(
        app, ["pki", "revoke-centre", "css-revoked", "--dir", str(running.paths.root),
              "--inventory", str(inventory)])

    assert result.exit_code == 0, result.output
    # The running SuperNode is refused (401) at its next request and stops.
    node.popen.wait(timeout=REFUSAL_TIMEOUT)
    assert '"POST /v1/fleet/pull-messages HTTP/1.1" 401' in superlink_log.read_text()[seen:]
    assert _node_status(running, entry.node_id) in ("unregistered", "absent")
    again = _refused(_supernode(running, "supernode-revoked-again", key="css-revoked"))
    assert "Exit Code: 305" in again, again
    revoked = next(e for e in enrolment.read_inventory(inventory) if e.centre == "css-revoked")
    assert revoked.revoked_at and revoked.node_id == entry.node_id
    with pytest.raises(enrolment.EnrolmentError, match="revoked"):
        enrolment.enrol("css-revoked", running.paths.centre_public_key("css-revoked"),
                        inventory, deployment.OPERATOR_CONNECTION, running.env)


def test_a_renewed_proxy_certificate_is_served_after_a_reload(running: RunningMinistry) -> None:
    """Last in this module: it replaces the servers' keys of the module's PKI."""
    import os
    import signal

    from cryptography import x509

    from server.deployment import pki

    host, port = running.ministry.fleet_address.rsplit(":", 1)

    def served() -> bytes:
        return ssl.PEM_cert_to_DER_cert(ssl.get_server_certificate((host, int(port))))

    before = served()
    pki.renew_server(running.paths.root)
    renewed = x509.load_pem_x509_certificate(running.paths.proxy_certificate.read_bytes())
    nginx = next(p for p in running.group.processes if p.name == "proxy")
    os.kill(nginx.pid, signal.SIGHUP)  # nginx re-reads its keys; the SuperLink restarts

    wait_until(lambda: served() != before, timeout=30, what="nginx serving the renewed key",
               group=running.group, interval=0.5)
    assert served() == renewed.public_bytes(serialization.Encoding.DER)
    assert _https(running, running.ministry.fleet_address, "GET", "/health") == 200
    assert _flwr(["ls", deployment.OPERATOR_CONNECTION], running.env).get("success") is True
