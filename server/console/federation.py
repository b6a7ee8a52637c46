"""The federation at a glance: enrolled centres, their connection, their refusals.

The centres come from the ministry's inventory (``server.deployment.enrolment``); whether each is
connected, and when it was last seen, from the SuperLink (``flwr supernode list``
through a connection to the address given, the operator tunnel's loopback end in
deployment), asked at most every :data:`SUPERLINK_CACHE_SECONDS`; refusals from the
run folders (each run's ``centres_refused`` and its audit log's ``centre_refused``
events, newest run first).
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

from server.console.runs import RunFolders, read_json_file
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


def refusals_by_centre(runs: RunFolders,
                       names_by_node: dict[int, str]) -> dict[str, tuple[str, str]]:
    """The newest refusal of each centre: centre name -> (run folder, reason)."""
    found: dict[str, tuple[str, str]] = {}
    for name in runs.names():  # newest first: the first refusal seen of a centre is kept
        folder = runs.folder(name)
        if folder is None:
            continue
        for event in reversed(runs.followers.get(folder / AUDIT_FILE).lines()):
            node = event.get("node")
            if event.get("event") != "centre_refused" or not isinstance(node, int):
                continue
            centre = names_by_node.get(node)
            if centre and centre not in found:
                found[centre] = (name, str(event.get("reason", "")))
        refused = read_json_file(folder / SUMMARY).get("centres_refused")
        for centre, reason in (refused.items() if isinstance(refused, dict) else []):
            found.setdefault(str(centre), (name, str(reason)))
    return found


def federation(inventory: Path | None, runs: RunFolders,
               superlink: SuperLinkNodes | None) -> tuple[list[CentreRow], str | None,
                                                          SuperLinkView | None]:
    """The centres of the inventory with their state; the inventory's error, if any.
    A node the SuperLink knows but the inventory does not gets a row of its own (a key
    registered outside ``enrol``: the ministry should know whose it is)."""
    try:
        entries = read_inventory(inventory) if inventory is not None else []
    except EnrolmentError as exc:
        return [], str(exc), None
    view = superlink.view() if superlink is not None else None
    names = {e.node_id: e.centre for e in entries if not e.revoked_at}
    refusals = refusals_by_centre(runs, names)
    rows = []
    for entry in sorted(entries, key=lambda e: e.centre):
        row = CentreRow(entry, view.nodes.get(entry.node_id) if view else None)
        if entry.centre in refusals:
            row.refused_in, row.refusal = refusals[entry.centre]
        rows.append(row)
    known = {e.node_id for e in entries}
    for node_id, state in sorted(view.nodes.items()) if view else []:
        if node_id not in known and state.status != "unregistered":
            rows.append(CentreRow(InventoryEntry("", node_id, "", ""), state))
    return rows, None, view
