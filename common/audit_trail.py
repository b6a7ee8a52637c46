"""Append-only audit trails: one JSON object per line, each chained to the one before.

Both sides keep one (the ministry in the run folder, each centre in its state folder):
who connected, what ran, what was sent, refused or rejected, with UTC timestamps. Every
line carries ``prev``, the SHA-256 of the previous line (``"0" * 64`` for the first), so
that editing or deleting a past line breaks the chain at that point and
:func:`verify_trail` names it. Lines are appended under an exclusive ``flock`` and
fsynced: several processes of the same side (Flower starts one per message) may write
to one trail.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

GENESIS = "0" * 64
# Enough to hold the longest line we write (events are small); the last line is all we
# need to read before appending.
TAIL_BYTES = 65_536


def _digest(line: str) -> str:
    return hashlib.sha256(line.encode("utf-8")).hexdigest()


def _last_line(handle: Any) -> str | None:
    handle.seek(0, os.SEEK_END)
    size = handle.tell()
    if size == 0:
        return None
    handle.seek(max(0, size - TAIL_BYTES))
    lines = handle.read().decode("utf-8", errors="replace").splitlines()
    return lines[-1] if lines else None


class AuditTrail:
    """An append-only, hash-chained JSON-lines file.

    Parameters
    ----------
    path : Path
        The trail's file; its folder is created if needed.
    actor : str
        Who writes it (``"ministry"`` or the centre's name), repeated on every line.
    """

    def __init__(self, path: Path, actor: str) -> None:
        self.path = path
        self.actor = actor
        path.parent.mkdir(parents=True, exist_ok=True)

    def record(self, event: str, **fields: Any) -> dict[str, Any]:
        """Append one event with the current UTC time; returns what was written."""
        with self.path.open("a+b") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                last = _last_line(handle)
                entry = {
                    "at": datetime.now(UTC).isoformat(timespec="milliseconds"),
                    "actor": self.actor,
                    "event": event,
                    **fields,
                    "prev": GENESIS if last is None else _digest(last),
                }
                line = json.dumps(entry, sort_keys=True, default=str, allow_nan=False)
                handle.seek(0, os.SEEK_END)
                handle.write((line + "\n").encode("utf-8"))
                handle.flush()
                os.fsync(handle.fileno())
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
        return entry


def read_trail(path: Path) -> list[dict[str, Any]]:
    """Every event of a trail, oldest first (an absent file is an empty trail)."""
    if not path.is_file():
        return []
    text = path.read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def verify_trail(path: Path) -> list[str]:
    """Where the chain of a trail is broken: one sentence per broken line, none if intact."""
    problems = []
    previous = GENESIS
    lines = path.read_text(encoding="utf-8").splitlines() if path.is_file() else []
    for number, line in enumerate(lines, start=1):
        try:
            claimed = json.loads(line).get("prev")
        except (ValueError, AttributeError):
            problems.append(f"Line {number} of {path} is not a JSON object.")
            claimed = None
        else:
            if claimed != previous:
                problems.append(
                    f"Line {number} of {path} does not follow line {number - 1}: "
                    "a line was edited, removed or inserted."
                )
        previous = _digest(line)
    return problems
