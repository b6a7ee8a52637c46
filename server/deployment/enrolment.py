"""Enrol a centre: register its SuperNode public key with the SuperLink, and keep the
ministry's inventory of enrolled centres.

Registration goes through the ``flwr`` CLI (``flwr supernode register``) and its
connection profile in ``$FLWR_HOME/config.toml``, which points at the operator's tunnel
to the proxy's operator listener (:mod:`server.deployment.operator_tunnel`). The inventory is a
JSON file (centre, node id, key fingerprint, date, revocation date): unregistering burns
a key for good, so the ministry must know which key each centre uses before it ever
revokes one. :func:`revoke_centre` unregisters a centre's key (``flwr supernode
unregister``): its SuperNode is refused from then on.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import tomli_w

from common.errors import ExitCode, PerseveranceError
from common.files import atomic_write_bytes
from common.i18n.catalogue import N_, sentence
from common.workdirs import FLWR_HOME_ENV, flwr_home
from server.deployment import pki

REGISTER_TIMEOUT_SECONDS = 60.0


#: What ``flwr`` says when it cannot reach the SuperLink, or has no such connection.
UNREACHABLE_MARKS = ("Connection to the SuperLink is unavailable",
                     "not found in the Flower configuration file")
#: The documented way to reach the Control API (docs/DEPLOYMENT.md, "Operator access"),
#: around the command that needs it.
TUNNEL_COMMAND = "perseverance-server operator-tunnel --proxy HOST:9443 --operator NAME -- {}"


class EnrolmentError(PerseveranceError):
    exit_code = ExitCode.ENROLMENT
    """A centre cannot be enrolled (message is one sentence)."""


class SuperLinkUnreachable(EnrolmentError):
    """``flwr`` could not reach the SuperLink: no SuperLink was asked (one sentence)."""


@dataclass(frozen=True)
class InventoryEntry:
    """One enrolled centre, as the ministry records it.

    ``enrolled_at`` is an ISO 8601 UTC timestamp; ``fingerprint`` the OpenSSH SHA-256
    fingerprint of the registered public key; ``revoked_at`` the date its key was
    unregistered ("" while the centre is enrolled). ``region`` (Québec's administrative region,
    "" if not given) and ``indigenous_governed`` place the centre in the equity audit's
    region rows when the inventory is the run's centre register (``server.federation.regions``).
    """

    centre: str
    node_id: int
    fingerprint: str
    enrolled_at: str
    region: str = ""
    indigenous_governed: bool = False
    revoked_at: str = ""


def read_inventory(path: Path) -> list[InventoryEntry]:
    """Return the inventory's entries (none if the file does not exist yet)."""
    if not path.exists():
        return []
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
        return [InventoryEntry(**entry) for entry in payload["centres"]]
    except (ValueError, KeyError, TypeError) as err:
        raise EnrolmentError(N_("The inventory %(path)s is not valid (%(reason)s).", path=path,
                                reason=str(err))) from err


