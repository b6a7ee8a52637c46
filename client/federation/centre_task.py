"""One centre task, whatever the transport: the plain Message-API handlers
(``client.federation.app``) and the SecAgg+ client (``client.federation.secure``) both call it.

A task is: check the run against the centre's privacy floor (before any student record
is read), load the centre's records, fix or reload the run's public DP plan, train or
evaluate with the release booked first, and log what happens in the centre's audit log.
A refusal or error becomes a reply code and a fixed sentence for the ministry
(:func:`refusal_of`); the detail, with its numbers, stays in the centre's own log.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from client.errors import CentreRefusal, DataError
from client.federation.rounds import (
    RoundResult,
    evaluate_round,
    open_ledger,
    resolve_data_source,
    state_dir,
    train_round,
    training_plan,
)
from client.ingest.centre_data import CentreData, centre_policy, load_centre
from client.privacy.audit_log import centre_trail
from client.privacy.ledger import LedgerError
from client.privacy.records import records_head
from client.privacy.run_plan import held_out_share
from client.site_policy import SitePolicy
from common.config import ConfigError, RunConfig
from common.protocol import AuditRequest, EdgesRequest, Reason, Reply, Task, refusal_text

Weights = dict[str, torch.Tensor]
LOG = logging.getLogger("perseverance.centre")


@dataclass(frozen=True)
class Centre:
    """The centre as a task sees it: the run's configuration (as the ministry sent it),
    the SuperNode's node configuration (the centre's own) and Flower's run id."""

    config: RunConfig
    node_config: dict[str, object]
    flower_run_id: int = 0

    @classmethod
    def of(cls, run_config: Mapping[str, object], node_config: Mapping[str, object],
           flower_run_id: int = 0) -> Centre:
        """Raises ``ConfigError`` when the run's configuration is invalid."""
        return cls(RunConfig.from_flat(dict(run_config)), dict(node_config),
                   int(flower_run_id))

    @property
    def state_dir(self) -> Path | None:
        return state_dir(self.config, self.node_config)

    @property
    def name(self) -> str:
        """The name the centre declares to the ministry: its data file's ("" if none)."""
        try:
            return Path(resolve_data_source(self.config, self.node_config)[0]).stem
        except (DataError, OSError, ValueError):
            return ""

    def policy(self) -> SitePolicy:
        """The centre's site policy, after checking the run against its privacy floor and
        its work limits: raises ``CentreRefusal`` (``Reply.FLOOR``, ``Reply.CONFIG``)
        before any record is read."""
        _, _, policy_path = resolve_data_source(self.config, self.node_config)
        policy = centre_policy(policy_path)
        policy.privacy.check(self.config)
        policy.limits.check(self.config)
        return policy

    def admit(self, elements: int, regions: int = 0) -> SitePolicy:
        """Check the run against the centre's floor and limits, and an instruction's
        ``elements`` (array elements it carries) and ``regions`` (secure region slots)
        against its limits, before anything of it is used: raises ``CentreRefusal``."""
        policy = self.policy()
        policy.limits.check_instruction(elements, regions)
        return policy

    def data(self, run_name: str = "") -> CentreData:
        """The centre's records, split with the held-out share fixed for ``run_name``."""
        self.policy()
        data_path, mapping, policy = resolve_data_source(self.config, self.node_config)
        share = held_out_share(self.state_dir, run_name, self.config) if run_name else \
            self.config.evaluation.test_fraction
        return load_centre(data_path, mapping, policy, share)

    def head(self) -> dict[str, str | int]:
        """The head of the centre's records (audit log, ledger), sent with every reply
        so that the ministry anchors it; empty without a state folder. It carries no
        figure of the centre's students (``common.releases``)."""
        folder = self.state_dir
        return {} if folder is None else records_head(folder)

    def audit(self, event: str, task: Task, kind: str, **fields: Any) -> None:
        """One line of the centre's audit log (none without a state folder), fsynced."""
        self._line(event, task, kind, True, fields)

    def received(self, task: Task, kind: str, **fields: Any) -> None:
        """The task's first line (``task_received``), not fsynced on its own (issue 32):
        every way out of a task that sends something writes a synced line after it
        (``reply_sent``, or ``task_refused`` in :func:`refuse`), whose fsync makes this
        line durable too before the reply leaves with the head that covers both. A crash
        of the machine before then loses an unanchored tail only
        (``common.records.trail``, docs/PRIVACY.md)."""
        self._line("task_received", task, kind, False, fields)

    def _line(self, event: str, task: Task, kind: str, sync: bool,
              fields: dict[str, Any]) -> None:
        folder = self.state_dir
        if folder is None:
            return
        centre_trail(folder, self.node_config).record(
            event, sync=sync, kind=kind, flower_run_id=self.flower_run_id,
            run_name=task.run_name, round=task.server_round, model_version=task.model_version,
            **fields)


