"""The federation at a glance: enrolled centres, their connection, their refusals.

The centres come from the ministry's inventory (``server.deployment.enrolment``); whether each is
connected, and when it was last seen, from the SuperLink (``flwr supernode list``
through a connection to the address given, the operator tunnel's loopback end in
deployment), asked at most every :data:`SUPERLINK_CACHE_SECONDS`; refusals and the runs
a centre took part in from the run folders of the same federation only (each run's
``centres_refused`` and its audit log's events, newest run first): the deployed
federation's runs, or the loopback deployment's (``?federation=loopback``); a simulated
run's centres are never the inventory's, even when they bear the same name.
"""

from __future__ import annotations

import atexit
import json
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from server.console.runs import DEPLOYED, LOOPBACK, RunFolders, read_json_file
from server.deployment.enrolment import (
    EnrolmentError,
    InventoryEntry,
    flower_executable,
    read_inventory,
    write_connection,
)
from server.federation.audit_log import AUDIT_FILE
from server.run_folder import SUMMARY

SUPERLINK_CACHE_SECONDS = 10.0
SUPERLINK_TIMEOUT_SECONDS = 15.0
CONNECTION = "perseverance-console"


@dataclass(frozen=True)
class NodeState:
    """A SuperNode as the SuperLink reports it (times as the SuperLink writes them)."""

    status: str
    online_at: str
    offline_at: str


@dataclass
class SuperLinkView:
    """The SuperLink's nodes, or the sentence that says why it could not be asked."""

    nodes: dict[int, NodeState] = field(default_factory=dict)
    error: str | None = None
    asked_at: float = 0.0


class SuperLinkNodes:
    """Ask a SuperLink for its nodes through a ``flwr`` connection of the console's own
    (in a private Flower home: the operator's profile is never touched)."""

    def __init__(self, address: str) -> None:
        self.address = address
        self._home = Path(tempfile.mkdtemp(prefix="perseverance-console-flwr-"))
        atexit.register(shutil.rmtree, self._home, ignore_errors=True)
        write_connection(self._home, CONNECTION, address, None)
        self._view = SuperLinkView()
        self._lock = threading.Lock()

    def view(self) -> SuperLinkView:
        with self._lock:
            if time.monotonic() - self._view.asked_at > SUPERLINK_CACHE_SECONDS:
                self._view = self._ask()
            return self._view

    def _ask(self) -> SuperLinkView:
        now = time.monotonic()
        try:
            argv = [flower_executable("flwr"), "supernode", "list", CONNECTION,
                    "--format", "json"]
            result = subprocess.run(
                argv, capture_output=True, text=True, timeout=SUPERLINK_TIMEOUT_SECONDS,
                check=False, env={"FLWR_HOME": str(self._home), "PATH": "/usr/bin:/bin",
                                  "FLWR_TELEMETRY_ENABLED": "0",
                                  "FLWR_DISABLE_UPDATE_CHECK": "1"})
        except (EnrolmentError, subprocess.TimeoutExpired, OSError) as exc:
            return SuperLinkView(error=f"{self.address}: {exc}", asked_at=now)
        try:  # flwr prints one JSON object, possibly over several lines
            payload = json.loads(result.stdout[max(result.stdout.find("{"), 0):])
        except ValueError:
            payload = {}
        if not isinstance(payload, dict) or not payload.get("success"):
            reason = str(payload.get("error-message", "")) if isinstance(payload, dict) else ""
            last = (reason or result.stderr.strip() or f"flwr exited with {result.returncode}")
            return SuperLinkView(error=f"{self.address}: {last.splitlines()[-1]}", asked_at=now)
        nodes: dict[int, NodeState] = {}
        for node in payload.get("nodes", []):
            try:
                nodes[int(node["node-id"])] = NodeState(
                    str(node.get("status", "")), _when(node.get("online-at")),
                    _when(node.get("offline-at")))
            except (KeyError, TypeError, ValueError):
                continue
        return SuperLinkView(nodes=nodes, asked_at=now)


def _when(value: Any) -> str:
    return "" if value in (None, "N/A") else str(value)


