"""``perseverance-server``: the ministry's command line.

Subcommands are grouped by task; add a group with ``app.add_typer(group, name=...)``
(``pki`` below is the pattern, e.g. a later ``registry publish``).

Exit codes (``common.errors.ExitCode``): 0 success; 2 bad command line or input; 9 PKI
error (missing CA, existing key without --force, bad name); 10 enrolment or revocation
refused (by the inventory or the SuperLink), or for ``audit verify`` tampered records; 6
the operator tunnel cannot start; 8 ``enrol`` or ``pki revoke-centre`` could not reach the
SuperLink (no operator tunnel open); 130 interrupted. ``operator-tunnel ... -- COMMAND``
exits with COMMAND's code. The loopback launcher is ``perseverance-sim dev-federation``.

The command's own sentences (what it made, its errors) and its help are in French unless
``--lang en`` (before the subcommand: ``perseverance-server --lang en pki init``) or the
locale says English; they come from the one catalogue (``common.i18n.catalogue``,
``common.i18n.cli``). The errors of the libraries it calls (PKI, enrolment, tunnel,
registry, model card, audit) are catalogue messages (``N_``), shown in that language.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from common.errors import ExitCode
from common.i18n.catalogue import N_, sentence, word
from common.i18n.cli import LangOption, LocalisedGroup, error_line, shown
from common.workdirs import flwr_home, work_root
from server.audit_verify import audit_app
from server.deployment import pki as pki_lib
from server.publication.registry_cli import registry_app

app = typer.Typer(
    add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
    cls=LocalisedGroup,
    help="The ministry's side of Persévérance: PKI, enrolment of centres, deployment. "
    "Exit codes: 0 ok, 2 usage, 3 PKI, 4 enrolment (audit verify: tampered), 6 tunnel, "
    "8 SuperLink unreachable, 130 interrupted.",
)
pki_app = typer.Typer(no_args_is_help=True, help="The federation's and operators' CAs, the "
                      "SuperLink's and proxy's certificates, operators' certificates and "
                      "centres' SuperNode keys.")
app.add_typer(pki_app, name="pki")
app.add_typer(registry_app, name="registry")
app.add_typer(audit_app, name="audit")

console = Console(highlight=False)
err = Console(stderr=True, highlight=False)


@app.callback()
def _options(lang: LangOption = None) -> None:
    """The language is set by the option's callback (``common.i18n.cli``)."""


def _say(out: Console, message: str) -> None:
    """Print ``message`` (a catalogue message, or a sentence from elsewhere as it is)."""
    out.print(shown(message), soft_wrap=True)


def _default_pki_dir() -> Path:
    return Path(os.environ.get("PERSEVERANCE_PKI_DIR", str(work_root() / "pki")))


PkiDir = Annotated[Path | None, typer.Option(
    "--dir", help="PKI folder (default: $PERSEVERANCE_PKI_DIR or .work/pki).")]
Force = Annotated[bool, typer.Option("--force", help="Replace existing keys.")]


def _fail(message: str, code: int) -> None:
    err.print(error_line(message), soft_wrap=True)
    raise typer.Exit(code)


@pki_app.command("init")
def pki_init(
    directory: PkiDir = None,
    names: Annotated[list[str] | None, typer.Option(
        "--name", help="Extra DNS name or IP of the server certificate (repeatable), "
        "e.g. the proxy's public name.")] = None,
    force: Force = False,
) -> None:
    """Create the CA and the server certificate (kept if they exist already)."""
    root = directory or _default_pki_dir()
    try:
        paths = pki_lib.init_pki(root, names or [], force=force)
    except pki_lib.PkiError as exc:
        _fail(sentence(exc), ExitCode.PKI)
        return
    _print_servers(paths)
    _say(console, N_("Operator CA certificate: %(path)s", path=paths.operator_ca_certificate))
    _say(console, N_("Operator revocation list (the proxy checks it): %(path)s",
                     path=paths.operator_crl))


def _print_servers(paths: pki_lib.PkiPaths) -> None:
    _say(console, N_("CA certificate: %(path)s", path=paths.ca_certificate))
    _say(console, N_("SuperLink: %(certificate)s (key %(key)s)",
                     certificate=paths.superlink_certificate, key=paths.superlink_key))
    _say(console, N_("Proxy: %(certificate)s (key %(key)s)",
                     certificate=paths.proxy_certificate, key=paths.proxy_key))


