"""The operator's tunnel: the ``flwr`` CLI reaches the Control API with a client certificate.

Flower's CLI speaks server-side TLS only, while the proxy's operator listener demands a
client certificate signed by the operator CA. The tunnel listens on the operator's own
loopback address, accepts the CLI's plain connections (the connection profile says
``insecure = true``: the bytes never leave the operator's machine in clear) and opens,
for each, a TLS connection to the operator listener that verifies the proxy against the
federation's CA and presents the operator's certificate. Bytes are copied both ways
unchanged.

Only its owner can use it. Flower 1.42's CLI cannot reach a Unix socket (its Control API
client is ``httpx`` on ``http://<address>``, with no transport to set), so the tunnel
listens on TCP loopback, where any local user could connect; it therefore asks the kernel
who opened each connection (the uid of the connecting socket, in ``/proc/net/tcp`` or
``tcp6``, as ``ss -e`` shows it) and closes at once, before anything reaches the proxy,
every connection not opened by its own user (root's included). Where that record cannot
be read, the tunnel does not start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import ssl
import struct
import subprocess
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from common.errors import ExitCode, PerseveranceError
from common.i18n.catalogue import N_

#: Where the tunnel listens by default (the operator's machine only).
DEFAULT_LISTEN = "127.0.0.1:9444"
CONNECT_TIMEOUT_SECONDS = 10.0
_CHUNK = 64 * 1024


_LOG = logging.getLogger(__name__)
_PROC_TABLES: dict[int, Path] = {socket.AF_INET: Path("/proc/net/tcp"),
                                 socket.AF_INET6: Path("/proc/net/tcp6")}


class TunnelError(PerseveranceError):
    exit_code = ExitCode.DEPLOYMENT
    """The tunnel cannot start (message is one sentence)."""


@dataclass(frozen=True)
class TunnelSettings:
    """Where the tunnel listens, where it goes, and the credentials it presents.

    ``server_name`` is the name checked in the proxy's certificate (default: the proxy's
    host); ``certificate`` and ``key`` are the operator's (``pki add-operator``);
    ``ca_certificate`` is the federation's CA, which signed the proxy's certificate.
    """

    listen_host: str
    listen_port: int
    proxy_host: str
    proxy_port: int
    certificate: Path
    key: Path
    ca_certificate: Path
    server_name: str | None = None

    @property
    def listen_address(self) -> str:
        """``host:port`` the ``flwr`` CLI connects to."""
        return f"{self.listen_host}:{self.listen_port}"


def split_address(address: str, what: str) -> tuple[str, int]:
    """Split ``host:port``; raise :class:`TunnelError` if it is not one."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise TunnelError(N_("The %(what)s %(address)r is not host:port.", what=what,
                             address=address))
    return host.strip("[]"), int(port)


def client_context(settings: TunnelSettings) -> ssl.SSLContext:
    """The TLS context towards the proxy: verifies it, presents the operator's certificate."""
    for path in (settings.certificate, settings.key, settings.ca_certificate):
        if not path.is_file():
            raise TunnelError(N_("%(path)s does not exist.", path=path))
    try:
        context = ssl.create_default_context(cafile=str(settings.ca_certificate))
        context.load_cert_chain(str(settings.certificate), str(settings.key))
    except (ssl.SSLError, ValueError) as err:
        raise TunnelError(N_("The operator's certificate or key cannot be used (%(reason)s).",
                             reason=str(err))) from err
    return context


def _proc_address(family: int, host: str, port: int) -> str:
    """``host:port`` as ``/proc/net/tcp*`` writes it: the address's 32-bit words in the
    machine's byte order, in hex, then the port in hex."""
    packed = socket.inet_pton(family, host)
    words = struct.unpack(f"={len(packed) // 4}I", packed)
    return "".join(f"{word:08X}" for word in words) + f":{port:04X}"


