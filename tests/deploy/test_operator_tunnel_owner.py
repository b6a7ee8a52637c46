"""The operator tunnel is usable by its owner only: a connection opened by another local
user is closed before anything reaches the proxy (the kernel's socket table names the
connecting socket's uid)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from server.deployment import operator_tunnel as tunnel_lib
from server.deployment.pki import PkiPaths
from server.deployment.processes import free_ports

NOBODY = 65534
# The system's Python runs the client (stdlib only): another user may not read the
# project's interpreter.
PYTHON = shutil.which("python3", path="/usr/bin:/bin") or sys.executable
# A client that connects, sends a few bytes and reports whether the tunnel closed it
# without forwarding (an empty read), as another user would try it.
CLIENT = """
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
s.sendall(b"POST /v1/control/list-runs HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n")
try:
    print("closed" if s.recv(1) == b"" else "answered")
except ConnectionResetError:
    print("closed")
"""


@pytest.fixture()
def upstream() -> Iterator[dict[str, object]]:
    """A TCP listener standing for the proxy: counts the connections the tunnel opens."""
    server = socket.create_server(("127.0.0.1", 0))
    seen = {"count": 0}

    def accept() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            seen["count"] += 1
            conn.close()  # the tunnel's TLS handshake fails: it closes the client too

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield {"port": server.getsockname()[1], "seen": seen}
    server.close()


def _client(port: int, *, uid: int | None = None) -> str:
    def drop() -> None:
        if uid is not None:
            os.setgid(uid)
            os.setuid(uid)

    done = subprocess.run([PYTHON, "-c", CLIENT, str(port)], capture_output=True,
                          text=True, timeout=30, preexec_fn=drop, check=True,
                          cwd="/")
    return done.stdout.strip()


def test_the_kernel_names_the_owner_of_a_loopback_connection() -> None:
    server = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(server.getsockname())
    accepted, _ = server.accept()
    try:
        uid = tunnel_lib.connection_uid(socket.AF_INET, accepted.getsockname(),
                                        accepted.getpeername())
    finally:
        for s in (accepted, client, server):
            s.close()
    assert uid == os.geteuid()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to connect as another user")
def test_another_local_user_cannot_use_an_open_tunnel(
        pki_dir: PkiPaths, upstream: dict[str, object]) -> None:
    name = "loopback-operator"
    listen = free_ports(1)[0]
    settings = tunnel_lib.TunnelSettings(
        "127.0.0.1", listen, "127.0.0.1", int(upstream["port"]),  # type: ignore[call-overload]
        pki_dir.operator_certificate(name), pki_dir.operator_key(name),
        pki_dir.ca_certificate, server_name="localhost")
    seen: dict[str, int] = upstream["seen"]  # type: ignore[assignment]

    with tunnel_lib.OperatorTunnel(settings):
        assert _client(listen, uid=NOBODY) == "closed"
        assert seen["count"] == 0  # nothing reached the proxy
        _client(listen)  # the owner's connection is forwarded
        assert seen["count"] == 1


def test_the_tunnel_does_not_start_if_it_cannot_check_who_connects(
        pki_dir: PkiPaths, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    name = "loopback-operator"
    monkeypatch.setitem(tunnel_lib._PROC_TABLES, socket.AF_INET, tmp_path / "missing")
    settings = tunnel_lib.TunnelSettings(
        "127.0.0.1", free_ports(1)[0], "127.0.0.1", 9, pki_dir.operator_certificate(name),
        pki_dir.operator_key(name), pki_dir.ca_certificate)

    with pytest.raises(tunnel_lib.TunnelError, match="cannot check who connects"):
        tunnel_lib.OperatorTunnel(settings).start()
