"""What the console reads from the run folders: status, figures, rounds, events.

A run folder (``server.run_folder``) is written by the ServerApp; the console only
reads it. Its status:

- ``running``: the ServerApp holds the folder's lock (``server.federation.checkpoint.LOCK``), seen
  in the kernel's table of locks (``/proc/locks``) so that the console never takes the
  lock itself, not even for a moment (a run starting then would be refused);
- ``finished``: the final summary is written and every planned round was done;
- ``stopped``: the final summary says why the run stopped early (``stopped``), before
  its first round included (every centre refused: "arrêté avant la fin");
- ``failed``: neither: the process ended without its final summary, or its audit log's
  last word is that it started (or resumed) and nothing says it ended (the process
  died; a summary left by an earlier attempt does not count).

Its kind (:func:`run_kind`): ``simulated`` (the simulation engine: the centres read
their data from the run's folder, ``data_dir`` in ``config.toml``), ``loopback``
(``perseverance-sim dev-federation``: ``"deployment": "loopback"`` in ``summary.json``,
written when the run starts) or ``deployed`` (anything else: a ``flwr run`` on the
ministry's SuperLink).

A multi-year simulation (``perseverance-sim years --out DIR``) is a folder of its own
under the runs folder: ``years.json`` (one row a year, rewritten after each year), the
centres' shared ``state/`` and one run folder a year (``year-1``, ``year-2``, ...),
named here ``DIR/year-N``.
"""

from __future__ import annotations

import json
import math
import os
import re
import tomllib
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
from server.run_folder import (
    CONFIG,
    PARTICIPATION,
    ROUNDS,
    SUMMARY,
    stopped_reason,
    summary_or_empty,
)
from server.summary import Summary

RUNNING, FINISHED, STOPPED, FAILED = "running", "finished", "stopped", "failed"
DEPLOYED, LOOPBACK, SIMULATED = "deployed", "loopback", "simulated"
KINDS = (DEPLOYED, LOOPBACK, SIMULATED)
PROC_LOCKS = Path("/proc/locks")
# What ``perseverance-sim years`` writes (simulations.years: YEARS_FILE, year_dir).
YEARS_FILE = "years.json"
YEAR_FOLDER = re.compile(r"year-([1-9][0-9]?)")
RUN_FILES = (SUMMARY, ROUNDS, AUDIT_FILE)


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


def run_status(run_dir: Path, summary: Summary,
               events: list[dict[str, Any]] | None = None) -> str:
    """``running``, ``finished``, ``stopped`` or ``failed`` (see the module's text);
    ``events`` the run's audit log, if it has one."""
    if lock_held(run_dir / LOCK):
        return RUNNING
    last = next((e.get("event") for e in reversed(events or [])
                 if e.get("event") in LIFECYCLE), None)
    if summary.rounds_completed is None or last in ("run_started", "run_resumed"):
        return FAILED
    return STOPPED if summary.stopped else FINISHED