def connection_uid(family: int, local: tuple[str, int], peer: tuple[str, int]) -> int | None:
    """The uid that owns the other end of a TCP connection accepted on this machine
    (``local`` is our end, ``peer`` the connecting socket's), from the kernel's socket
    table; None when the table has no such socket."""
    want_local = _proc_address(family, peer[0], peer[1])
    want_remote = _proc_address(family, local[0], local[1])
    with _PROC_TABLES[family].open(encoding="ascii") as table:
        next(table)  # the header
        for line in table:
            fields = line.split()
            if fields[1] == want_local and fields[2] == want_remote:
                return int(fields[7])
    return None


def _owner_only_supported() -> None:
    table = _PROC_TABLES[socket.AF_INET]
    if not os.access(table, os.R_OK):
        raise TunnelError(N_("The tunnel cannot check who connects to it (%(path)s cannot "
                             "be read), so it does not start.", path=table))


async def _copy(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    try:
        while data := await source.read(_CHUNK):
            sink.write(data)
            await sink.drain()
    except (ConnectionError, ssl.SSLError, OSError):
        pass
    finally:
        sink.close()


class OperatorTunnel:
    """A running tunnel (an asyncio server on its own thread); a context manager."""

    def __init__(self, settings: TunnelSettings) -> None:
        self.settings = settings
        self._context = client_context(settings)
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True,
                                        name="operator-tunnel")

    def _from_owner(self, writer: asyncio.StreamWriter) -> bool:
        """Whether the connection was opened by the tunnel's own user."""
        sock = writer.get_extra_info("socket")
        try:
            local, peer = sock.getsockname(), sock.getpeername()
            uid = connection_uid(sock.family, local[:2], peer[:2])
        except (OSError, ValueError, KeyError):
            return False
        if uid == os.geteuid():
            return True
        _LOG.warning("operator tunnel: refused a connection from %s:%s (uid %s, not the "
                     "tunnel's owner %s)", peer[0], peer[1], uid, os.geteuid())
        return False

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        s = self.settings
        if not self._from_owner(writer):
            writer.close()  # before anything reaches the proxy
            return
        try:
            remote_reader, remote_writer = await asyncio.wait_for(
                asyncio.open_connection(s.proxy_host, s.proxy_port, ssl=self._context,
                                        server_hostname=s.server_name or s.proxy_host),
                timeout=CONNECT_TIMEOUT_SECONDS,
            )
        except (OSError, ssl.SSLError, TimeoutError):
            writer.close()  # the CLI then reports that the SuperLink is unreachable
            return
        await asyncio.gather(_copy(reader, remote_writer), _copy(remote_reader, writer))

    def start(self) -> OperatorTunnel:
        """Bind the listening socket and serve connections in the background."""
        s = self.settings
        _owner_only_supported()
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._handle, s.listen_host, s.listen_port), self._loop
        )
        try:
            self._server = future.result(timeout=10)
        except OSError as err:
            self.stop()
            raise TunnelError(N_("The tunnel cannot listen on %(address)s (%(reason)s).",
                                 address=s.listen_address, reason=str(err))) from err
        return self

    def stop(self) -> None:
        """Close the listening socket and stop the thread."""
        if self._server is not None:
            self._loop.call_soon_threadsafe(self._server.close)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def __enter__(self) -> OperatorTunnel:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def run_command(settings: TunnelSettings, command: Sequence[str]) -> int:
    """Run ``command`` while the tunnel is open; return its exit code."""
    with OperatorTunnel(settings):
        try:
            return subprocess.run(list(command), check=False, env=dict(os.environ)).returncode
        except FileNotFoundError as err:
            raise TunnelError(N_("The program %(program)r is not installed.",
                                 program=command[0])) from err


def serve_forever(settings: TunnelSettings) -> None:
    """Keep the tunnel open until interrupted (Ctrl-C or SIGTERM)."""
    stop = threading.Event()
    with OperatorTunnel(settings), contextlib.suppress(KeyboardInterrupt):
        import signal

        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        while not stop.wait(1.0):
            pass
