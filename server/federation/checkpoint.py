"""Checkpoints: the ServerApp saves one after every completed round, a resumed run
loads it and continues at the next round.

``checkpoint.pt`` in the run folder holds the global weights after the round, the round
number, the run's logical name (what the centres' ledgers book it under), the resolved
run configuration, and the server's accounting: each round's log, what it knows of
each centre (sizes, epsilon, last histogram, in secure mode its trust model) and the
last pooled histogram. It is
written to a temporary file, fsynced and renamed over the previous one, so a crash
leaves the last complete checkpoint. A crash therefore loses at most the round in
progress.
"""

from __future__ import annotations

import fcntl
import io
import pickle
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from common.config import ConfigValue, RunConfig
from common.errors import PerseveranceError
from common.files import atomic_write_bytes
from common.i18n.catalogue import N_
from common.metrics import ScoreHistogram
from server.federation.bookkeeping import CentreRecord, RoundLog, RunBook

CHECKPOINT = "checkpoint.pt"
LOCK = ".serverapp.lock"
#: Keys that may change when a run is resumed: how long to wait, where things are, the
#: quorum (an operator may lower it to finish without a centre that left).
RESUMABLE_CHANGES = frozenset(
    {"resume", "round_timeout", "min_centres_wait", "min_centres", "run_dir", "data_dir"}
)


class ResumeError(PerseveranceError):
    """The run cannot be resumed as asked. One sentence."""


@dataclass
class Checkpoint:
    """The state of a run after its round ``round`` (0: nothing done yet)."""

    round: int
    run_name: str
    weights: dict[str, torch.Tensor]
    config: dict[str, ConfigValue]
    logs: list[dict[str, Any]] = field(default_factory=list)
    centres: list[dict[str, Any]] = field(default_factory=list)
    last_evaluation: dict[str, list[float]] = field(default_factory=dict)
    saved_at: str = ""
    # Centres that refused the run for good (name -> fixed reason) and their nodes.
    refused: dict[str, str] = field(default_factory=dict)
    refusing_nodes: list[int] = field(default_factory=list)
    # Whether the equity audit's exchange (after the final round) is done: a run
    # checkpointed after its final round without it resumes into the audit.
    audited: bool = False
    # Secure mode with distributed noise: what the sums released so far cost a student
    # (accountant rows, q = 1), so that a resumed run keeps composing them.
    sum_rows: list[list[float]] = field(default_factory=list)
    # Secure mode: how each centre booked its evaluation releases (name -> its trust
    # model, ``RunBook.trust``), so that a resumed run still names a centre that released
    # before the stop and not after (summary.json's ``centres_trust``).
    trust: dict[str, dict[str, Any]] = field(default_factory=dict)


def _histogram_to_lists(h: ScoreHistogram | None) -> dict[str, Any] | None:
    if h is None:
        return None
    return {"positives": h.positives.tolist(), "negatives": h.negatives.tolist(),
            "probability_sum": h.probability_sum.tolist(),
            "squared_error_sum": float(h.squared_error_sum),
            "edges": None if h.edges is None else list(h.edges)}


def _histogram_from_lists(d: dict[str, Any] | None) -> ScoreHistogram | None:
    if d is None:
        return None
    return ScoreHistogram(np.asarray(d["positives"], dtype=np.float64),
                          np.asarray(d["negatives"], dtype=np.float64),
                          np.asarray(d["probability_sum"], dtype=np.float64),
                          float(d["squared_error_sum"]),
                          None if not d.get("edges") else tuple(float(v) for v in d["edges"]))


def book_state(book: RunBook) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The run's accounting as plain lists (round logs, centre records)."""
    logs = [asdict(entry) for _, entry in sorted(book.logs.items())]
    centres = [
        {"node": c.node, "num_train": c.num_train, "num_test": c.num_test,
         "epsilon": c.epsilon, "epsilon_evaluation": c.epsilon_evaluation,
         "histogram": _histogram_to_lists(c.histogram)}
        for _, c in sorted(book.centres.items())
    ]
    return logs, centres


