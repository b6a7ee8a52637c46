"""What a command is waiting for, said on stderr while it waits, and its own wall time.

A command that waits more than a moment (an engine starting, data being generated, a
federation's phase) says what for: on a terminal, one line with a spinner and the
seconds elapsed (rich), erased when the wait ends; elsewhere (a log, a pipe, a test),
one plain line as the wait begins, without any terminal code. The words are catalogue
messages, shown in the running command's language (:func:`common.i18n.cli.shown`).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext

from rich.console import Console

from common.i18n.cli import shown

#: A wait: ``with waits(N_("Starting ...")):`` around it.
Waits = Callable[[str], AbstractContextManager[None]]

_IMPORTED = time.monotonic()


def no_waits(what: str) -> AbstractContextManager[None]:
    """Say nothing (the library's default: a caller that is no command)."""
    return nullcontext()


def command_seconds() -> float:
    """Seconds since this process started (Linux's ``/proc``; elsewhere since this
    module was first imported, which the commands do as they start)."""
    try:
        with open("/proc/self/stat", encoding="ascii") as stat:
            # Field 22 (after the parenthesised name, which may hold spaces): start time
            # in clock ticks after boot; /proc/uptime is seconds after boot.
            ticks = int(stat.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime", encoding="ascii") as uptime:
            now = float(uptime.read().split()[0])
        return max(0.0, now - ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return time.monotonic() - _IMPORTED


class TerminalWaits:
    """The waits of one command, said on ``console`` (stderr by default)."""

    def __init__(self, console: Console | None = None, after: float = 0.0) -> None:
        """``after``: off a terminal, say a wait only once it has lasted that many
        seconds (a command whose waits are often short keeps its log quiet)."""
        self.console = console or Console(stderr=True, highlight=False)
        self.after = after

    @contextmanager
    def __call__(self, what: str) -> Iterator[None]:
        text = shown(what)
        if not self.console.is_terminal:
            def say() -> None:
                print(f"{text}…", file=self.console.file, flush=True)

            if self.after <= 0:
                say()
                yield
                return
            timer = threading.Timer(self.after, say)
            timer.daemon = True
            timer.start()
            try:
                yield
            finally:
                timer.cancel()
                timer.join()  # a line being said is said before what follows
            return
        from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                      console=self.console, transient=True) as progress:
            progress.add_task(text, total=None)
            yield
