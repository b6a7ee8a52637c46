"""Peak memory of a whole process tree, sampled by a background thread.

The simulation engine starts Ray in-process: the GCS server and the raylet are
children of the driver, and every Ray worker (the ClientApp actors) is a child of the
raylet, so the driver and its descendants are everything a simulation uses on this
machine. On an existing cluster (``backend.address``) the workers belong to the
cluster's own raylet and are not counted.

Two sums are kept: resident set size (RSS, an upper bound: shared libraries and Ray's
shared-memory object store count once per process that maps them) and proportional set
size (PSS, shared pages split between the processes sharing them: what the tree costs
the machine; sampled less often, as reading it is not free). Everything is read from
``/proc`` (Linux): no extra package.
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


PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def process_rss(pid: int) -> int:
    """RSS of one process in bytes from ``/proc/PID/statm`` (0 when it has ended)."""
    try:
        return int((PROC / str(pid) / "statm").read_text().split()[1]) * PAGE_SIZE
    except (OSError, ValueError, IndexError):
        return 0


def process_pss(pid: int) -> int:
    """PSS of one process in bytes from ``/proc/PID/smaps_rollup`` (0 when it has ended).
    The kernel walks the page tables under the process's memory lock for this: about
    10 ms for a torch process, so it is sampled less often than RSS."""
    try:
        for line in (PROC / str(pid) / "smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def tree_memory(pid: int, with_pss: bool = True) -> tuple[int, int, int]:
    """(RSS sum, PSS sum, number of processes) of ``pid`` and all its descendants; the
    PSS sum is 0 unless ``with_pss``."""
    rss = pss = count = 0
    for member in descendants(pid):
        member_rss = process_rss(member)
        if member_rss:
            rss, count = rss + member_rss, count + 1
            pss += process_pss(member) if with_pss else 0
    return rss, pss, count


@dataclass
class TreeMemorySampler:
    """Samples the tree rooted at ``pid`` until stopped: RSS every ``interval`` seconds,
    PSS every ``pss_every`` samples (see ``process_pss``).

    Use as a context manager; ``phase(name)`` starts a new named peak (the overall peak
    keeps running).
    """

    pid: int = field(default_factory=os.getpid)
    interval: float = 0.5
    pss_every: int = 20
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

    def sample(self, with_pss: bool = True) -> None:
        rss, pss, count = tree_memory(self.pid, with_pss)
        with self._lock:
            self.samples += 1
            self.overall.update(rss, pss, count)
            if self._current is not None:
                self._current.update(rss, pss, count)

    def _run(self) -> None:
        tick = 0
        while not self._stop.is_set():
            started = time.monotonic()
            self.sample(with_pss=tick % self.pss_every == 0)
            tick += 1
            self._stop.wait(max(0.0, self.interval - (time.monotonic() - started)))