@pki_app.command("renew-server")
def pki_renew_server(
    directory: PkiDir = None,
    names: Annotated[list[str] | None, typer.Option(
        "--name", help="Extra DNS name or IP of the proxy's certificate (repeatable); the "
        "names of the current one are kept.")] = None,
) -> None:
    """Issue new key pairs and certificates for the SuperLink and the proxy (then restart
    the SuperLink and reload nginx)."""
    root = directory or _default_pki_dir()
    try:
        paths = pki_lib.renew_server(root, names or [])
    except pki_lib.PkiError as exc:
        _fail(sentence(exc), ExitCode.PKI)
        return
    _print_servers(paths)


@pki_app.command("add-operator")
def pki_add_operator(
    name: Annotated[str, typer.Argument(help="The operator's name, e.g. jdoe.")],
    directory: PkiDir = None,
    force: Force = False,
    read_only: Annotated[bool, typer.Option(
        "--read-only", help="A certificate that may only list the SuperLink's nodes and "
        "runs (the operations console's).")] = False,
) -> None:
    """Issue an operator's client certificate (signed by the operator CA), which the
    proxy's operator listener demands; never replaces a key unless --force."""
    root = directory or _default_pki_dir()
    try:
        paths = pki_lib.add_operator(root, name, force=force, read_only=read_only)
    except pki_lib.PkiError as exc:
        _fail(sentence(exc), ExitCode.PKI)
        return
    _say(console, N_("Certificate: %(path)s", path=paths.operator_certificate(name)))
    _say(console, N_("Private key (to the operator only): %(path)s",
                     path=paths.operator_key(name)))


@pki_app.command("revoke-operator")
def pki_revoke_operator(
    name: Annotated[str, typer.Argument(help="The operator's name, as issued by add-operator.")],
    directory: PkiDir = None,
) -> None:
    """Revoke an operator's certificate: add it to the operator CA's revocation list
    (operator-ca.crl), which the proxy's operator listener checks. Needs the operator CA
    key (an offline step, where the CA keys are kept); then copy the CRL to the proxy and
    reload it (nginx -s reload, or restart the proxy container)."""
    root = directory or _default_pki_dir()
    try:
        serial, revoked = pki_lib.revoke_operator(root, name)
    except pki_lib.PkiError as exc:
        _fail(sentence(exc), ExitCode.PKI)
        return
    paths = pki_lib.PkiPaths(root)
    _say(console, N_("Revoked the operator certificate %(name)s (serial %(serial)x); "
                     "revocation list: %(path)s. Reload the proxy to apply it.", name=name,
                     serial=serial, path=paths.operator_crl) if revoked else
         N_("The operator certificate %(name)s (serial %(serial)x) was already revoked; "
            "revocation list: %(path)s.", name=name, serial=serial, path=paths.operator_crl))


Inventory = Annotated[Path | None, typer.Option(
    "--inventory", help="The ministry's inventory (default: <PKI folder>/inventory.json).")]
Connection = Annotated[str, typer.Option(
    "--connection", help="flwr CLI connection of the operator tunnel (see operator-tunnel).")]


@pki_app.command("revoke-centre")
def pki_revoke_centre(
    name: Annotated[str, typer.Argument(help="The centre's name.")],
    directory: PkiDir = None,
    inventory: Inventory = None,
    connection: Connection = "perseverance-operator",
) -> None:
    """Unregister a centre's SuperNode key at the SuperLink (it is refused from then on;
    the key is burnt) and mark it revoked in the inventory."""
    from server.deployment import enrolment

    root = directory or _default_pki_dir()
    try:
        entry = enrolment.revoke_centre(name, inventory or root / "inventory.json", connection)
    except enrolment.SuperLinkUnreachable as exc:
        _fail(sentence(exc), ExitCode.UNREACHABLE)
        return
    except enrolment.EnrolmentError as exc:
        _fail(sentence(exc), ExitCode.ENROLMENT)
        return
    _say(console, N_("Revoked %(centre)s: node %(node)s (key %(key)s) on %(when)s.",
                     centre=entry.centre, node=entry.node_id, key=entry.fingerprint,
                     when=entry.revoked_at))


@pki_app.command("add-centre")
def pki_add_centre(
    name: Annotated[str, typer.Argument(help="The centre's name, e.g. css-de-montreal.")],
    directory: PkiDir = None,
    force: Force = False,
) -> None:
    """Create a centre's SuperNode key pair (OpenSSH ECDSA P-384); never replaces one
    unless --force."""
    root = directory or _default_pki_dir()
    try:
        paths = pki_lib.add_centre(root, name, force=force)
        public = pki_lib.load_public_key(paths.centre_public_key(name).read_bytes())
    except pki_lib.PkiError as exc:
        _fail(sentence(exc), ExitCode.PKI)
        return
    _say(console, N_("Private key (to the centre only): %(path)s",
                     path=paths.centre_private_key(name)))
    _say(console, N_("Public key: %(path)s (%(fingerprint)s)",
                     path=paths.centre_public_key(name), fingerprint=pki_lib.fingerprint(public)))


