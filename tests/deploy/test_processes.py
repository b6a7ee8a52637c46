"""Starting and stopping programs by the process groups we created."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from server.deployment.processes import (
    ProcessError,
    ProcessGroup,
    free_ports,
    group_alive,
    group_members,
    wait_until,
)

# A parent that leaves a child behind in its process group, like SuperNode -> SuperExec.
PARENT_WITH_CHILD = ["bash", "-c", "sleep 300 & sleep 300"]


def test_stop_all_ends_programs_and_their_children(
    tmp_path: Path, no_leftover_groups: list[int]
) -> None:
    group = ProcessGroup(tmp_path)
    process = group.start("parent", PARENT_WITH_CHILD)
    no_leftover_groups.append(process.pid)
    wait_until(lambda: len(group_members(process.pid)) == 3, timeout=10, what="the child")

    group.stop_all(grace=5)

    assert not group_alive(process.pid)
    assert process.exited() is not None


def test_the_context_manager_stops_everything_on_error(
    tmp_path: Path, no_leftover_groups: list[int]
) -> None:
    with pytest.raises(RuntimeError), ProcessGroup(tmp_path) as group:
        no_leftover_groups.extend(group.start(f"p{i}", PARENT_WITH_CHILD).pid for i in range(2))
        raise RuntimeError("boom")

    assert not any(group_alive(g) for g in no_leftover_groups)


def test_check_alive_reports_a_dead_server_with_its_log(tmp_path: Path) -> None:
    with ProcessGroup(tmp_path) as group:
        group.start("crasher", ["bash", "-c", "echo 'port in use'; exit 3"])
        time.sleep(0.5)
        with pytest.raises(ProcessError, match=r"(?s)crasher exited with code 3.*port in use"):
            wait_until(lambda: False, timeout=10, what="never", group=group)


def test_a_program_expected_to_exit_is_not_a_failure(tmp_path: Path) -> None:
    with ProcessGroup(tmp_path) as group:
        follower = group.start("follower", ["true"], expect_exit=True)
        follower.popen.wait(timeout=10)

        group.check_alive()


def test_wait_until_times_out_with_a_sentence() -> None:
    with pytest.raises(ProcessError, match="Timed out after 0 s waiting for the moon"):
        wait_until(lambda: False, timeout=0.2, what="the moon", interval=0.05)


def test_free_ports_are_distinct_and_bindable() -> None:
    ports = free_ports(8)

    assert len(set(ports)) == 8 and all(1024 <= p <= 65535 for p in ports)


def test_programs_run_offline(tmp_path: Path) -> None:
    with ProcessGroup(tmp_path) as group:
        env = group.start("env", ["env"], expect_exit=True)
        env.popen.wait(timeout=10)

    text = env.log_path.read_text()
    for line in ("FLWR_TELEMETRY_ENABLED=0", "FLWR_DISABLE_UPDATE_CHECK=1",
                 "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION=1"):
        assert line in text


def test_ctrl_c_interrupts_even_when_sigint_was_inherited_ignored(tmp_path: Path) -> None:
    # A shell script's background job starts with SIGINT ignored; the launcher must
    # still stop its servers on Ctrl-C (KeyboardInterrupt reaches its finally blocks).
    script = (
        "import time\n"
        "from server.deployment.processes import terminate_on_sigterm\n"
        "restore = terminate_on_sigterm()\n"
        "try:\n"  # the signal may land as soon as 'ready' is out: inside the try
        "    print('ready', flush=True)\n"
        "    time.sleep(30)\n"
        "except KeyboardInterrupt:\n"
        "    print('interrupted', flush=True)\n"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        child.send_signal(signal.SIGINT)
        out, _ = child.communicate(timeout=20)
    finally:
        if child.poll() is None:
            child.kill()
    assert out.strip() == "interrupted"