def train_task(centre: Centre, task: Task, global_weights: Weights) -> RoundResult:
    """Train the global model on the centre's records (the release booked first)."""
    config = centre.config
    data = centre.data(task.run_name)
    ledger = open_ledger(config, centre.node_config) if config.privacy.dp else None
    plan, data = training_plan(config, data, task.run_name, centre.state_dir, ledger)
    return train_round(config, data, global_weights, task.server_round, plan,
                       ledger=ledger, run_id=task.run_name)


def evaluate_task(centre: Centre, task: Task, global_weights: Weights,
                  audit: AuditRequest | None = None, edges: EdgesRequest | None = None
                  ) -> dict[str, int | float | list[float]]:
    """Evaluate the global model on the centre's held-out records (noised, booked) over
    the instruction's score bins (``edges``), or with ``audit`` release the equity
    audit's counts at its threshold."""
    config = centre.config
    data = centre.data(task.run_name)
    ledger = open_ledger(config, centre.node_config) if config.privacy.dp else None
    return evaluate_round(config, data, global_weights, task.server_round or None, ledger,
                          task.run_name, audit, edges)


def refusal_of(exc: BaseException) -> tuple[Reply, str, str] | None:
    """(reply code, fixed sentence for the ministry, detail for the centre's log) of an
    error a task may end with; None for a programming error (it is raised)."""
    if isinstance(exc, ConfigError):
        return Reply.CONFIG, Reason.CONFIG_INVALID, str(exc)
    if isinstance(exc, CentreRefusal):
        return exc.code, exc.reason, exc.detail
    if isinstance(exc, DataError | LedgerError):
        return Reply.DATA, Reason.DATA_UNUSABLE, str(exc)
    return None


def refuse(centre: Centre | None, task: Task, kind: str, exc: BaseException,
           **fields: Any) -> tuple[int, str]:
    """Log a refusal in the centre's audit log (with its detail) and return the reply's
    (code, reason) for the ministry. A programming error is logged with its traceback at
    the centre and answered with a fixed sentence: an exception's text may quote a
    student's data, and only fixed words leave the centre."""
    refusal = refusal_of(exc)
    if refusal is None:
        if not isinstance(exc, Exception):
            raise exc  # KeyboardInterrupt, SystemExit: not ours to answer
        detail = "".join(traceback.format_exception(exc))
        LOG.error("The centre's task failed: %s", detail)
        refusal = (Reply.INTERNAL, Reason.INTERNAL, detail)
    code, reason, detail = refusal
    name = ""
    if centre is not None:
        name = centre.name
        centre.audit("task_refused", task, kind, code=int(code), reason=reason, detail=detail,
                     **fields)
    return int(code), refusal_text(name, reason)


def update_of(result: RoundResult, global_weights: Mapping[str, torch.Tensor]) -> list[Any]:
    """The update (new weights minus the global weights), in ``state_dict`` order: what
    leaves a centre in secure mode, masked."""
    return [(result.weights[name].double() - weight.double()).numpy()
            for name, weight in global_weights.items()]
