"""Run folders in every state, an inventory and a registry for the console's tests, the
console itself started as a real uvicorn server on 127.0.0.1 (stopped by its PID), and
the check that a page's screenshot shows something."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from server import run_folder
from server.console.runs import lock_held
from server.deployment.enrolment import InventoryEntry, write_inventory
from server.deployment.processes import interrupt
from server.federation.audit_log import ServerAudit
from server.federation.checkpoint import LOCK, run_folder_lock
from server.publication import registry
from server.publication.model_card import write_model_card
from tests.server.run_fixtures import write_run_folder

STARTUP_SECONDS = 30.0
VIEWPORT = {"width": 1280, "height": 800}
FINISHED, STOPPED, FAILED, TAMPERED, GROWING = (
    "finished-run", "stopped-run", "failed-run", "tampered-run", "growing-run")
SIMULATED, LOOPBACK = "simulated-run", "loopback-run"
REFUSAL = "css-des-laurentides refused the run: its budget is spent (epsilon 8.0 of 8.0)."
# A simulated centre that bears an enrolled centre's name (and node): its refusal is
# the simulation's, never the deployed federation's.
SIMULATED_REFUSAL = "The run's epsilon target is above the largest the centre's privacy " \
    "floor accepts per run."
# As the ministry records a rejection (server.federation.validation), in English.
REJECTION = "its update norm 41 is beyond the bound 12 (x3.4)"


def audit_a_round(audit: ServerAudit, server_round: int, *, reject: bool = False) -> None:
    """The ministry's events of one round with two centres (nodes 11 and 12)."""
    audit.connected(server_round, [11, 12], [11, 12] if server_round > 1 else [])
    audit.sent(server_round, "train", [11, 12], f"v{server_round - 1}")
    audit.update(server_round, 11, None, 3.2)
    audit.update(server_round, 12, REJECTION if reject else None, 41.0 if reject else 2.9)
    audit.event("centre_records", node=11, round=server_round, phase="train",
                actor="css-de-laval", audit_lines=server_round)
    audit.event("round_aggregated", round=server_round, updates=1 if reject else 2)


def round_line(server_round: int, *, reject: bool = False) -> dict[str, object]:
    return {"round": server_round, "eval_auc": 0.70 + server_round / 100,
            "eval_pr_auc": 0.3, "eval_brier": 0.15, "train_epsilon_max": 0.9 * server_round,
            "refusals": [], "rejections": [f"node 12: {REJECTION}"] if reject else [],
            "absent": [], "updates": 1 if reject else 2, "model_version": f"v{server_round}"}


def write_runs(root: Path) -> None:
    """A finished run (with a keyed audit log and a refusal), a stopped one, a failed one
    and one whose audit log was edited after the fact."""
    finished = write_run_folder(root / FINISHED, summary_extra={
        "centres_refused": {"css-des-laurentides": REFUSAL}, "updates_rejected": 0})
    deployed(finished)
    audit = ServerAudit(finished)
    audit.event("run_started", run_name="fixture", rounds=3)
    for r in (1, 2, 3):
        audit_a_round(audit, r)
    audit.refused(2, "train", 13, REFUSAL)
    audit.event("run_finished", rounds_completed=3)
    write_model_card(finished)
    write_run_folder(root / STOPPED, summary_extra={
        "rounds_completed": 2, "stopped": "Too few centres are left (1 of 2).",
        "auc_pooled": 0.75})
    simulated = write_run_folder(root / SIMULATED, summary_extra={
        "centres_refused": {"css-de-laval": SIMULATED_REFUSAL}})
    audit = ServerAudit(simulated)
    audit.event("run_started", run_name="simulated", rounds=3)
    audit.refused(1, "train", 11, f"css-de-laval: {SIMULATED_REFUSAL}")
    audit.event("run_finished", rounds_completed=3)
    write_run_folder(root / LOOPBACK, summary_extra={"deployment": "loopback"})
    failed = root / FAILED
    failed.mkdir()
    run_folder.append_round(failed, round_line(1))
    ServerAudit(failed).event("run_started", run_name="failed", rounds=5)
    tampered = write_run_folder(root / TAMPERED)
    audit = ServerAudit(tampered)
    for r in (1, 2):
        audit_a_round(audit, r)
    log = tampered / "audit.jsonl"
    lines = log.read_text().splitlines()
    edited = next(i for i, line in enumerate(lines) if "update_accepted" in line)
    lines[edited] = lines[edited].replace("3.2", "0.1")  # the MAC left as it was
    log.write_text("\n".join(lines) + "\n")


def deployed(run_dir: Path) -> Path:
    """The fixture's run folder as a deployed run's: no scenario (``flwr run`` on the
    ministry's SuperLink)."""
    summary = json.loads((run_dir / "summary.json").read_text())
    summary.pop("scenario_file", None)
    (run_dir / "summary.json").write_text(json.dumps(summary))
    return run_dir


def write_inventory_file(path: Path) -> Path:
    write_inventory(path, [
        InventoryEntry("css-de-laval", 11, "SHA256:lavalkeyfingerprint", "2026-09-01T12:00:00Z",
                       region="Laval"),
        InventoryEntry("css-des-laurentides", 13, "SHA256:laurentideskey",
                       "2026-09-02T09:30:00Z", region="Laurentides"),
        InventoryEntry("css-crie", 14, "SHA256:creekey", "2026-09-03T10:00:00Z",
                       region="Nord-du-Québec", indigenous_governed=True,
                       revoked_at="2026-10-01T00:00:00Z"),
    ])
    return path


