"""The loopback deployment as an object whose parts can be killed and restarted.

``perseverance-sim dev-federation`` runs one federation from start to end; the
restart tests need more: submit a run, kill a SuperNode, the ServerApp or the SuperLink
in the middle of it, restart what the ministry would restart, and submit the same run
again with ``resume``. :class:`LoopbackFederation` starts the same programs with the
same flags (``simulations.loopback.launcher.start_federation``) and stops every
process it started at the end, by process group, never by name.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from common.config import RunConfig
from server.deployment import programs as deployment
from server.deployment.enrolment import flower_executable
from server.deployment.processes import (
    ManagedProcess,
    ProcessGroup,
    group_members,
    offline_environment,
    wait_until,
)
from simulations.loopback.launcher import (
    _fresh,
    follow_run,
    nodes_online,
    prepare_pki,
    run_status,
    start_federation,
    submit_run,
)
from simulations.loopback.sides import Ministry, https_ok

RESTART_TIMEOUT = 90.0


class LoopbackFederation:
    """SuperLink, ServerApp executor, nginx and one SuperNode + ClientApp executor per
    data file, on 127.0.0.1; a context manager.

    Parameters
    ----------
    files : list[Path]
        One data file per centre (the centre is named after the file).
    run_dir : Path
        Run folder (its ``logs/`` gets one log per program).
    work : Path
        Work folder: PKI, SuperLink database, centres' state, Flower's home.
    echo : Callable[[str], None]
        Where progress lines go.
    """

    def __init__(self, files: list[Path], run_dir: Path, work: Path,
                 echo: Callable[[str], None] = print) -> None:
        self.files = files
        self.centres = [p.stem for p in files]
        self.run_dir = run_dir
        self.work = work
        self.echo = echo
        self.paths = prepare_pki(work / "pki", self.centres)
        self.env = offline_environment({"FLWR_HOME": str(_fresh(work / "flwr-home"))})
        self.group = ProcessGroup(run_dir / "logs", self.env)
        self.ministry: Ministry | None = None

    def __enter__(self) -> LoopbackFederation:
        try:
            self.ministry = start_federation(self.group, self.paths, self.work, self.files,
                                             self.env, self.echo,
                                             runs_root=self.run_dir.parent)
        except BaseException:
            self.group.stop_all()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.group.stop_all()

    # -- runs --------------------------------------------------------------------------
    def submit(self, config: RunConfig) -> int:
        """Submit the app with ``config``; returns Flower's run id."""
        return submit_run(config, self.env)

    def follow(self, run_id: int, timeout: float) -> str:
        """Wait for the run to end (its log in ``logs/run.log``); returns its status."""
        return follow_run(run_id, self.group, self.env, timeout, self.echo)

    def status(self, run_id: int) -> str:
        return run_status(run_id, self.env)

    def nodes_online(self) -> int:
        return nodes_online(self.env)

    # -- faults ------------------------------------------------------------------------
    def process(self, name: str) -> ManagedProcess:
        """The live program started under ``name`` (the latest, after restarts)."""
        found = [p for p in self.group.processes if p.name == name and p.exited() is None]
        if not found:
            raise LookupError(f"No running program named {name}.")
        return found[-1]

    def kill(self, name: str) -> None:
        """SIGKILL a program and its children (a crash, not a shutdown)."""
        process = self.process(name)
        process.expect_exit = True  # its end is now expected, not a failure
        os.killpg(process.pid, signal.SIGKILL)
        process.popen.wait(timeout=10)

    def kill_centre(self, centre: str) -> None:
        """The centre's machine dies: its SuperNode and ClientApp executor."""
        self.kill(f"clientapp-executor-{centre}")
        self.kill(f"supernode-{centre}")

    def kill_serverapp(self) -> list[int]:
        """The ServerApp process dies (its executor lives on and starts the next run's).
        Returns the killed process ids."""
        executor = self.process("serverapp-executor")
        children = [pid for pid in group_members(executor.pid) if pid != executor.pid]
        for pid in children:
            os.kill(pid, signal.SIGKILL)
        return children

    def restart_superlink(self) -> None:
        """Kill the SuperLink and start it again on the same database and port, as the
        ministry's service manager would; wait until every SuperNode is back online."""
        assert self.ministry is not None, "the federation is not started"
        self.kill("superlink")
        self.group.start(
            "superlink",
            deployment.superlink_argv(
                flower_executable("flower-superlink"), self.paths,
                self.ministry.state_dir / "superlink.db", "127.0.0.1",
                self.ministry.superlink_port, self.ministry.superexec_secret,
            ),
            cwd=self.ministry.state_dir,
        )
        url = f"https://{self.ministry.superlink_address}/health"
        wait_until(lambda: https_ok(url, self.paths.ca_certificate), timeout=RESTART_TIMEOUT,
                   what="the restarted SuperLink", group=self.group)
        wait_until(lambda: self.nodes_online() >= len(self.centres), timeout=RESTART_TIMEOUT,
                   what="the SuperNodes to reconnect", group=self.group, interval=2.0)
