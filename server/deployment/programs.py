"""The command lines of the deployment's programs, one function per program.

The loopback launcher runs exactly these; the containers in ``deploy/`` run the same
programs with the same flags (``tests/deploy/test_containers.py`` keeps them in step).

Ministry side: ``flower-superlink`` (TLS, SuperNode authentication, state in a SQLite
file, no runtime dependency installation, ServerApps in a separate process) and one
``flower-superexec`` that runs the ServerApp against the SuperLink's Runtime API.
Centre side: ``flower-supernode`` (the centre's private key, the CA certificate) and the
centre's own ClientApp runtime ``perseverance-clientapp`` (``client/federation/runtime.py``), which
runs next to the data only the apps the centre approved.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping, Sequence
from pathlib import Path

from server.deployment.pki import PkiPaths

#: The ``flwr`` CLI connection (in ``$FLWR_HOME/config.toml``) of the operator tunnel.
OPERATOR_CONNECTION = "perseverance-operator"
#: Bytes of a SuperExec secret (:func:`write_superexec_secret`).
SUPEREXEC_SECRET_BYTES = 32
#: Keys of a SuperNode's node config, read by ``client.federation.rounds.resolve_data_source``.
NODE_CONFIG_KEYS = ("data-path", "mapping-path", "policy-path", "state-dir")


def config_string(values: Mapping[str, str | int | float | bool]) -> str:
    """Format ``key=value`` pairs the way ``--node-config`` and ``--run-config`` parse them.

    Strings become TOML literal strings (single quotes), so they must not contain one.
    """
    parts = []
    for key, value in values.items():
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, int | float):
            text = repr(value)
        else:
            if "'" in value or "\n" in value:
                raise ValueError(f"The value of {key} may not contain a quote or a newline.")
            text = f"'{value}'"
        parts.append(f"{key}={text}")
    return " ".join(parts)


def node_config(
    data_path: Path, state_dir: Path, mapping_path: Path | None = None,
    policy_path: Path | None = None,
) -> str:
    """Return a centre's ``--node-config`` (absolute paths; empty string means none)."""
    values = {
        "data-path": str(data_path),
        "mapping-path": str(mapping_path) if mapping_path else "",
        "policy-path": str(policy_path) if policy_path else "",
        "state-dir": str(state_dir),
    }
    return config_string(values)


def write_superexec_secret(path: Path) -> Path:
    """Write a fresh SuperExec secret (random bytes, mode 0600 from the first byte) unless
    ``path`` holds one; return ``path``.

    Flower's SuperExec authentication (``--superexec-auth-secret-file``, experimental in
    1.42): the SuperLink or SuperNode hands its Runtime API's tasks (``AcquireTask``) only
    to an executor that signs the request with the same secret.
    """
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as file:
            file.write(secrets.token_bytes(SUPEREXEC_SECRET_BYTES))
    return path


def _secret_flag(secret: Path | None) -> list[str]:
    return [] if secret is None else ["--superexec-auth-secret-file", str(secret)]


def superlink_argv(program: str, pki: PkiPaths, database: Path, host: str, port: int,
                   superexec_secret: Path | None = None) -> list[str]:
    """``flower-superlink``: one HTTPS port for the Fleet, Control and Runtime APIs; with
    ``superexec_secret``, its Runtime API gives ServerApp tasks only to the executor that
    holds the same secret."""
    return [
        program,
        "--ssl-ca-certfile", str(pki.ca_certificate),
        "--ssl-certfile", str(pki.superlink_certificate),
        "--ssl-keyfile", str(pki.superlink_key),
        "--enable-supernode-auth",
        "--database", str(database),
        "--isolation", "process",
        "--disable-runtime-dependency-installation",
        "--host", host,
        "--port", str(port),
        *_secret_flag(superexec_secret),
    ]


def serverapp_executor_argv(
    program: str, superlink_address: str, ca_certificate: Path,
    superexec_secret: Path | None = None,
) -> list[str]:
    """``flower-superexec`` running ServerApps against the SuperLink's Runtime API (TLS)."""
    return [
        program,
        "--runtime-api-address", superlink_address,
        "--root-certificates", str(ca_certificate),
        *_secret_flag(superexec_secret),
    ]


def supernode_argv(
    program: str,
    fleet_address: str,
    ca_certificate: Path,
    private_key: Path,
    runtime_host: str,
    runtime_port: int,
    node_config_text: str,
    superexec_secret: Path | None = None,
) -> list[str]:
    """``flower-supernode``: TLS to the proxy's centres' listener, signed with the centre's
    key; its Runtime API (for the ClientApp executor) on ``runtime_host:runtime_port``."""
    return [
        program,
        "--superlink", fleet_address,
        "--root-certificates", str(ca_certificate),
        "--auth-supernode-private-key", str(private_key),
        "--isolation", "process",
        "--host", runtime_host,
        "--port", str(runtime_port),
        "--node-config", node_config_text,
        *_secret_flag(superexec_secret),
    ]


def clientapp_runtime_argv(
    program: Sequence[str], runtime_address: str, state_dir: Path,
    superexec_secret: Path | None = None,
) -> list[str]:
    """``perseverance-clientapp`` running the SuperNode's ClientApp tasks, only those whose
    FAB the centre approved in ``state_dir`` (its ``approved-apps.json``).

    ``program`` is the command (one word in the container, ``python -P -m
    client.federation.runtime``
    on loopback). The SuperNode's Runtime API stays inside the centre (loopback, or the
    centre's private container network), hence ``--insecure``; ``superexec_secret`` (the
    SuperNode's) signs its task requests, so that no other process that reaches the
    Runtime API gets the centre's tasks.
    """
    return [*program, "--runtime-api-address", runtime_address, "--insecure",
            "--state", str(state_dir), *_secret_flag(superexec_secret)]