def write_registry(root: Path, runs: Path) -> Path:
    registry.publish(runs / FINISHED, root)
    return root


class GrowingRun:
    """A run in progress: its folder's lock held (as the ServerApp holds it) while the
    test appends rounds and audit events (a real run follows, in ``tiny_federation``)."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        run_dir.mkdir(parents=True)
        self._lock = run_folder_lock(run_dir)
        self._lock.__enter__()
        self.audit = ServerAudit(run_dir)
        self.audit.event("run_started", run_name="growing", rounds=4)
        self.rounds = 0

    def add_round(self, *, reject: bool = False) -> None:
        self.rounds += 1
        audit_a_round(self.audit, self.rounds, reject=reject)
        run_folder.append_round(self.run_dir, round_line(self.rounds, reject=reject))

    def close(self) -> None:
        if self._lock is not None:
            self._lock.__exit__(None, None, None)
            self._lock = None  # type: ignore[assignment]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def console_server(*args: str, log: Path, port: int | None = None) -> Iterator[str]:
    """``perseverance-server console ARGS`` on ``port`` (default: a free one) of
    127.0.0.1 (the default host); yields its base URL; stops it by its PID."""
    port = port or free_port()
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "server.cli", "console", *args, "--port", str(port)],
            stdout=out, stderr=subprocess.STDOUT, env=dict(os.environ))
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"the console did not start: {log.read_text()}") from None
                time.sleep(0.2)
        yield f"http://127.0.0.1:{port}"
    finally:
        # Stopped as an operator stops it, by Ctrl-C (SIGINT): it must end at once, with
        # exit code 0 (checked unless the test already failed).
        process.send_signal(signal.SIGINT)
        try:
            code: int | None = process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            code = None
            process.kill()
            process.wait(timeout=10)
    if code != 0:
        raise AssertionError(f"the console did not stop cleanly on Ctrl-C (exit {code}): "
                             f"{log.read_text()[-2000:]}")


class TinyFederation:
    """``perseverance-sim run --scenario tiny`` writing its run folder under ``runs``, as a
    researcher starts it (a real federation on Ray, its output in ``log``)."""

    def __init__(self, process: subprocess.Popen[bytes], run_dir: Path, log: Path) -> None:
        self.process, self.run_dir, self.log = process, run_dir, log

    def wait_until_running(self, timeout: float) -> None:
        """Until the ServerApp holds the run folder's lock (the console says running)."""
        deadline = time.monotonic() + timeout
        while not lock_held(self.run_dir / LOCK):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the run did not start: {self.log.read_text()[-3000:]}")
            time.sleep(0.1)

    def wait(self, timeout: float) -> int:
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the run took over {timeout} s: "
                                 f"{self.log.read_text()[-3000:]}") from None


@contextmanager
def tiny_federation(runs: Path, work: Path, *overrides: str) -> Iterator[TinyFederation]:
    """A tiny federation (``--set`` ``overrides``) running in the background into
    ``runs/tiny-live``; stopped by its PID if still running on the way out (SIGINT, which
    the command handles by stopping Ray, then SIGKILL to its process group)."""
    ray_tmp = Path(f"/tmp/prs-ray-live-{os.getpid()}")  # Ray's socket paths must stay short
    env = {**os.environ, "RAY_TMPDIR": str(ray_tmp), "FLWR_HOME": str(work / "flwr"),
           "PERSEVERANCE_MINISTRY_KEY": str(work / "ministry-records.key")}
    run_dir = runs / "tiny-live"
    log = work / "sim.log"
    command = [str(Path(sys.executable).with_name("perseverance-sim")), "run",
               "--scenario", "tiny", *(a for o in overrides for a in ("--set", o)),
               "--out", str(run_dir)]
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env,
                                   start_new_session=True)
    try:
        yield TinyFederation(process, run_dir, log)
    finally:
        interrupt(process)
        shutil.rmtree(ray_tmp, ignore_errors=True)


def listening_addresses(port: int) -> list[str]:
    """Local addresses (hex, as /proc/net/tcp writes them) listening on ``port``."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            address, hex_port = fields[1].rsplit(":", 1)
            if int(hex_port, 16) == port and fields[3] == "0A":  # 0A: LISTEN
                found.append(address)
    return found


def tree_digest(root: Path) -> dict[str, tuple[int, float]]:
    """Every file under ``root`` with its size and modification time."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime)
            for p in sorted(root.rglob("*")) if p.is_file()}



def check_screenshot(page: Any, path: Path) -> None:
    """Write ``page``'s full-page screenshot to ``path`` and check that it shows a page:
    the viewport's width, at least half its height, many colours (text is anti-aliased)
    and no colour covering nearly all of it."""
    from PIL import Image

    page.screenshot(path=str(path), full_page=True)
    with Image.open(path) as shot:
        image = shot.convert("RGB")
    width, height = image.size
    assert width == VIEWPORT["width"] and height >= VIEWPORT["height"] // 2, image.size
    colours = image.getcolors(maxcolors=width * height) or []
    assert len(colours) >= 256, f"{path.name}: {len(colours)} colours"
    assert max(count for count, _ in colours) < 0.97 * width * height, f"{path.name}: blank"