def write_inventory(path: Path, entries: list[InventoryEntry]) -> None:
    """Write the inventory atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"centres": [asdict(entry) for entry in entries]}
    atomic_write_bytes(path, (json.dumps(payload, indent=2) + "\n").encode())


def flower_executable(name: str) -> str:
    """Return a Flower program of this environment (``flwr``, ``flower-superlink``, ...)."""
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise EnrolmentError(N_("The Flower program %(program)r is not installed in this "
                                "environment.", program=name))
    return found


def write_connection(
    flwr_home: Path, name: str, address: str, root_certificates: Path | None,
    *, default: bool = True,
) -> Path:
    """Add or replace the ``flwr`` CLI connection ``name`` in ``flwr_home/config.toml``.

    Parameters
    ----------
    flwr_home : Path
        Flower's home folder (``$FLWR_HOME``).
    name : str
        The connection's name, e.g. ``perseverance-operator``.
    address : str
        ``host:port`` of the SuperLink's Control API as the CLI reaches it.
    root_certificates : Path | None
        The CA that signed the server's certificate; ``None`` for the operator tunnel on
        the operator's own loopback address (``insecure = true``: the tunnel does TLS).
    default : bool
        Make it the default connection.

    Returns
    -------
    Path
        The configuration file.
    """
    path = flwr_home / "config.toml"
    config = tomllib.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    superlink = config.setdefault("superlink", {})
    if root_certificates is None:
        superlink[name] = {"address": address, "insecure": True}
    else:
        superlink[name] = {"address": address,
                           "root-certificates": str(root_certificates.resolve())}
    if default or "default" not in superlink:
        superlink["default"] = name
    flwr_home.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, tomli_w.dumps(config).encode())
    return path


def connection_address(flwr_home_dir: Path, name: str) -> str:
    """The address of the ``flwr`` connection ``name`` in ``flwr_home_dir``, or a word
    saying it is not configured."""
    try:
        config = tomllib.loads((flwr_home_dir / "config.toml").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        config = {}
    entry = config.get("superlink", {}).get(name)
    if isinstance(entry, dict) and entry.get("address"):
        return str(entry["address"])
    return N_("not configured in %(path)s", path=flwr_home_dir / "config.toml")


def _json_payload(stdout: str) -> dict[str, object]:
    start = stdout.find("{")
    if start < 0:
        return {}
    try:
        return dict(json.loads(stdout[start:]))
    except ValueError:
        return {}


def _flwr_supernode(
    args: list[str], connection: str, env: Mapping[str, str] | None, refused: str,
    again: str,
) -> dict[str, object]:
    """Run ``flwr supernode ARGS CONNECTION --format json``; return its answer if it
    succeeded, else raise :class:`SuperLinkUnreachable` if the SuperLink could not be
    reached (``again``: the command to run through the operator tunnel), or
    :class:`EnrolmentError` starting with ``refused`` and its reason."""
    argv = [flower_executable("flwr"), "supernode", *args, connection, "--format", "json"]
    # Flower's home as every command resolves it (common.workdirs), where operator-tunnel
    # wrote the connection; the flwr CLI alone would read ~/.flwr.
    environment = dict(env) if env is not None else {**os.environ, FLWR_HOME_ENV: str(flwr_home())}
    try:
        result = subprocess.run(
            argv, capture_output=True, text=True, env=environment,
            timeout=REGISTER_TIMEOUT_SECONDS, check=False,
        )
    except subprocess.TimeoutExpired as err:
        raise EnrolmentError(N_(
            "The SuperLink did not answer within %(seconds).0f s.",
            seconds=REGISTER_TIMEOUT_SECONDS)) from err
    payload = _json_payload(result.stdout)
    if payload.get("success") is True and "node-id" in payload:
        return payload
    reason = str(payload.get("error-message") or result.stderr or result.stdout).strip()
    if any(mark in reason for mark in UNREACHABLE_MARKS):
        home = Path(environment.get(FLWR_HOME_ENV) or flwr_home())
        raise SuperLinkUnreachable(N_(
            "The SuperLink could not be reached through the flwr connection %(connection)s "
            "(%(address)s), so nothing was changed: no operator tunnel is open there, or it "
            "cannot reach the proxy; run the command through the tunnel: %(command)s",
            connection=connection, address=connection_address(home, connection),
            command=TUNNEL_COMMAND.format(again)))
    last = reason.splitlines()[-1] if reason else N_("flwr exited with code %(code)s",
                                                     code=result.returncode)
    raise EnrolmentError(N_("%(refused)s: %(reason)s", refused=refused, reason=last))


def register_public_key(
    public_key: Path, connection: str, centre: str, env: Mapping[str, str] | None = None
) -> int:
    """Register a SuperNode public key with ``flwr supernode register``; return the node id.

    Raises :class:`EnrolmentError` with the SuperLink's reason if it refuses.
    """
    payload = _flwr_supernode(
        ["register", str(public_key), "--name", centre], connection, env,
        N_("The SuperLink refused to register %(centre)s's key", centre=centre),
        f"perseverance-server enrol {centre}",
    )
    return int(str(payload["node-id"]))


def unregister_node(node_id: int, connection: str, env: Mapping[str, str] | None = None) -> None:
    """Unregister a SuperNode with ``flwr supernode unregister`` (its key is burnt)."""
    _flwr_supernode(["unregister", str(node_id)], connection, env,
                    N_("The SuperLink refused to unregister node %(node)s", node=node_id),
                    "perseverance-server pki revoke-centre ...")


def enrol(
    centre: str,
    public_key: Path,
    inventory: Path,
    connection: str,
    env: Mapping[str, str] | None = None,
    region: str = "",
    indigenous_governed: bool = False,
) -> InventoryEntry:
    """Register ``centre``'s public key and record it in the inventory.

    A centre already enrolled, or a key already used (or revoked), is refused before the
    SuperLink is asked; a revoked centre may enrol again with a new key.

    Parameters
    ----------
    centre : str
        The centre's name (see :func:`server.deployment.pki.check_centre_name`).
    public_key : Path
        The centre's OpenSSH EC public key.
    inventory : Path
        The ministry's inventory file (created if missing).
    connection : str
        The ``flwr`` CLI connection of the proxy's operator listener.
    env : Mapping[str, str] | None
        Environment of the ``flwr`` process (``FLWR_HOME`` selects the profile).
    region, indigenous_governed : str, bool
        Where the register places the centre (see :class:`InventoryEntry`).

    Returns
    -------
    InventoryEntry
        The new inventory entry.
    """
    pki.check_centre_name(centre)
    if not public_key.is_file():
        raise EnrolmentError(N_("The public key %(path)s does not exist.", path=public_key))
    try:
        key_fingerprint = pki.fingerprint(pki.load_public_key(public_key.read_bytes()))
    except pki.PkiError as err:
        raise EnrolmentError(N_("%(path)s: %(reason)s", path=public_key,
                                reason=sentence(err))) from err
    entries = read_inventory(inventory)
    for entry in entries:
        if entry.fingerprint == key_fingerprint and entry.revoked_at:
            raise EnrolmentError(N_(
                "This key was revoked for %(centre)s on %(when)s; the SuperLink never accepts "
                "it again: make a new key pair.", centre=entry.centre, when=entry.revoked_at))
        if entry.centre == centre and not entry.revoked_at:
            raise EnrolmentError(N_(
                "%(centre)s is already enrolled as node %(node)s (key %(key)s).", centre=centre,
                node=entry.node_id, key=entry.fingerprint))
        if entry.fingerprint == key_fingerprint:
            raise EnrolmentError(N_("This key is already enrolled for %(centre)s.",
                                    centre=entry.centre))
    node_id = register_public_key(public_key, connection, centre, env)
    entry = InventoryEntry(
        centre=centre,
        node_id=node_id,
        fingerprint=key_fingerprint,
        enrolled_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        region=region.strip(),
        indigenous_governed=indigenous_governed,
    )
    write_inventory(inventory, [*entries, entry])
    return entry


def revoke_centre(
    centre: str, inventory: Path, connection: str, env: Mapping[str, str] | None = None
) -> InventoryEntry:
    """Unregister ``centre``'s key at the SuperLink and mark it revoked in the inventory.

    From then on the SuperLink refuses the centre's SuperNode (Flower burns the key: it
    is never accepted again). The inventory keeps the entry, with ``revoked_at`` set, so
    the key can never be enrolled again by mistake.

    Returns
    -------
    InventoryEntry
        The updated entry.
    """
    entries = read_inventory(inventory)
    index = next((i for i, e in enumerate(entries)
                  if e.centre == centre and not e.revoked_at), None)
    if index is None:
        raise EnrolmentError(N_("%(centre)s is not enrolled in %(path)s; nothing to revoke.",
                                centre=centre, path=inventory))
    unregister_node(entries[index].node_id, connection, env)
    revoked = replace(entries[index],
                      revoked_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))
    entries[index] = revoked
    write_inventory(inventory, entries)
    return revoked
