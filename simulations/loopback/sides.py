"""Start the two sides of the loopback federation, as the containers in ``deploy/`` do.

Ministry: SuperLink, its ServerApp executor, the reverse proxy (nginx, two listeners)
and the operator's tunnel (``perseverance-server operator-tunnel``: the launcher's own
``flwr`` commands reach the Control API with an operator certificate, as an operator's
would). Centre: SuperNode (through the proxy's centres' listener) and the centre's own
ClientApp runtime, which runs only the apps approved in the centre's state folder. Each
start waits until the program answers, or fails with its log's tail.
"""

from __future__ import annotations

import hashlib
import ssl
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from common.app_approval import approve
from common.records.keeper import KEEPER_ENV
from server.deployment import programs as deployment
from server.deployment import proxy
from server.deployment.enrolment import flower_executable
from server.deployment.pki import PkiPaths
from server.deployment.processes import ProcessGroup, wait_until

HOST = "127.0.0.1"
#: DNS name the proxy checks in the SuperLink's certificate (nginx does not check IPs).
SUPERLINK_TLS_NAME = "localhost"
START_TIMEOUT = 60.0
#: The operator whose certificate the launcher's tunnel presents (``pki add-operator``).
LOOPBACK_OPERATOR = "loopback-operator"
#: The centre's ClientApp runtime (``perseverance-clientapp``) from this environment's
#: code; ``-P``: its working folder (the centre's state) is not on its import path.
MAX_SOCKET_PATH = 104  # AF_UNIX's sun_path, less its terminating byte and some margin
CLIENTAPP_RUNTIME = (sys.executable, "-P", "-m", "client.federation.runtime")


@dataclass(frozen=True)
class Ministry:
    """Addresses and folders of the ministry side on loopback."""

    pki: PkiPaths
    state_dir: Path
    superlink_port: int
    centres_port: int
    operator_port: int
    nginx_prefix: Path
    tunnel_port: int
    operator: str = LOOPBACK_OPERATOR
    console_port: int = 8080  # where the proxy's /console/ goes (if a console runs)
    #: The folder of the run folders: given, a records keeper holds the ministry's key and
    #: appends the ServerApp's audit lines there, as in the deployment (the executor then
    #: never holds the key); None, the ServerApp keys its lines itself.
    runs_root: Path | None = None

    @property
    def keeper_socket(self) -> Path:
        """The records keeper's socket (common.records.keeper)."""
        return self.state_dir / "keeper.sock"

    @property
    def superexec_secret(self) -> Path:
        """The secret the SuperLink and its ServerApp executor share (SuperExec
        authentication: no other process gets the ServerApp's tasks)."""
        return self.state_dir / "superexec.secret"

    @property
    def superlink_address(self) -> str:
        """The SuperLink's own HTTPS port (Runtime API for the ServerApp)."""
        return f"{HOST}:{self.superlink_port}"

    @property
    def fleet_address(self) -> str:
        """The proxy's centres' listener, where SuperNodes connect."""
        return f"{HOST}:{self.centres_port}"

    @property
    def operator_address(self) -> str:
        """The proxy's operator listener (mutual TLS), where the tunnel connects."""
        return f"{HOST}:{self.operator_port}"

    @property
    def tunnel_address(self) -> str:
        """The operator's tunnel, where the ``flwr`` CLI connects."""
        return f"{HOST}:{self.tunnel_port}"


def https_ok(url: str, ca_certificate: Path | None, timeout: float = 2.0) -> bool:
    """Return whether ``GET url`` answers 200 (over TLS verified with the CA if given)."""
    context = ssl.create_default_context(cafile=str(ca_certificate)) if ca_certificate else None
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=context) as response:
            return int(response.status) == 200
    except (urllib.error.URLError, OSError, ssl.SSLError):
        return False


def start_records_keeper(group: ProcessGroup, ministry: Ministry) -> None:
    """``perseverance-server records-keeper`` over the runs folder, with the ministry's
    key of the group's environment; wait until its socket answers."""
    socket = ministry.keeper_socket
    if len(str(socket)) > MAX_SOCKET_PATH:
        raise ValueError(f"{socket}: a Unix socket's path must be under "
                         f"{MAX_SOCKET_PATH} characters; use a shorter work folder")
    assert ministry.runs_root is not None
    ministry.runs_root.mkdir(parents=True, exist_ok=True)
    group.start("records-keeper", [
        sys.executable, "-m", "server.cli", "records-keeper", "--socket", str(socket),
        "--runs", str(ministry.runs_root), "--state", str(ministry.state_dir / "keeper")],
        cwd=ministry.state_dir)
    wait_until(socket.exists, timeout=START_TIMEOUT, what="the records keeper", group=group)


