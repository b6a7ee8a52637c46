"""Shared fixtures of the deployment tests: nginx, a PKI, and the no-leftover check."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from server.deployment import pki, proxy
from server.deployment.processes import group_alive


@pytest.fixture(scope="session")
def nginx() -> str:
    """The nginx binary; the test is skipped only if nginx cannot be installed here."""
    try:
        return proxy.nginx_binary()
    except proxy.ProxyError:
        pytest.skip("nginx is not installed and `deploy/install-system-packages.sh` "
                    "(run by .ci/run) could not install it on this machine")


@pytest.fixture(scope="module")
def pki_dir(tmp_path_factory: pytest.TempPathFactory) -> pki.PkiPaths:
    """A PKI with both CAs, the servers' certificates, the loopback operator's
    certificate and three centres' key pairs."""
    from simulations.loopback.launcher import prepare_pki

    return prepare_pki(tmp_path_factory.mktemp("pki"),
                       ["css-registered", "css-stranger", "css-revoked"])


def processes_mentioning(marker: str) -> list[str]:
    """Live processes whose command line, working folder or environment contains
    ``marker`` (every program the launcher starts has its work folder in FLWR_HOME)."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        if int(proc.name) == os.getpid():
            continue
        try:
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
            args = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            where = os.readlink(proc / "cwd")
            environ = (proc / "environ").read_bytes().decode(errors="replace")
        except (OSError, IndexError):
            continue
        if state != "Z" and (marker in args or marker in where or marker in environ):
            found.append(f"{proc.name}: {args}")
    return found


@pytest.fixture
def no_leftover_groups() -> Iterator[list[int]]:
    """Collects process group ids; fails the test if any is still alive at the end."""
    pgids: list[int] = []
    yield pgids
    alive = [g for g in pgids if group_alive(g)]
    assert not alive, f"process groups left behind: {alive}"
