"""What the console reads from the run folders: status, figures, rounds, events.

A run folder (``server.run_folder``) is written by the ServerApp; the console only
reads it. Its status:

- ``running``: the ServerApp holds the folder's lock (``server.federation.checkpoint.LOCK``), seen
  in the kernel's table of locks (``/proc/locks``) so that the console never takes the
  lock itself, not even for a moment (a run starting then would be refused);
- ``finished``: the final summary is written and every planned round was done;
- ``stopped``: the final summary says why the run stopped early (``stopped``);
- ``failed``: neither: the process ended without its final summary, or its audit log's
  last word is that it started (or resumed) and nothing says it ended (the process
  died; a summary left by an earlier attempt does not count), or the run stopped before
  its first round.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common.i18n.catalogue import sentence
from common.records.key import RecordsKeyError, read_key
from common.records.trail import check_trail, key_problem
from server.console.follow import Followers
from server.federation.audit_log import AUDIT_FILE, KEY_ENV, ministry_key_path
from server.federation.checkpoint import LOCK
from server.run_folder import PARTICIPATION, ROUNDS, SUMMARY, stopped_reason

RUNNING, FINISHED, STOPPED, FAILED = "running", "finished", "stopped", "failed"
PROC_LOCKS = Path("/proc/locks")


def read_json_file(path: Path) -> dict[str, Any]:
    """A JSON object file, or ``{}`` when it is absent or being replaced."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def lock_held(lock_file: Path, proc_locks: Path = PROC_LOCKS) -> bool:
    """Whether a process holds a ``flock`` on ``lock_file`` (from ``/proc/locks``)."""
    try:
        stat = lock_file.stat()
        table = proc_locks.read_text(encoding="ascii", errors="replace")
    except OSError:
        return False
    device = f"{os.major(stat.st_dev):02x}:{os.minor(stat.st_dev):02x}:{stat.st_ino}"
    return any(len(fields) >= 6 and fields[1] == "FLOCK" and fields[5] == device
               for fields in (line.split() for line in table.splitlines()))


LIFECYCLE = ("run_started", "run_resumed", "run_finished", "run_stopped")


def run_status(run_dir: Path, summary: Mapping[str, Any],
               events: list[dict[str, Any]] | None = None) -> str:
    """``running``, ``finished``, ``stopped`` or ``failed`` (see the module's text);
    ``events`` the run's audit log, if it has one."""
    if lock_held(run_dir / LOCK):
        return RUNNING
    last = next((e.get("event") for e in reversed(events or [])
                 if e.get("event") in LIFECYCLE), None)
    if "rounds_completed" not in summary or last in ("run_started", "run_resumed"):
        return FAILED
    if summary.get("stopped"):
        return STOPPED if summary.get("rounds_completed", 0) > 0 else FAILED
    return FINISHED


