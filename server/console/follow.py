"""Follow a growing JSON-lines file (``rounds.jsonl``, ``audit.jsonl``) without rereading it.

The run appends whole lines (the audit log under a lock, ``rounds.jsonl`` with one
``write``); a reader may still see a line half written. :class:`JsonLinesFollower` keeps
the byte offset of the last complete line and parses only what was appended since, so a
page polled every two seconds costs what the run wrote in two seconds. A file that
shrank or was replaced (a resumed run rewrites ``rounds.jsonl``) is read again from the
start. Reading only: the file is opened read-only and never locked.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class JsonLinesFollower:
    """The parsed lines of one file, brought up to date by :meth:`lines`."""

    path: Path
    _offset: int = 0
    _inode: int | None = None
    _entries: list[dict[str, Any]] = field(default_factory=list)
    _unreadable: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def lines(self) -> list[dict[str, Any]]:
        """Every complete line so far, oldest first (a copy)."""
        with self._lock:
            self._catch_up()
            return list(self._entries)

    @property
    def unreadable(self) -> int:
        """Complete lines that were not a JSON object (shown, never hidden)."""
        return self._unreadable

    def _catch_up(self) -> None:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            self._reset(None)
            return
        if stat.st_ino != self._inode or stat.st_size < self._offset:
            self._reset(stat.st_ino)
        if stat.st_size == self._offset:
            return
        with self.path.open("rb") as handle:
            handle.seek(self._offset)
            chunk = handle.read(stat.st_size - self._offset)
        complete = chunk.rfind(b"\n") + 1  # a line still being written waits for next time
        for raw in chunk[:complete].splitlines():
            if not raw.strip():
                continue
            try:
                entry = json.loads(raw)
            except ValueError:
                entry = None
            if isinstance(entry, dict):
                self._entries.append(entry)
            else:
                self._unreadable += 1
        self._offset += complete

    def _reset(self, inode: int | None) -> None:
        self._offset, self._inode, self._entries, self._unreadable = 0, inode, [], 0


class Followers:
    """One follower per file, shared by every request (the console's process-wide cache)."""

    def __init__(self) -> None:
        self._followers: dict[Path, JsonLinesFollower] = {}
        self._lock = threading.Lock()

    def get(self, path: Path) -> JsonLinesFollower:
        with self._lock:
            follower = self._followers.get(path)
            if follower is None:
                follower = self._followers[path] = JsonLinesFollower(path)
            return follower
