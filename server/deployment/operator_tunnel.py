"""The operator's tunnel: the ``flwr`` CLI reaches the Control API with a client certificate.

Flower's CLI speaks server-side TLS only, while the proxy's operator listener demands a
client certificate signed by the operator CA. The tunnel listens on the operator's own
loopback address, accepts the CLI's plain connections (the connection profile says
``insecure = true``: the bytes never leave the operator's machine in clear) and opens,
for each, a TLS connection to the operator listener that verifies the proxy against the
federation's CA and presents the operator's certificate. Bytes are copied both ways
unchanged.

Anyone who can open a socket on the operator's machine can use the tunnel while it
runs: run it for one command (``operator-tunnel ... -- flwr ...``) on shared machines.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
import subprocess
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from common.i18n.catalogue import N_

#: Where the tunnel listens by default (the operator's machine only).
DEFAULT_LISTEN = "127.0.0.1:9444"
CONNECT_TIMEOUT_SECONDS = 10.0
_CHUNK = 64 * 1024


class TunnelError(Exception):
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

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        s = self.settings
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