def finite(value: Any) -> float | None:
    """A figure that can be shown: a finite number, else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


@dataclass(frozen=True)
class RunOverview:
    """One row of ``/runs``."""

    name: str
    status: str
    rounds_done: int
    rounds_planned: int | None
    auc_pooled: float | None
    epsilon_max: float | None
    updates_rejected: int
    stopped: str | None
    modified: float


@dataclass
class RunDetail:
    """What ``/runs/<name>`` shows, as it stands."""

    overview: RunOverview
    summary: dict[str, Any]
    rounds: list[dict[str, Any]]
    events: list[dict[str, Any]]
    centres: list[dict[str, Any]] = field(default_factory=list)
    rejections: list[dict[str, Any]] = field(default_factory=list)
    refusals: list[dict[str, Any]] = field(default_factory=list)
    absences: list[dict[str, Any]] = field(default_factory=list)
    equity: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AuditCheck:
    """Whether a run's audit log verifies: ``keyed`` says if the MACs could be checked;
    ``key_problem`` why the key cannot check them (missing, or not the one that signed
    the log: named by key ids), as ``audit verify`` says it; ``problems`` the lines
    altered."""

    lines: int
    keyed: bool
    problems: list[str]
    key_problem: str | None = None


class RunFolders:
    """The run folders under one directory, read on demand (never written)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.followers = Followers()

    def folder(self, name: str) -> Path | None:
        """The run folder ``name`` directly under the root, or None (no path tricks)."""
        if not name or name.startswith(".") or "/" in name or "\\" in name:
            return None
        path = self.root / name
        return path if path.is_dir() and path.resolve().parent == self.root.resolve() else None

    def names(self) -> list[str]:
        """Every run folder (one with a summary, rounds or an audit log), newest first."""
        if not self.root.is_dir():
            return []
        found = [p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")
                 and any((p / f).exists() for f in (SUMMARY, ROUNDS, AUDIT_FILE))]
        return [p.name for p in sorted(found, key=_modified, reverse=True)]

    def overview(self, name: str) -> RunOverview | None:
        run_dir = self.folder(name)
        if run_dir is None:
            return None
        summary = read_json_file(run_dir / SUMMARY)
        rounds = self.followers.get(run_dir / ROUNDS).lines()
        events = self.followers.get(run_dir / AUDIT_FILE).lines()
        status = run_status(run_dir, summary, events)
        planned = summary.get("rounds")
        if not isinstance(planned, int):
            started = [e for e in events if e.get("event") in ("run_started", "run_resumed")]
            planned = started[-1].get("rounds") if started else None
        epsilons = [finite(r.get("train_epsilon_max")) for r in rounds]
        live_auc = next((finite(r.get("eval_auc")) for r in reversed(rounds)
                         if finite(r.get("eval_auc")) is not None), None)
        final = status != RUNNING and "rounds_completed" in summary
        return RunOverview(
            name=name, status=status,
            rounds_done=int(summary["rounds_completed"]) if final else len(rounds),
            rounds_planned=planned if isinstance(planned, int) else None,
            auc_pooled=finite(summary.get("auc_pooled")) if final else live_auc,
            epsilon_max=(finite(summary.get("epsilon_max")) if final else
                         max((e for e in epsilons if e is not None), default=None)),
            updates_rejected=(int(summary.get("updates_rejected") or 0) if final else
                              sum(len(r.get("rejections") or []) for r in rounds)),
            stopped=stopped_reason(summary) or None,
            modified=_modified(run_dir),
        )

    def overviews(self) -> list[RunOverview]:
        return [o for o in (self.overview(n) for n in self.names()) if o is not None]

    def detail(self, name: str) -> RunDetail | None:
        overview = self.overview(name)
        run_dir = self.folder(name)
        if overview is None or run_dir is None:
            return None
        events = self.followers.get(run_dir / AUDIT_FILE).lines()
        detail = RunDetail(overview, read_json_file(run_dir / SUMMARY),
                           self.followers.get(run_dir / ROUNDS).lines(), events)
        detail.rejections = [e for e in events
                             if e.get("event") in ("update_rejected", "evaluation_rejected")]
        detail.refusals = [e for e in events if e.get("event") == "centre_refused"]
        detail.absences = [e for e in events if e.get("event") == "centre_absent"]
        detail.centres = centre_rows(events, read_json_file(run_dir / PARTICIPATION))
        if overview.status != RUNNING:
            detail.equity = read_json_file(run_dir / "equity.json")
        return detail

    def audit(self, name: str) -> tuple[list[dict[str, Any]], AuditCheck] | None:
        run_dir = self.folder(name)
        if run_dir is None:
            return None
        return self.followers.get(run_dir / AUDIT_FILE).lines(), verify_audit(run_dir)


def centre_rows(events: list[dict[str, Any]],
                participation: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per centre (node): its name, rounds trained, updates rejected, refusals,
    the run's epsilon (once ``participation.json`` is written). A centre's lifetime
    spending is not sent: it stays in its own ledger (``common.releases``)."""
    rows: dict[int, dict[str, Any]] = {}

    def row(node: Any) -> dict[str, Any] | None:
        if not isinstance(node, int) or node < 0:
            return None
        return rows.setdefault(node, {"node": node, "name": "", "trained": 0, "rejected": 0,
                                      "refused": 0, "absent": 0, "epsilon": None,
                                      "epsilon_evaluation": None})

    counters = {"update_accepted": "trained", "update_rejected": "rejected",
                "centre_refused": "refused", "centre_absent": "absent"}
    for event in events:
        kind = str(event.get("event"))
        target = row(event.get("node"))
        if target is None:
            continue
        if kind in counters:
            target[counters[kind]] += 1
        elif kind == "centre_records":
            target["name"] = str(event.get("actor") or target["name"])
    for centre in participation.get("centres", []) if isinstance(participation, Mapping) else []:
        target = row(centre.get("node")) if isinstance(centre, Mapping) else None
        if target is not None:
            target["epsilon"] = finite(centre.get("epsilon"))
            target["epsilon_evaluation"] = finite(centre.get("epsilon_evaluation"))
    return [rows[node] for node in sorted(rows)]


def verify_audit(run_dir: Path) -> AuditCheck:
    """Check the ministry's audit log: with its key where the console can read it, else
    its chain only (links and numbers)."""
    key_file = ministry_key_path()
    try:
        key = read_key(key_file)
    except RecordsKeyError as exc:
        return AuditCheck(0, False, [], sentence(exc))
    check = check_trail(run_dir / AUDIT_FILE, key)
    # Without a key the chain alone is checked (the page says so); with another key's
    # lines, their MACs say nothing here, and the page names the key, not an edit.
    problem = key_problem(check, key, key_file, f"${KEY_ENV}") if key is not None else None
    return AuditCheck(len(check.links), key is not None and problem is None,
                      [p.sentence() for p in check.problems], problem)


def _modified(path: Path) -> float:
    times = [path.stat().st_mtime]
    for name in (SUMMARY, ROUNDS, AUDIT_FILE):
        try:
            times.append((path / name).stat().st_mtime)
        except OSError:
            continue
    return max(times)
