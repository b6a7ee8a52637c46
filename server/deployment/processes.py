"""Start the deployment's servers and stop exactly those, by the process groups we made.

Every program is started as the leader of a new session (``start_new_session``), so the
children Flower spawns (SuperExec, ServerApp and ClientApp processes) share its process
group and go down with it. Nothing is ever stopped by name.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from common.errors import ExitCode, PerseveranceError
from common.i18n.catalogue import N_
from common.workdirs import OFFLINE_ENVIRONMENT

STOP_GRACE_SECONDS = 10.0


class ProcessError(PerseveranceError):
    exit_code = ExitCode.DEPLOYMENT
    """A managed program did not start or died (message is one sentence)."""


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """Return ``count`` distinct TCP ports that are free on ``host`` right now."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((host, 0))
            sockets.append(sock)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


def offline_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Return this process's environment with Flower kept offline (no telemetry, no
    update check, no runtime dependency installation), plus ``extra``."""
    env = dict(os.environ)
    env.update(OFFLINE_ENVIRONMENT)
    # Flower's executors start `flwr-serverapp` / `flwr-clientapp` by name: this
    # environment's programs come first.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def _live_processes() -> list[tuple[int, int]]:
    """(pid, process group id) of every live, non-zombie process (Linux ``/proc``)."""
    live = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # the process ended while we looked
            continue
        state, _ppid, group = text[text.rindex(")") + 2 :].split()[:3]
        if state not in ("Z", "X"):
            live.append((int(stat.parent.name), int(group)))
    return live


def group_members(pgid: int) -> list[int]:
    """Return the live (non-zombie) processes of process group ``pgid``."""
    return [pid for pid, group in _live_processes() if group == pgid]


def live_groups(pgids: list[int]) -> set[int]:
    """Return which of ``pgids`` still have a live process (one scan of ``/proc``)."""
    if not Path("/proc/self/stat").exists():  # pragma: no cover - systems without /proc
        alive = set()
        for pgid in pgids:
            try:
                os.killpg(pgid, 0)
                alive.add(pgid)
            except (ProcessLookupError, PermissionError):
                pass
        return alive
    wanted = set(pgids)
    return {group for _pid, group in _live_processes() if group in wanted}


def group_alive(pgid: int) -> bool:
    """Return whether a live process is left in process group ``pgid``."""
    return bool(live_groups([pgid]))


@dataclass
class ManagedProcess:
    """A program we started: its name, its ``Popen`` and the file its output goes to."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    expect_exit: bool = False

    @property
    def pid(self) -> int:
        """The process id (also its process group id)."""
        return self.popen.pid

    def exited(self) -> int | None:
        """Return the exit code if the program has ended, else ``None``."""
        return self.popen.poll()

    def log_tail(self, lines: int = 15) -> str:
        """Return the last ``lines`` lines of the program's output."""
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


