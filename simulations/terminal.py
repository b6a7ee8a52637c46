"""Where the libraries' own output goes while a simulation runs: into the run folder's log,
and to the terminal only when asked (``--verbose``).

Flower logs every message it routes (INFO, DEBUG), Ray prints a FutureWarning at its
start and forwards what its actors print ("Manually terminating ClientAppActor", in
ANSI colours), and the ServerApp's WARNING lines about a refused round come in English
before the command's own French sentence. None of it is for the person running the
command: :class:`ThirdPartyOutput` sends all of it to ``logs/simulation.log`` in the
run folder, and with ``verbose`` to stderr as well (without colour codes when stderr
is no terminal). The command's own lines (its sentences, the ServerApp's round lines)
are not logging and are not touched.
"""

from __future__ import annotations

import logging
import re
import sys
from pathlib import Path
from types import TracebackType
from typing import Any

#: The run folder's log of the libraries' output (Flower, Ray and its actors, warnings).
SIMULATION_LOG = Path("logs") / "simulation.log"
#: Loggers of the libraries whose records go to the run log (not to the terminal).
LIBRARY_LOGGERS = ("flwr", "ray", "py.warnings")
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def plain(text: str) -> str:
    """``text`` without terminal colour codes."""
    return ANSI.sub("", text)


class _PlainFile(logging.FileHandler):
    """A log file without colour codes, whatever formatter a library sets on it (Ray's
    start sets its own on every handler of its logger)."""

    def format(self, record: logging.LogRecord) -> str:
        return plain(super().format(record))


class _PlainStream(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler that drops colour codes unless its stream is a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        isatty = getattr(self.stream, "isatty", None)
        return text if callable(isatty) and isatty() else plain(text)


class ThirdPartyOutput:
    """Inside the ``with`` block, the libraries' logs, warnings and Ray's actors' output
    go to ``log_file`` (appended), and to stderr too when ``verbose``; on leaving, the
    loggers are as they were."""

    def __init__(self, log_file: Path, verbose: bool = False) -> None:
        self.log_file = log_file
        self.verbose = verbose
        self._file: logging.FileHandler | None = None
        self._handlers: list[logging.Handler] = []
        self._saved: list[tuple[logging.Logger, int, bool, list[logging.Handler]]] = []
        self._capturing = False

    def __enter__(self) -> ThirdPartyOutput:
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        # One file for every library (each its own handler: Ray resets the formatters of
        # its logger's handlers when it starts), and the actors' output (actor_output).
        self._file = _PlainFile(self.log_file, encoding="utf-8")
        for name in LIBRARY_LOGGERS:
            logger = logging.getLogger(name)
            self._saved.append((logger, logger.level, logger.propagate, list(logger.handlers)))
            # Flower's and Ray's own console handlers are replaced, not added to: theirs
            # colour every line whatever the stream.
            for handler in list(logger.handlers):
                logger.removeHandler(handler)
            to_file = _PlainFile(self.log_file, encoding="utf-8")
            to_file.setFormatter(logging.Formatter(
                "%(asctime)s %(levelname)s %(name)s: %(message)s"))
            handlers: list[logging.Handler] = [to_file]
            if self.verbose:
                shown = _PlainStream(sys.stderr)
                shown.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
                shown.setLevel(logging.INFO)
                handlers.append(shown)
            for handler in handlers:
                logger.addHandler(handler)
            self._handlers += handlers
            if name == "flwr":
                logger.setLevel(logging.DEBUG)
            # Opacus installs a root handler at import: nothing reaches it twice.
            logger.propagate = False
        self._capturing = True
        logging.captureWarnings(True)
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        if self._capturing:
            logging.captureWarnings(False)
            self._capturing = False
        for logger, level, propagate, handlers in self._saved:
            for handler in list(logger.handlers):
                logger.removeHandler(handler)
            for handler in handlers:
                logger.addHandler(handler)
            logger.setLevel(level)
            logger.propagate = propagate
        self._saved.clear()
        for handler in [*self._handlers, *([self._file] if self._file else [])]:
            handler.close()
        self._handlers.clear()
        self._file = None

    def actor_output(self, data: dict[str, Any]) -> None:
        """What one of Ray's actors printed (Ray's dispatcher's record: ``lines``,
        ``pid``, ``actor_name``, ``is_err``): to the log, and to stderr when verbose."""
        raw = [str(line) for line in data.get("lines", [])]
        if data.get("pid") == "autoscaler":  # its events only, as Ray prints them
            from simulations.flower_compat import autoscaler_events

            try:
                raw = autoscaler_events(raw)
            except Exception:  # Ray already stopping: its status dumps are no events
                raw = []
        who = f"({data.get('actor_name') or data.get('task_name') or 'ray'} " \
              f"pid={data.get('pid')})"
        lines = [f"{who} {plain(line)}" for line in raw]
        if not lines:
            return
        if self._file is not None and self._file.stream is not None:
            self._file.stream.write("".join(line + "\n" for line in lines))
            self._file.stream.flush()
        if self.verbose:
            stream = sys.stderr
            terminal = stream.isatty()
            for text, line in zip(raw, lines, strict=True):
                print(f"{who} {text}" if terminal else line, file=stream)