def keep_book(state: Checkpoint, book: RunBook) -> None:
    """Copy the book's accounting into the checkpoint about to be saved."""
    state.logs, state.centres = book_state(book)
    state.refused = dict(book.refused)
    state.refusing_nodes = sorted(book.refusing_nodes)
    state.sum_rows = [[float(z), float(q), int(t)] for z, q, t in book.sum_rows]
    state.trust = {name: dict(trust) for name, trust in book.trust.items()}


def restore_book(book: RunBook, checkpoint: Checkpoint) -> None:
    """Put the checkpoint's accounting back into a fresh book."""
    book.logs = {entry["round"]: RoundLog(**entry) for entry in checkpoint.logs}
    book.centres = {
        c["node"]: CentreRecord(c["node"], c["num_train"], c["num_test"], c["epsilon"],
                                _histogram_from_lists(c["histogram"]),
                                c.get("epsilon_evaluation", 0.0))
        for c in checkpoint.centres
    }
    book.refused = dict(checkpoint.refused)
    book.refusing_nodes = set(checkpoint.refusing_nodes)
    book.sum_rows = [(float(z), float(q), int(t)) for z, q, t in checkpoint.sum_rows]
    book.trust = {name: dict(trust) for name, trust in checkpoint.trust.items()}


def _plain(value: Any) -> Any:
    """Python's own types only (NumPy scalars and arrays, tuples become floats, ints and
    lists): ``torch.load(weights_only=True)`` refuses anything else, rightly."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    return value


def save(run_dir: Path, checkpoint: Checkpoint) -> Path:
    """Write ``checkpoint.pt`` atomically (temporary file, fsync, rename)."""
    path = run_dir / CHECKPOINT
    checkpoint.saved_at = datetime.now(UTC).isoformat(timespec="seconds")
    payload = _plain({k: v for k, v in asdict(checkpoint).items() if k != "weights"})
    payload["weights"] = {k: v.detach().cpu().clone() for k, v in checkpoint.weights.items()}
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    atomic_write_bytes(path, buffer.getvalue())
    return path


def load(run_dir: Path) -> Checkpoint | None:
    """The run folder's checkpoint, or None when there is none."""
    path = run_dir / CHECKPOINT
    if not path.is_file():
        return None
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        return Checkpoint(**payload)
    except (RuntimeError, OSError, EOFError, TypeError, KeyError,
            pickle.UnpicklingError) as exc:
        raise ResumeError(N_(
            "The checkpoint %(path)s cannot be read (%(error)s); restore it from a backup or "
            "start the run again without resume.", path=str(path), error=type(exc).__name__)
        ) from exc


def check_compatible(checkpoint: Checkpoint, config: RunConfig) -> None:
    """Refuse to resume with a configuration the checkpointed rounds did not use: the
    centres' noise is calibrated for the whole run, the model's shape is fixed."""
    current = config.to_flat()
    changed = sorted(
        key for key in set(current) | set(checkpoint.config)
        if key not in RESUMABLE_CHANGES and current.get(key) != checkpoint.config.get(key)
    )
    if changed:
        raise ResumeError(N_(
            "The run in %(run_dir)s cannot be resumed with different values of %(keys)s; "
            "resume it with its own configuration (config.toml).", run_dir=config.run_dir,
            keys=", ".join(changed)))


@contextmanager
def run_folder_lock(run_dir: Path) -> Iterator[None]:
    """Hold the run folder for one ServerApp. A second ServerApp on the same folder (a
    resumption submitted while the first still runs, e.g. after a SuperLink restart it
    survived) is refused; the kernel frees the lock when its holder dies."""
    with (run_dir / LOCK).open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ResumeError(N_(
                "Another ServerApp is running the run in %(run_dir)s; let it finish, or stop "
                "it before resuming.", run_dir=str(run_dir))) from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