@dataclass
class CentreRow:
    """One line of the federation page."""

    entry: InventoryEntry
    node: NodeState | None = None
    refusal: str | None = None
    refused_in: str | None = None
    runs: int = 0
    last_run: str | None = None


@dataclass
class CentreHistory:
    """What the runs of one federation say of its centres (centre name -> ...)."""

    refusals: dict[str, tuple[str, str]] = field(default_factory=dict)  # (run, reason)
    runs: dict[str, list[str]] = field(default_factory=dict)  # runs taken part in, newest first


# The audit events that say a centre (node) took part in a run.
TOOK_PART = ("update_accepted", "update_rejected", "centre_records", "centre_refused",
             "evaluation_rejected")


def centre_history(runs: RunFolders, names: list[str],
                   names_by_node: dict[int, str]) -> CentreHistory:
    """The newest refusal of each centre and the runs it took part in, over ``names``
    (run folders, newest first)."""
    history = CentreHistory()
    for name in names:  # newest first: the first refusal seen of a centre is kept
        folder = runs.folder(name)
        if folder is None:
            continue
        seen: set[str] = set()
        for event in reversed(runs.followers.get(folder / AUDIT_FILE).lines()):
            node = event.get("node")
            centre = names_by_node.get(node) if isinstance(node, int) else None
            if not centre or event.get("event") not in TOOK_PART:
                continue
            seen.add(centre)
            if event.get("event") == "centre_refused" and centre not in history.refusals:
                history.refusals[centre] = (name, str(event.get("reason", "")))
        refused = read_json_file(folder / SUMMARY).get("centres_refused")
        for centre, reason in (refused.items() if isinstance(refused, dict) else []):
            seen.add(str(centre))
            history.refusals.setdefault(str(centre), (name, str(reason)))
        for centre in seen:
            history.runs.setdefault(centre, []).append(name)
    return history


@dataclass
class FederationPage:
    """The federation page: its centres, the federation whose runs are read (``kind``),
    how many runs each kind has (simulated runs are counted, never read), the
    inventory's error and the SuperLink's view."""

    rows: list[CentreRow]
    kind: str
    counts: dict[str, int]
    error: str | None = None
    view: SuperLinkView | None = None


def federation(inventory: Path | None, runs: RunFolders, superlink: SuperLinkNodes | None,
               kind: str | None = None) -> FederationPage:
    """The centres of the inventory with their state, refusals and runs from the runs of
    federation ``kind`` (``deployed`` or ``loopback``; by default the deployed one, or
    the loopback deployment's when only it has runs). A node the SuperLink knows but
    the inventory does not gets a row of its own (a key registered outside ``enrol``:
    the ministry should know whose it is)."""
    overviews = runs.overviews()
    counts = {k: sum(1 for o in overviews if o.kind == k) for k in (DEPLOYED, LOOPBACK)}
    counts["simulated"] = len(overviews) - counts[DEPLOYED] - counts[LOOPBACK] + sum(
        len(y.years) for y in runs.years_runs())
    if kind not in (DEPLOYED, LOOPBACK):
        kind = LOOPBACK if counts[LOOPBACK] and not counts[DEPLOYED] else DEPLOYED
    try:
        entries = read_inventory(inventory) if inventory is not None else []
    except EnrolmentError as exc:
        return FederationPage([], kind, counts, str(exc))
    view = superlink.view() if superlink is not None else None
    names = {e.node_id: e.centre for e in entries if not e.revoked_at}
    history = centre_history(runs, [o.name for o in overviews if o.kind == kind], names)
    rows = []
    for entry in sorted(entries, key=lambda e: e.centre):
        row = CentreRow(entry, view.nodes.get(entry.node_id) if view else None)
        if entry.centre in history.refusals:
            row.refused_in, row.refusal = history.refusals[entry.centre]
        taken = history.runs.get(entry.centre, [])
        row.runs, row.last_run = len(taken), (taken[0] if taken else None)
        rows.append(row)
    known = {e.node_id for e in entries}
    for node_id, state in sorted(view.nodes.items()) if view else []:
        if node_id not in known and state.status != "unregistered":
            rows.append(CentreRow(InventoryEntry("", node_id, "", ""), state))
    return FederationPage(rows, kind, counts, None, view)