class ProcessGroup:
    """The set of programs one launcher or test started; a context manager that stops
    them all (also on errors and Ctrl-C).

    Parameters
    ----------
    log_dir : Path
        Folder for one ``<name>.log`` per program.
    env : Mapping[str, str] | None
        Environment of every program (default: :func:`offline_environment`).
    """

    def __init__(self, log_dir: Path, env: Mapping[str, str] | None = None) -> None:
        self.log_dir = log_dir
        self.env = dict(env) if env is not None else offline_environment()
        self.processes: list[ManagedProcess] = []
        log_dir.mkdir(parents=True, exist_ok=True)

    def start(
        self,
        name: str,
        argv: Sequence[str],
        *,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
        expect_exit: bool = False,
    ) -> ManagedProcess:
        """Start ``argv`` in its own session, output to ``<log_dir>/<name>.log``.

        ``expect_exit`` marks a program that ends by itself (a log follower): its end is
        not a failure for :meth:`check_alive`.
        """
        log_path = self.log_dir / f"{name}.log"
        with log_path.open("ab") as log:
            popen = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=cwd,
                env={**self.env, **(env or {})},
                start_new_session=True,
            )
        process = ManagedProcess(name, popen, log_path, expect_exit)
        self.processes.append(process)
        return process

    def check_alive(self) -> None:
        """Raise :class:`ProcessError` if a long-running program has ended."""
        for process in self.processes:
            code = process.exited()
            if code is not None and not process.expect_exit:
                raise ProcessError(N_(
                    "%(name)s exited with code %(code)s; its log %(log)s ends with:\n%(tail)s",
                    name=process.name, code=code, log=process.log_path,
                    tail=process.log_tail()))

    def pgids(self) -> list[int]:
        """The process group ids we own (one per started program)."""
        return [p.pid for p in self.processes]

    def stop(self, process: ManagedProcess, grace: float = STOP_GRACE_SECONDS) -> None:
        """Stop one program and its children: SIGTERM to its group, SIGKILL after ``grace``.
        Its end is then expected (:meth:`check_alive` does not report it)."""
        process.expect_exit = True
        _stop_groups([process], grace)

    def stop_all(self, grace: float = STOP_GRACE_SECONDS) -> None:
        """Stop every program at once (SIGTERM, then SIGKILL after ``grace`` seconds);
        a second Ctrl-C cannot cut this short."""
        try:
            previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        except ValueError:  # not the main thread: signals cannot be touched
            previous = None
        try:
            _stop_groups(list(reversed(self.processes)), grace)
        finally:
            if previous is not None:
                signal.signal(signal.SIGINT, previous)

    def __enter__(self) -> ProcessGroup:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop_all()


def _stop_groups(processes: list[ManagedProcess], grace: float) -> None:
    """SIGTERM every process group, wait up to ``grace`` s, SIGKILL what is left, reap."""
    pending = processes
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        alive = live_groups([p.pid for p in pending])
        pending = [p for p in pending if p.pid in alive or p.popen.poll() is None]
        for process in pending:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, sig)
        deadline = time.monotonic() + wait
        while pending and time.monotonic() < deadline:
            time.sleep(0.1)
            alive = live_groups([p.pid for p in pending])
            pending = [p for p in pending if p.popen.poll() is None or p.pid in alive]
    for process in processes:
        if process.popen.poll() is None:
            process.popen.wait(timeout=5.0)


def interrupt(process: subprocess.Popen[Any], grace: float = 30.0) -> None:
    """Stop a command this process started, by its PID, if it still runs: SIGINT (our
    commands stop cleanly on it, as on Ctrl-C), then after ``grace`` seconds SIGKILL to
    its process group when it leads one (else to it alone)."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=grace)
        return
    except subprocess.TimeoutExpired:
        pass
    try:
        leads = os.getpgid(process.pid) == process.pid
    except ProcessLookupError:
        return
    if leads:
        os.killpg(process.pid, signal.SIGKILL)
    else:
        process.kill()
    process.wait(timeout=10)


def wait_until(
    condition: Callable[[], bool],
    *,
    timeout: float,
    what: str,
    group: ProcessGroup | None = None,
    interval: float = 0.5,
) -> None:
    """Poll ``condition`` until it holds; raise :class:`ProcessError` after ``timeout``
    seconds, or as soon as a program of ``group`` dies."""
    deadline = time.monotonic() + timeout
    while True:
        if group is not None:
            group.check_alive()
        if condition():
            return
        if time.monotonic() > deadline:
            raise ProcessError(N_("Timed out after %(seconds).0f s waiting for %(what)s.",
                                  seconds=timeout, what=what))
        time.sleep(interval)


def terminate_on_sigterm() -> Callable[[], None]:
    """Turn SIGTERM, and SIGINT (Ctrl-C) even when this process inherited it ignored,
    into ``KeyboardInterrupt`` so ``finally`` blocks stop our servers; returns a function
    that restores the previous handlers.

    A shell starts a background job (``cmd &`` in a script, as CI runners do) with SIGINT
    ignored, and Python then never installs its Ctrl-C handler: the launcher would run
    on through every SIGINT and leave its servers to finish the run."""
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, signal.default_int_handler)

    def restore() -> None:
        for sig, old in previous.items():
            signal.signal(sig, old)

    return restore