def run_kind(run_dir: Path, summary: Summary) -> str:
    """``simulated``, ``loopback`` or ``deployed`` (see the module's text)."""
    if summary.deployment == LOOPBACK:
        return LOOPBACK
    if summary.scenario_file is not None:
        return SIMULATED
    try:
        config = tomllib.loads((run_dir / CONFIG).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        config = {}
    return SIMULATED if config.get("data_dir") else DEPLOYED


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
    kind: str
    rounds_done: int
    rounds_planned: int | None
    auc_pooled: float | None
    epsilon_max: float | None
    updates_rejected: int
    stopped: str | None
    modified: float

    @property
    def year(self) -> int | None:
        """The year of a multi-year simulation's run (``DIR/year-N``), else None."""
        match = YEAR_FOLDER.fullmatch(self.name.rpartition("/")[2])
        return int(match.group(1)) if match and "/" in self.name else None


@dataclass
class YearsRun:
    """A multi-year simulation: its years' runs (oldest first) and the rows of
    ``years.json`` (by year) as they stand."""

    name: str
    years: list[RunOverview]
    table: dict[int, dict[str, Any]]
    modified: float

    @property
    def status(self) -> str:
        """Running while a year runs; else the worst of its years (failed, stopped)."""
        statuses = {y.status for y in self.years}
        for status in (RUNNING, FAILED, STOPPED):
            if status in statuses:
                return status
        return FINISHED

    def school_year(self, year: int) -> str:
        value = self.table.get(year, {}).get("school_year")
        return value if isinstance(value, str) else ""


@dataclass
class RunDetail:
    """What ``/runs/<name>`` shows, as it stands."""

    overview: RunOverview
    summary: Summary
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

    def _child(self, name: str) -> Path | None:
        """The folder ``name`` directly under the root, or None (no path tricks)."""
        if not name or name.startswith(".") or "/" in name or "\\" in name:
            return None
        path = self.root / name
        return path if path.is_dir() and path.resolve().parent == self.root.resolve() else None

    def folder(self, name: str) -> Path | None:
        """The run folder ``name``: a folder directly under the root, or ``DIR/year-N``
        of a multi-year simulation ``DIR``; None otherwise."""
        group, _, year = name.partition("/")
        if not year:
            return self._child(name)
        parent = self._child(group)
        if parent is None or not YEAR_FOLDER.fullmatch(year) or not is_years_run(parent):
            return None
        path = parent / year
        return path if path.is_dir() and path.resolve().parent == parent.resolve() else None

    def names(self) -> list[str]:
        """Every run folder directly under the root (one with a summary, rounds or an
        audit log), newest first; multi-year simulations are :meth:`years_runs`."""
        if not self.root.is_dir():
            return []
        found = [p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")
                 and is_run_folder(p)]
        return [p.name for p in sorted(found, key=_modified, reverse=True)]

    def years_names(self) -> list[str]:
        """Every multi-year simulation directly under the root, newest first."""
        if not self.root.is_dir():
            return []
        found = [p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")
                 and not is_run_folder(p) and is_years_run(p)]
        return [p.name for p in sorted(found, key=_years_modified, reverse=True)]

    def years_run(self, name: str) -> YearsRun | None:
        """The multi-year simulation ``name`` with its years so far."""
        folder = self._child(name)
        if folder is None or is_run_folder(folder) or not is_years_run(folder):
            return None
        table = {}
        rows = read_json_file(folder / YEARS_FILE).get("years")
        for row in rows if isinstance(rows, list) else []:
            if isinstance(row, dict) and isinstance(row.get("year"), int):
                table[row["year"]] = row
        years = [o for o in (self.overview(f"{name}/{y.name}") for y in year_folders(folder))
                 if o is not None]
        return YearsRun(name, years, table, _years_modified(folder))

    def years_runs(self) -> list[YearsRun]:
        return [y for y in (self.years_run(n) for n in self.years_names()) if y is not None]

    def overview(self, name: str) -> RunOverview | None:
        run_dir = self.folder(name)
        if run_dir is None:
            return None
        summary = summary_or_empty(run_dir)
        rounds = self.followers.get(run_dir / ROUNDS).lines()
        events = self.followers.get(run_dir / AUDIT_FILE).lines()
        status = run_status(run_dir, summary, events)
        planned = summary.rounds
        if planned is None:
            started = [e for e in events if e.get("event") in ("run_started", "run_resumed")]
            planned = started[-1].get("rounds") if started else None
        epsilons = [finite(r.get("train_epsilon_max")) for r in rounds]
        live_auc = next((finite(r.get("eval_auc")) for r in reversed(rounds)
                         if finite(r.get("eval_auc")) is not None), None)
        final = status != RUNNING and summary.rounds_completed is not None
        return RunOverview(
            name=name, status=status, kind=run_kind(run_dir, summary),
            rounds_done=(summary.rounds_completed or 0) if final else len(rounds),
            rounds_planned=planned if isinstance(planned, int) else None,
            auc_pooled=finite(summary.auc_pooled) if final else live_auc,
            epsilon_max=(finite(summary.epsilon_max) if final else
                         max((e for e in epsilons if e is not None), default=None)),
            updates_rejected=(summary.updates_rejected or 0 if final else
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
        detail = RunDetail(overview, summary_or_empty(run_dir),
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
        if kind in ("centre_records", "centre_refused") and not target["name"]:
            # The identity the ministry gave the node (its inventory's centre, or the
            # name it declared), else the records' actor.
            target["name"] = str(event.get("centre") or event.get("actor") or "")
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


def is_run_folder(path: Path) -> bool:
    """Whether ``path`` is a run folder: it holds a summary, rounds or an audit log."""
    return any((path / f).exists() for f in RUN_FILES)


def year_folders(path: Path) -> list[Path]:
    """The years' run folders of a multi-year simulation, in year order."""
    try:
        found = [(int(m.group(1)), p) for p in path.iterdir()
                 if p.is_dir() and (m := YEAR_FOLDER.fullmatch(p.name)) and is_run_folder(p)]
    except OSError:
        return []
    return [p for _, p in sorted(found)]


def is_years_run(path: Path) -> bool:
    """Whether ``path`` is a multi-year simulation: ``years.json`` or a year's run."""
    return (path / YEARS_FILE).is_file() or bool(year_folders(path))


def _years_modified(path: Path) -> float:
    return max([path.stat().st_mtime, *(_modified(p) for p in year_folders(path))])


def _modified(path: Path) -> float:
    times = [path.stat().st_mtime]
    for name in (SUMMARY, ROUNDS, AUDIT_FILE):
        try:
            times.append((path / name).stat().st_mtime)
        except OSError:
            continue
    return max(times)
