"""Operator certificates on the real nginx of the operator listener: revocable (`pki
revoke-operator` writes the operator CA's CRL, which nginx checks: a certificate works,
is revoked, and is then refused; the others keep working; revoking needs the CA key),
and a read-only one (the console's) may only list the SuperLink's nodes and runs."""

from __future__ import annotations

import http.client
import socket
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from typer.testing import CliRunner

from common.errors import ExitCode
from server.cli import app
from server.deployment import pki, proxy
from server.deployment.processes import ProcessGroup, free_ports, wait_until

runner = CliRunner()


@pytest.fixture()
def listener(nginx: str, tmp_path: Path) -> Iterator[dict[str, Any]]:
    paths = pki.init_pki(tmp_path / "pki")
    for name in ("alice", "bob"):
        pki.add_operator(paths.root, name)
    pki.add_operator(paths.root, "console", read_only=True)
    centres, operator, upstream, console = free_ports(4)
    settings = proxy.ProxySettings(
        centres_listen=f"127.0.0.1:{centres}", operator_listen=f"127.0.0.1:{operator}",
        superlink_address=f"127.0.0.1:{upstream}", superlink_tls_name="localhost",
        certificate=paths.proxy_certificate, certificate_key=paths.proxy_key,
        ca_certificate=paths.ca_certificate,
        operator_ca_certificate=paths.operator_ca_certificate,
        console_address=f"127.0.0.1:{console}")
    prefix = tmp_path / "nginx"
    main = proxy.write_config(prefix, settings)
    group = ProcessGroup(tmp_path / "logs", None)
    try:
        group.start("proxy", proxy.nginx_command(prefix, main))
        wait_until(lambda: _open(operator), timeout=20, what="nginx", group=group)
        yield {"paths": paths, "port": operator, "prefix": prefix, "main": main}
    finally:
        group.stop_all()


def _open(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def _status(listener: dict[str, Any], name: str | None, path: str = "/nowhere") -> int:
    """The status the operator listener answers (for the default route, which does not
    exist: 404 once the client certificate is accepted; 400 when nginx refuses it)."""
    paths: pki.PkiPaths = listener["paths"]
    context = ssl.create_default_context(cafile=str(paths.ca_certificate))
    if name is not None:
        context.load_cert_chain(str(paths.operator_certificate(name)),
                                str(paths.operator_key(name)))
    connection = http.client.HTTPSConnection("127.0.0.1", listener["port"], context=context,
                                             timeout=10)
    try:
        connection.request("POST" if path.startswith("/v1/") else "GET", path, body=b"")
        return connection.getresponse().status
    finally:
        connection.close()


def _reload(listener: dict[str, Any]) -> None:
    subprocess.run([*proxy.nginx_command(listener["prefix"], listener["main"]), "-s", "reload"],
                   check=True, capture_output=True)


def test_a_revoked_operator_certificate_is_refused_by_the_proxy(
        listener: dict[str, Any]) -> None:
    paths: pki.PkiPaths = listener["paths"]
    assert _status(listener, "alice") == 404 and _status(listener, "bob") == 404
    assert _status(listener, None) == 400

    result = runner.invoke(app, ["--lang", "en", "pki", "revoke-operator", "alice",
                                 "--dir", str(paths.root)])
    assert result.exit_code == 0, result.output
    assert "Revoked the operator certificate alice" in result.output
    _reload(listener)

    wait_until(lambda: _status(listener, "alice") == 400, timeout=20,
               what="nginx refusing the revoked certificate")
    assert _status(listener, "bob") == 404  # the others keep working
    serial = x509.load_pem_x509_certificate(
        paths.operator_certificate("alice").read_bytes()).serial_number
    crl = x509.load_pem_x509_crl(paths.operator_crl.read_bytes())
    assert [entry.serial_number for entry in crl] == [serial]

    again = runner.invoke(app, ["--lang", "en", "pki", "revoke-operator", "alice",
                                "--dir", str(paths.root)])
    assert again.exit_code == 0 and "already revoked" in again.output
    assert x509.load_pem_x509_crl(paths.operator_crl.read_bytes()) == crl  # unchanged


def test_init_writes_an_empty_crl_and_a_reissued_certificate_is_accepted(
        tmp_path: Path) -> None:
    paths = pki.init_pki(tmp_path / "pki")
    crl = x509.load_pem_x509_crl(paths.operator_crl.read_bytes())
    _, ca_cert = pki.load_operator_ca(paths)
    assert list(crl) == [] and crl.is_signature_valid(ca_cert.public_key())
    assert crl.next_update_utc is not None
    assert crl.next_update_utc >= ca_cert.not_valid_after_utc

    pki.add_operator(paths.root, "carol")
    pki.revoke_operator(paths.root, "carol")
    pki.add_operator(paths.root, "carol", force=True)  # a new key, a new serial

    revoked, number = pki.read_operator_crl(paths)
    current = x509.load_pem_x509_certificate(paths.operator_certificate("carol").read_bytes())
    assert number == 2 and len(revoked) == 1 and current.serial_number not in revoked


def test_revoking_needs_the_operator_ca_key_and_a_known_operator(tmp_path: Path) -> None:
    paths = pki.init_pki(tmp_path / "pki")
    pki.add_operator(paths.root, "dave")
    before = paths.operator_crl.read_bytes()

    unknown = runner.invoke(app, ["--lang", "en", "pki", "revoke-operator", "nobody",
                                  "--dir", str(paths.root)])
    paths.operator_ca_key.rename(tmp_path / "offline.key")
    offline = runner.invoke(app, ["--lang", "en", "pki", "revoke-operator", "dave",
                                  "--dir", str(paths.root)])

    assert unknown.exit_code == ExitCode.PKI and "No certificate of the operator" in unknown.output
    assert offline.exit_code == ExitCode.PKI and "operator CA" in offline.output
    assert paths.operator_crl.read_bytes() == before


def test_a_read_only_certificate_may_only_list(listener: dict[str, Any]) -> None:
    """The SuperLink is not running here: a call nginx lets through gets 502 (no
    upstream), one it refuses gets 403 before any upstream is tried."""
    for path in ("/v1/control/list-nodes", "/v1/control/list-runs"):
        assert _status(listener, "console", path) == 502
    for path in ("/v1/control/start-run", "/v1/control/stop-run",
                 "/v1/control/register-node", "/v1/control/unregister-node",
                 "/v1/control/stream-logs", "/v1/control/list-nodes/../start-run",
                 "/v1/control//start-run", "/v1/control/list-nodes2"):
        assert _status(listener, "console", path) == 403, path
    # A full operator certificate is not restricted.
    assert _status(listener, "alice", "/v1/control/start-run") == 502
    subject = x509.load_pem_x509_certificate(
        listener["paths"].operator_certificate("console").read_bytes()).subject
    assert subject.rfc4514_string() in ("OU=read-only,CN=console", "CN=console,OU=read-only")