@app.command()
def enrol(
    name: Annotated[str, typer.Argument(help="The centre's name.")],
    public_key: Annotated[Path | None, typer.Option(
        "--public-key", help="The centre's OpenSSH public key (default: from the PKI "
        "folder).")] = None,
    directory: PkiDir = None,
    inventory: Inventory = None,
    connection: Connection = "perseverance-operator",
    region: Annotated[str, typer.Option(
        "--region", help="The centre's administrative region (e.g. Laval), for the equity "
        "audit's region rows when the inventory is the run's evaluation.centre_register."
    )] = "",
    indigenous_governed: Annotated[bool, typer.Option(
        "--indigenous-governed", help="The centre is an Indigenous-governed board: its "
        "students count in its region, it never counts towards a region's three centres."
    )] = False,
) -> None:
    """Register a centre's public key with the SuperLink and record it in the inventory."""
    from server.deployment import enrolment

    root = directory or _default_pki_dir()
    paths = pki_lib.PkiPaths(root)
    key = public_key or paths.centre_public_key(name)
    try:
        entry = enrolment.enrol(name, key, inventory or root / "inventory.json", connection,
                                region=region, indigenous_governed=indigenous_governed)
    except enrolment.SuperLinkUnreachable as exc:
        _fail(sentence(exc), ExitCode.UNREACHABLE)
        return
    except (enrolment.EnrolmentError, pki_lib.PkiError) as exc:
        _fail(sentence(exc), ExitCode.ENROLMENT)
        return
    _say(console, N_("Enrolled %(centre)s: node %(node)s, key %(key)s.", centre=entry.centre,
                     node=entry.node_id, key=entry.fingerprint))


@app.command(
    "operator-tunnel",
    context_settings={"allow_interspersed_args": False},
)
def operator_tunnel(
    proxy_address: Annotated[str, typer.Option(
        "--proxy", help="host:port of the proxy's operator listener.")],
    command: Annotated[list[str] | None, typer.Argument(
        help="A command to run while the tunnel is open (after --), e.g. -- flwr ls; "
        "without one, the tunnel stays open until Ctrl-C.")] = None,
    operator: Annotated[str | None, typer.Option(
        "--operator", help="The operator's name: certificate and key from "
        "<PKI folder>/operators/NAME/.")] = None,
    directory: PkiDir = None,
    certificate: Annotated[Path | None, typer.Option(
        "--cert", help="The operator's certificate (instead of --operator).")] = None,
    key: Annotated[Path | None, typer.Option(
        "--key", help="The operator's private key (instead of --operator).")] = None,
    ca: Annotated[Path | None, typer.Option(
        "--ca", help="The federation's CA certificate (default: <PKI folder>/ca.crt).")] = None,
    server_name: Annotated[str | None, typer.Option(
        "--server-name", help="Name checked in the proxy's certificate (default: the "
        "--proxy host).")] = None,
    listen: Annotated[str, typer.Option(
        "--listen", help="Where the flwr CLI connects (this machine's loopback).")] =
        "127.0.0.1:9444",
    connection: Connection = "perseverance-operator",
) -> None:
    """Open the operator's mutual-TLS tunnel to the Control API for the flwr CLI: writes
    the flwr connection (insecure, to --listen on this machine) and forwards it to the
    proxy's operator listener with the operator's client certificate."""
    from server.deployment import enrolment
    from server.deployment import operator_tunnel as tunnel

    paths = pki_lib.PkiPaths(directory or _default_pki_dir())
    if (certificate is None or key is None) and operator is None:
        _fail(N_("Give --operator NAME, or --cert and --key."), ExitCode.UNUSABLE)
        return
    try:
        listen_host, listen_port = tunnel.split_address(listen, word(N_("--listen address")))
        proxy_host, proxy_port = tunnel.split_address(proxy_address,
                                                      word(N_("--proxy address")))
        if listen_host not in ("127.0.0.1", "localhost", "::1"):
            raise tunnel.TunnelError(N_("The tunnel listens on a loopback address only."))
        settings = tunnel.TunnelSettings(
            listen_host, listen_port, proxy_host, proxy_port,
            certificate or paths.operator_certificate(str(operator)),
            key or paths.operator_key(str(operator)),
            ca or paths.ca_certificate, server_name,
        )
        enrolment.write_connection(flwr_home(), connection, listen, None)
        if command:
            raise typer.Exit(tunnel.run_command(settings, command))
        _say(err, N_("Operator tunnel: %(listen)s -> %(proxy)s (connection %(connection)s); "
                     "Ctrl-C to close.", listen=listen, proxy=proxy_address,
                     connection=connection))
        tunnel.serve_forever(settings)
    except tunnel.TunnelError as exc:
        _fail(sentence(exc), ExitCode.DEPLOYMENT)


