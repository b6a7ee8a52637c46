"""One run lifecycle for the plain and the secure federation: open or resume the run
folder under its lock, keep the book, checkpoint after every round, write the outputs.

``resume`` continues the run of ``run_dir`` after its last checkpointed round, as a new
Flower run: the centres recognise it by its logical name (``run-name`` in every
instruction), under which their ledgers booked what it spent.
"""

from __future__ import annotations

import secrets
import time
from contextlib import ExitStack
from datetime import UTC, datetime
from logging import INFO
from pathlib import Path
from types import TracebackType

import torch
from flwr.common import log
from flwr.serverapp import Grid

from common.config import RunConfig
from common.i18n.catalogue import sentence
from common.model import ModelConfig, build_model
from server import run_folder
from server.federation import checkpoint
from server.federation.audit_log import ServerAudit
from server.federation.bookkeeping import FederationStopped, RoundLog, RunBook
from server.federation.checkpoint import Checkpoint, ResumeError
from server.federation.identity import CentreIdentities
from server.federation.outputs import write_outputs
from server.federation.progress import print_round
from server.federation.regions import register_of
from server.summary import Summary, sentence_record


def new_run_name(config: RunConfig) -> str:
    """A logical run name no earlier run of any centre has used."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    return f"{config.scenario}-{stamp}-{secrets.token_hex(4)}"


def starting_point(run_dir: Path, config: RunConfig) -> tuple[Checkpoint, bool]:
    """The checkpoint to start from, and whether it is a resumption. A fresh run starts
    from the initial model at round 0; ``resume`` without a checkpoint starts fresh."""
    if config.resume:
        found = checkpoint.load(run_dir)
        if found is not None:
            checkpoint.check_compatible(found, config)
            return found, True
        log(INFO, "resume: no checkpoint in %s, starting at round 1", run_dir)
    model = build_model(ModelConfig(hidden=config.training.hidden_sizes), seed=config.seed)
    return Checkpoint(0, new_run_name(config), dict(model.state_dict()), config.to_flat()), False


def round_record(entry: RoundLog) -> dict[str, object]:
    """One line of ``rounds.jsonl``."""
    return {"round": entry.round, **_prefixed(entry.train, "train_"),
            **_prefixed(entry.evaluation, "eval_"), "refusals": entry.refusals,
            "rejections": entry.rejections, "absent": entry.absent, "updates": entry.updates,
            "model_version": entry.model_version}


def _prefixed(values: dict[str, float], prefix: str) -> dict[str, float]:
    return {f"{prefix}{k}": v for k, v in values.items()}


def _flower_run_id(grid: Grid) -> int | None:
    try:
        return int(grid.run.run_id)
    except (AttributeError, RuntimeError, TypeError):
        return None


class RunLifecycle:
    """A run of the federation, from opening its folder to writing its outputs.

    Use as a context manager (it holds the run folder's lock); call :meth:`round_done`
    after each round's evaluation, :meth:`checkpoint` once the round's model is known,
    and :meth:`finish` at the end (it re-raises a stop).

    Parameters
    ----------
    grid : Grid
        The run's grid (its Flower run id goes to the audit log).
    config : RunConfig
        The run's configuration.
    secure : bool
        Whether the training rounds go through SecAgg+ (``summary.json`` says so).
    """

    def __init__(self, grid: Grid, config: RunConfig, *, secure: bool = False) -> None:
        self.grid = grid
        self.config = config
        self.secure = secure
        self.started = time.monotonic()
        self.run_dir = run_folder.resolve_run_dir(config)
        self._stack = ExitStack()

    def __enter__(self) -> RunLifecycle:
        register = register_of(self.config.evaluation.centre_register)  # before any write
        self._stack.enter_context(checkpoint.run_folder_lock(self.run_dir))
        self.audit = ServerAudit(self.run_dir)
        run_folder.update_summary(self.run_dir, Summary(secure_aggregation=self.secure))
        self.state, self.resumed = self._open()
        self.book = RunBook(self.config, self.audit)
        self.book.register = register
        if register is not None:
            self.book.identities = CentreIdentities(register.enrolled)
        if self.resumed:
            checkpoint.restore_book(self.book, self.state)
        self.audit.event("run_resumed" if self.resumed else "run_started",
                         run_name=self.state.run_name, flower_run_id=_flower_run_id(self.grid),
                         from_round=self.state.round + 1, rounds=self.config.rounds,
                         aggregation=self.config.strategy.aggregation,
                         secure_aggregation=self.secure, min_centres=self.config.min_centres)
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self._stack.close()

    def _open(self) -> tuple[Checkpoint, bool]:
        """The starting point, with the configuration written and, on resume, the
        completed rounds' lines kept in ``rounds.jsonl``."""
        try:
            state, resumed = starting_point(self.run_dir, self.config)
        except ResumeError as exc:
            self.audit.event("run_stopped", reason=str(exc), rounds_completed=0)
            run_folder.update_summary(self.run_dir, Summary(
                stopped=str(exc), stopped_sentence=sentence_record(sentence(exc))))
            raise
        run_folder.write_config(self.run_dir, self.config)
        rounds = [r for r in run_folder.read_rounds(self.run_dir) if r["round"] <= state.round]
        (self.run_dir / run_folder.ROUNDS).unlink(missing_ok=True)
        for record in rounds if resumed else []:
            run_folder.append_round(self.run_dir, record)
        return state, resumed

    @property
    def first_round(self) -> int:
        return self.state.round + 1

    def round_done(self, entry: RoundLog) -> None:
        """A round's evaluation is in: its line in ``rounds.jsonl`` and on the console."""
        run_folder.append_round(self.run_dir, round_record(entry))
        print_round(entry, self.config.rounds)

    def checkpoint(self, server_round: int, weights: dict[str, torch.Tensor],
                   last_evaluation: dict[str, list[float]] | None) -> None:
        """Save the state after ``server_round`` (its model and the book)."""
        self.state.round = server_round
        self.state.weights = dict(weights)
        if last_evaluation:
            self.state.last_evaluation = last_evaluation
        checkpoint.keep_book(self.state, self.book)
        # The round's audit lines are durable before the checkpoint that counts the round
        # (server.federation.audit_log: they are written without an fsync each).
        self.audit.sync()
        checkpoint.save(self.run_dir, self.state)
        self.audit.event("checkpoint_saved", round=server_round)

    @property
    def audit_pending(self) -> bool:
        """Whether the run's final round is done and its equity audit's exchange is not
        (also after a resume: a run that stopped between the two resumes into the audit)."""
        return (self.state.round >= self.config.rounds and not self.state.audited
                and bool(self.state.last_evaluation))

    def audited(self, report: dict[str, object]) -> None:
        """The audit's exchange is over: checkpoint it (with the book's audit)."""
        self.state.audited = True
        checkpoint.keep_book(self.state, self.book)
        self.audit.sync()  # the audit's lines before the checkpoint that says it is done
        checkpoint.save(self.run_dir, self.state)
        self.audit.event("audit_done", round=self.state.round, released=bool(report))

    def finish(self, stopped: FederationStopped | None) -> Path:
        """Write the run folder as it stands; re-raise ``stopped``."""
        if stopped is not None:
            log(INFO, "%s", stopped)
        write_outputs(self.run_dir, self.config, self.book, self.state,
                      time.monotonic() - self.started, sentence(stopped) if stopped else None)
        self.audit.event("run_stopped" if stopped else "run_finished",
                         run_name=self.state.run_name, rounds_completed=self.state.round,
                         reason=str(stopped) if stopped else None)
        if stopped is not None:
            raise stopped
        return self.run_dir
