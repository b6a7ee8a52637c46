"""Peak memory of a whole process tree, sampled by a background thread.

The simulation engine starts Ray in-process: the GCS server and the raylet are
children of the driver, and every Ray worker (the ClientApp actors) is a child of the
raylet, so the driver and its descendants are everything a simulation uses on this
machine. On an existing cluster (``backend.address``) the workers belong to the
cluster's own raylet and are not counted.

Two sums are kept: resident set size (RSS, an upper bound: shared libraries and Ray's
shared-memory object store count once per process that maps them) and proportional set
size (PSS, shared pages split between the processes sharing them: what the tree costs
the machine). Everything is read from ``/proc`` (Linux), which costs the watched
processes nothing and needs no extra package.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

PROC = Path("/proc")


@dataclass
class MemoryPeak:
    """Largest sums seen while a phase ran, in bytes, and the largest process count."""

    rss_bytes: int = 0
    pss_bytes: int = 0
    processes: int = 0

    def update(self, rss: int, pss: int, processes: int) -> None:
        self.rss_bytes = max(self.rss_bytes, rss)
        self.pss_bytes = max(self.pss_bytes, pss)
        self.processes = max(self.processes, processes)


def _parent_pids() -> dict[int, int]:
    """Parent of every live process, from ``/proc/PID/stat`` (field 4, after the name)."""
    parents: dict[int, int] = {}
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            parents[int(entry.name)] = int(stat[stat.rindex(")") + 2 :].split()[1])
        except (OSError, ValueError, IndexError):
            continue  # ended while listed
    return parents


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it, parents before children."""
    children: dict[int, list[int]] = {}
    for child, parent in _parent_pids().items():
        children.setdefault(parent, []).append(child)
    tree, queue = [], [pid]
    while queue:
        current = queue.pop(0)
        tree.append(current)
        queue.extend(children.get(current, []))
    return tree


def process_memory(pid: int) -> tuple[int, int]:
    """(RSS, PSS) of one process in bytes from ``/proc/PID/smaps_rollup``; (0, 0) when
    it has ended or cannot be read."""
    rss = pss = 0
    try:
        for line in (PROC / str(pid) / "smaps_rollup").read_text().splitlines():
            if line.startswith("Rss:"):
                rss = int(line.split()[1]) * 1024
            elif line.startswith("Pss:"):
                pss = int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return 0, 0
    return rss, pss


def tree_memory(pid: int) -> tuple[int, int, int]:
    """(RSS sum, PSS sum, number of processes) of ``pid`` and all its descendants."""
    rss = pss = count = 0
    for member in descendants(pid):
        member_rss, member_pss = process_memory(member)
        if member_rss:
            rss, pss, count = rss + member_rss, pss + member_pss, count + 1
    return rss, pss, count


@dataclass
class TreeMemorySampler:
    """Samples the tree rooted at ``pid`` every ``interval`` seconds until stopped.

    Use as a context manager; ``phase(name)`` starts a new named peak (the overall peak
    keeps running). Reads ``/proc`` only: no cost to the processes it watches.
    """

    pid: int = field(default_factory=os.getpid)
    interval: float = 0.25
    overall: MemoryPeak = field(default_factory=MemoryPeak)
    phases: dict[str, MemoryPeak] = field(default_factory=dict)
    samples: int = 0
    _current: MemoryPeak | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __enter__(self) -> TreeMemorySampler:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="tree-memory", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.sample()

    def phase(self, name: str) -> MemoryPeak:
        """Start recording the peak of phase ``name`` (ends when the next one starts)."""
        with self._lock:
            self._current = self.phases.setdefault(name, MemoryPeak())
        self.sample()
        return self._current

    def sample(self) -> None:
        rss, pss, count = tree_memory(self.pid)
        with self._lock:
            self.samples += 1
            self.overall.update(rss, pss, count)
            if self._current is not None:
                self._current.update(rss, pss, count)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            self.sample()
            self._stop.wait(max(0.0, self.interval - (time.monotonic() - started)))
