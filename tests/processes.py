"""Finding the processes a test started, by what their command line mentions."""

from __future__ import annotations

import os
from pathlib import Path


def pids_mentioning(text: str) -> list[int]:
    """PIDs of live processes (other than this one) whose command line contains ``text``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="ignore")
        except OSError:
            continue
        if text in cmdline:
            found.append(int(entry.name))
    return found