def start_ministry(group: ProcessGroup, ministry: Ministry) -> None:
    """Start the SuperLink, the ServerApp executor, nginx and the operator's tunnel (which
    writes the ``flwr`` connection ``deployment.OPERATOR_CONNECTION`` in the group's
    ``FLWR_HOME``); wait until they answer."""
    paths = ministry.pki
    deployment.write_superexec_secret(ministry.superexec_secret)
    group.start(
        "superlink",
        deployment.superlink_argv(
            flower_executable("flower-superlink"), paths, ministry.state_dir / "superlink.db",
            HOST, ministry.superlink_port, ministry.superexec_secret,
        ),
        cwd=ministry.state_dir,
    )
    wait_until(
        lambda: https_ok(f"https://{ministry.superlink_address}/health", paths.ca_certificate),
        timeout=START_TIMEOUT, what="the SuperLink", group=group,
    )
    executor_env: dict[str, str] = {}
    if ministry.runs_root is not None:
        start_records_keeper(group, ministry)
        executor_env[KEEPER_ENV] = str(ministry.keeper_socket)
    group.start(
        "serverapp-executor",
        deployment.serverapp_executor_argv(
            flower_executable("flower-superexec"), ministry.superlink_address,
            paths.ca_certificate, ministry.superexec_secret,
        ),
        cwd=ministry.state_dir, env=executor_env,
    )
    settings = proxy.ProxySettings(
        centres_listen=ministry.fleet_address,
        operator_listen=ministry.operator_address,
        superlink_address=ministry.superlink_address,
        superlink_tls_name=SUPERLINK_TLS_NAME,
        certificate=paths.proxy_certificate,
        certificate_key=paths.proxy_key,
        ca_certificate=paths.ca_certificate,
        operator_ca_certificate=paths.operator_ca_certificate,
        console_address=f"{HOST}:{ministry.console_port}",
    )
    main_config = proxy.write_config(ministry.nginx_prefix, settings)
    proxy.check_config(ministry.nginx_prefix, main_config)
    group.start("proxy", proxy.nginx_command(ministry.nginx_prefix, main_config))
    wait_until(
        lambda: https_ok(f"https://{ministry.fleet_address}/health", paths.ca_certificate),
        timeout=START_TIMEOUT, what=f"the proxy on {ministry.fleet_address}", group=group,
    )
    group.start("operator-tunnel", operator_tunnel_argv(ministry))
    # The operator listener answers only through the tunnel (client certificate).
    wait_until(
        lambda: https_ok(f"http://{ministry.tunnel_address}/health", None),
        timeout=START_TIMEOUT, what=f"the operator tunnel to {ministry.operator_address}",
        group=group,
    )


def operator_tunnel_argv(ministry: Ministry) -> list[str]:
    """``perseverance-server operator-tunnel`` from the launcher's operator to the proxy's
    operator listener, for the ``flwr`` connection ``deployment.OPERATOR_CONNECTION``."""
    paths = ministry.pki
    return [
        sys.executable, "-m", "server.cli", "operator-tunnel",
        "--proxy", ministry.operator_address, "--server-name", SUPERLINK_TLS_NAME,
        "--cert", str(paths.operator_certificate(ministry.operator)),
        "--key", str(paths.operator_key(ministry.operator)),
        "--ca", str(paths.ca_certificate),
        "--listen", ministry.tunnel_address,
        "--connection", deployment.OPERATOR_CONNECTION,
    ]


def start_centre(
    group: ProcessGroup,
    ministry: Ministry,
    paths: PkiPaths,
    centre: str,
    data_file: Path,
    runtime_port: int,
    state_dir: Path,
    mapping: Path | None = None,
    policy: Path | None = None,
    approved_apps: Sequence[str] = (),
) -> None:
    """Start a centre's SuperNode and ClientApp runtime (the SuperNode's activation is
    checked by the caller, through the SuperLink's list of online nodes).

    ``approved_apps`` (FAB SHA-256s) are added to the centre's approved list first, as
    the centre's operator would with ``perseverance-client app approve``; the runtime
    refuses every other app. It installs the apps it runs under
    ``state_dir/flwr-home``: the centre's own Flower home, not the ministry's.
    """
    for digest in approved_apps:
        approve(state_dir, digest, note="pre-approved by the loopback launcher")
    # The SuperNode's Runtime API gives tasks only to the runtime holding this secret.
    secret = deployment.write_superexec_secret(state_dir / "superexec.secret")
    group.start(
        f"supernode-{centre}",
        deployment.supernode_argv(
            flower_executable("flower-supernode"),
            ministry.fleet_address,
            paths.ca_certificate,
            paths.centre_private_key(centre),
            HOST,
            runtime_port,
            deployment.node_config(data_file, state_dir, mapping, policy),
            secret,
        ),
        cwd=state_dir,
    )
    group.start(
        f"clientapp-executor-{centre}",
        deployment.clientapp_runtime_argv(CLIENTAPP_RUNTIME, f"{HOST}:{runtime_port}",
                                          state_dir, secret),
        cwd=state_dir,
        env={"FLWR_HOME": str(state_dir / "flwr-home")},
    )


def project_fab_hash(project: Path) -> str:
    """The SHA-256 of ``project`` packaged as ``flwr build`` and ``flwr run`` do (Flower's
    own function): the hash of the FAB a run of it ships."""
    from server.flower_compat import build_fab

    return hashlib.sha256(build_fab(project)).hexdigest()
