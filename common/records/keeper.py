"""The records keeper: the one process that holds a side's records key and appends to
its audit logs, so that the code which decides what to write never holds the key.

In the ministry's deployment the ServerApp executor runs whatever app an operator
submits; with the key in its container, such an app could read the key and rewrite the
whole log with valid MACs. Instead the key lives only in the keeper's container
(``perseverance-server records-keeper``); the ServerApp asks the keeper, over a Unix
socket on a volume the two share, to append an event, and the keeper:

- accepts only logs named ``audit.jsonl`` under its runs folder, opened without
  following symbolic links;
- chains and MACs the line itself (``common.records.trail.AuditTrail``), always on top of
  the last line it wrote to that log: it keeps each log's head (its last MAC and line
  count) in its own state folder, and refuses to append to a log whose last line is not
  the one it wrote (a log rewritten, cut or replaced since) — so no line already written
  can be signed again, whatever the app asks;
- sets the time (``at``) and the chain's fields itself: a request cannot set them.

What a hostile app can still do: append false events (it decides what to write), or
stop writing. What it cannot: read the key, rewrite or cut a line without
``audit verify`` finding it (the MACs; the heads anchored at the centres for a cut tail).

One request per connection: a JSON object ``{"path": ..., "event": ..., "fields": {...}}``
on one line; the answer is the line written (``{"entry": {...}}``) or ``{"error": "..."}``.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import socketserver
import stat
import threading
from pathlib import Path
from typing import Any

from common.errors import ExitCode, PerseveranceError
from common.i18n.catalogue import N_
from common.records.trail import RESERVED, TAIL_BYTES, AuditTrail, trail_head

#: The environment variable that names the keeper's socket to a process that writes
#: through it (the ServerApp in a deployment); unset, the process keys its lines itself.
KEEPER_ENV = "PERSEVERANCE_RECORDS_KEEPER"
#: The only file name the keeper appends to (``server.federation.audit_log.AUDIT_FILE``).
AUDIT_FILE_NAME = "audit.jsonl"
MAX_REQUEST = 1 << 20
TIMEOUT = 30.0


class KeeperError(PerseveranceError):
    """The keeper refused to append, or could not be reached: the run cannot keep its
    records, so it stops (the deployment's failure, exit code 6)."""

    exit_code = ExitCode.DEPLOYMENT


def keeper_socket() -> Path | None:
    """The keeper's socket named by :data:`KEEPER_ENV`, or None."""
    value = os.environ.get(KEEPER_ENV, "")
    return Path(value) if value else None


def append_through(socket_path: Path, path: Path, event: str,
                   fields: dict[str, Any]) -> dict[str, Any]:
    """Ask the keeper at ``socket_path`` to append ``event`` to the log ``path``; the
    line written. Raises :class:`KeeperError` with the keeper's reason."""
    request = json.dumps({"path": str(path), "event": event, "fields": fields},
                         default=str, allow_nan=False)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(TIMEOUT)
            sock.connect(str(socket_path))
            sock.sendall(request.encode("utf-8") + b"\n")
            sock.shutdown(socket.SHUT_WR)
            answer = b"".join(iter(lambda: sock.recv(65_536), b""))
    except OSError as err:
        raise KeeperError(N_("The records keeper (%(socket)s) cannot be reached: %(error)s.",
                             socket=socket_path, error=err.strerror or err)) from None
    try:
        reply = json.loads(answer)
    except ValueError:
        raise KeeperError(N_("The records keeper (%(socket)s) gave no answer.",
                             socket=socket_path)) from None
    if "error" in reply:
        raise KeeperError(N_("The records keeper refused to write to %(path)s: %(reason)s",
                             path=path, reason=str(reply["error"])))
    return dict(reply["entry"])


class Keeper:
    """What the keeper process owns: the key's file, the runs folder it writes under, the
    heads it wrote (``state``), and the actor it signs as."""

    def __init__(self, key_path: Path, root: Path, state: Path, actor: str) -> None:
        self.key_path = key_path
        self.root = root.resolve()
        self.state = state
        self.actor = actor
        self._lock = threading.Lock()
        self._trails: dict[Path, AuditTrail] = {}  # one per log: the key read once
        state.mkdir(parents=True, exist_ok=True)

    def _log(self, requested: str) -> Path:
        path = Path(requested)
        if path.name != AUDIT_FILE_NAME or not path.is_absolute() or ".." in path.parts:
            raise ValueError(f"only {AUDIT_FILE_NAME} files by their absolute path")
        folder = path.parent
        if folder.resolve() != folder or not folder.is_relative_to(self.root):
            raise ValueError(f"{path} is not under {self.root} (or goes through a link)")
        try:
            if stat.S_ISLNK(os.lstat(path).st_mode):
                raise ValueError(f"{path} is a symbolic link")
        except FileNotFoundError:
            pass
        return path

    def _head_file(self, path: Path) -> Path:
        return self.state / (hashlib.sha256(str(path).encode()).hexdigest() + ".json")

    def append(self, requested: str, event: str, fields: dict[str, Any]) -> dict[str, Any]:
        """Append one event to the log at ``requested``, on top of the head this keeper
        wrote last (a log it never wrote is taken as it stands, once)."""
        path = self._log(requested)
        with self._lock:
            head_file = self._head_file(path)
            found = trail_head(path)
            if head_file.is_file():
                kept = json.loads(head_file.read_text(encoding="utf-8"))
                if [found.link, found.lines, _last_line_digest(path)] != [
                        kept["link"], kept["lines"], kept["digest"]]:
                    raise ValueError(
                        f"the log ends at line {found.lines}, not at line {kept['lines']} "
                        "that this keeper wrote last: it was rewritten, cut or replaced")
            path.parent.mkdir(parents=True, exist_ok=True)
            trail = self._trails.get(path)
            if trail is None:
                trail = self._trails[path] = AuditTrail(path, self.actor, self.key_path)
            entry = trail.record(event, **fields)
            written = trail_head(path)
            temporary = head_file.with_suffix(".tmp")
            temporary.write_text(json.dumps({"path": str(path), "link": written.link,
                                             "lines": written.lines,
                                             "digest": _last_line_digest(path)}),
                                 encoding="utf-8")
            os.replace(temporary, head_file)
            return entry


def _last_line_digest(path: Path) -> str:
    """The SHA-256 of the log's last line as it stands (read from its tail only)."""
    if not path.is_file():
        return ""
    with path.open("rb") as handle:
        handle.seek(0, os.SEEK_END)
        handle.seek(max(0, handle.tell() - TAIL_BYTES))
        lines = handle.read().splitlines()
    return hashlib.sha256(lines[-1]).hexdigest() if lines else ""


class _Handler(socketserver.StreamRequestHandler):
    server: _Server

    def handle(self) -> None:
        raw = self.rfile.readline(MAX_REQUEST)
        try:
            request = json.loads(raw)
            fields = request["fields"]
            reserved = ({"at", "event"} | set(RESERVED)) & set(fields)
            if not isinstance(fields, dict) or reserved:
                raise ValueError(f"fields may not set {sorted(reserved)}")
            entry = self.server.keeper.append(str(request["path"]), str(request["event"]),
                                              fields)
            answer: dict[str, Any] = {"entry": entry}
        except (ValueError, KeyError, TypeError, AssertionError, OSError) as err:
            answer = {"error": str(err) or type(err).__name__}
        self.wfile.write(json.dumps(answer, default=str).encode("utf-8") + b"\n")


class _Server(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True

    def __init__(self, socket_path: Path, keeper: Keeper) -> None:
        self.keeper = keeper
        super().__init__(str(socket_path), _Handler)


def serve(socket_path: Path, keeper: Keeper, ready: threading.Event | None = None) -> None:
    """Answer appends on ``socket_path`` (owner and group only) until interrupted."""
    socket_path.unlink(missing_ok=True)
    old = os.umask(0o007)
    try:
        server = _Server(socket_path, keeper)
    finally:
        os.umask(old)
    with server:
        if ready is not None:
            ready.set()
        server.serve_forever()


def start_in_thread(socket_path: Path, keeper: Keeper) -> _Server:
    """A keeper answering in a background thread (tests, the loopback launcher); stop
    it with ``shutdown()`` then ``server_close()``."""
    socket_path.unlink(missing_ok=True)
    server = _Server(socket_path, keeper)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