@app.command("console")
def console_command(
    runs: Annotated[Path, typer.Option(
        "--runs", help="The folder holding the run folders.", show_default=False)],
    registry: Annotated[Path | None, typer.Option(
        "--registry", help="The public registry of models (registry publish).")] = None,
    inventory: Annotated[Path | None, typer.Option(
        "--inventory", help="The ministry's inventory of enrolled centres.")] = None,
    superlink: Annotated[str | None, typer.Option(
        "--superlink", help="host:port of the SuperLink's Control API as this machine "
        "reaches it without TLS: the operator tunnel's loopback end, e.g. "
        "127.0.0.1:9444 (connection states on the federation page).")] = None,
    host: Annotated[str, typer.Option(
        "--host", help="Address to listen on (behind the proxy's operator listener "
        "only).")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 8080,
    root_path: Annotated[str, typer.Option(
        "--root-path", help="The prefix the proxy serves the console under, e.g. "
        "/console.")] = "",
) -> None:
    """The ministry's operations console: a read-only web application (French first,
    English by its switch) over the run folders, the registry, the inventory and the
    SuperLink. Exit codes: 0 stopped by Ctrl-C, 2 a folder or file given does not exist."""
    from server.console import ConsoleSettings, serve

    for label, path in (("--runs", runs), ("--registry", registry)):
        if path is not None and not path.is_dir():
            _fail(N_("%(option)s %(path)s is not a folder.", option=label, path=path),
                  ExitCode.UNUSABLE)
    if inventory is not None and not inventory.is_file():
        _fail(N_("--inventory %(path)s is not a file.", path=inventory), ExitCode.UNUSABLE)
    if not 0 < port < 65536:
        _fail(N_("--port %(port)s is not a port number (1-65535).", port=port),
              ExitCode.UNUSABLE)
    url = f"http://{host}:{port}{root_path}/"
    _say(err, N_("Console: %(url)s (Ctrl-C to stop).", url=url))
    serve(ConsoleSettings(runs.resolve(), registry, inventory, superlink), host, port,
          root_path.rstrip("/"))


@app.command("records-keeper")
def records_keeper_command(
    socket_path: Annotated[Path, typer.Option(
        "--socket", help="The Unix socket to answer on (on a volume shared with the "
        "ServerApp executor, which sets $PERSEVERANCE_RECORDS_KEEPER to it).",
        show_default=False)],
    runs: Annotated[Path, typer.Option(
        "--runs", help="The folder holding the run folders (the ServerApp's path to "
        "it): the only place it writes.", show_default=False)],
    state: Annotated[Path, typer.Option(
        "--state", help="Its own folder: the last line it wrote to each log.",
        show_default=False)],
) -> None:
    """The records keeper: the one process holding the ministry's records key
    ($PERSEVERANCE_MINISTRY_KEY); it appends the ServerApp's audit lines, each on top of
    the last line it wrote, so that no app an operator submits can read the key or sign
    a rewritten line. Exit codes: 0 stopped by Ctrl-C, 2 a folder given does not exist or
    no key can be made."""
    from common.records.keeper import Keeper, serve
    from common.records.key import RecordsKeyError, load_or_create_key
    from server.federation.audit_log import ACTOR, ministry_key_path

    if not runs.is_dir():
        _fail(N_("%(option)s %(path)s is not a folder.", option="--runs", path=runs),
              ExitCode.UNUSABLE)
    try:
        load_or_create_key(ministry_key_path())
    except RecordsKeyError as exc:
        _fail(sentence(exc), ExitCode.UNUSABLE)
    _say(err, N_("Records keeper: %(socket)s, writing under %(runs)s (Ctrl-C to stop).",
                 socket=socket_path, runs=runs))
    serve(socket_path, Keeper(ministry_key_path(), runs, state, ACTOR))


def main() -> None:
    """Entry point of ``perseverance-server``."""
    try:
        app()
    except KeyboardInterrupt:
        _say(err, N_("interrupted; every process started has been stopped."))
        sys.exit(ExitCode.INTERRUPTED)


if __name__ == "__main__":
    main()
