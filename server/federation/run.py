"""The ministry's side of a plain federated run, as a plain function the ServerApp wires.

Each round: wait (with a deadline) for ``min_centres`` connected centres, train among
them, validate and aggregate the updates (``strategy.aggregation``), evaluate at the
rounds the schedule evaluates (``evaluation.progress_every``), then save a checkpoint.
After the final round, one more exchange releases the equity audit at the calibrated
threshold (``server.federation.rounds.run_audit``). Opening, resuming, checkpointing
and the outputs are the run lifecycle's (``server.federation.lifecycle``), shared with secure mode
(``server.federation.secure``).
"""

from __future__ import annotations

from pathlib import Path

from flwr.app import ArrayRecord, ConfigRecord
from flwr.serverapp import Grid

from common import protocol
from common.config import RunConfig
from server.federation.aggregation import build_strategy
from server.federation.bookkeeping import FederationStopped, kept_evaluation, next_edges
from server.federation.lifecycle import RunLifecycle
from server.federation.rounds import run_audit, run_round, wait_for_centres


def run_federation(grid: Grid, config: RunConfig) -> Path:
    """Train the remaining rounds of the run over the connected centres, checkpointing
    after each, and write the run folder. Returns the run folder. A stop before the last
    round (centres absent or refusing, resume refused) is written to ``summary.json`` as
    ``stopped`` and re-raised as :class:`FederationStopped` or :class:`ResumeError`."""
    with RunLifecycle(grid, config) as run:
        strategy = build_strategy(config, run.round_done, book=run.book)
        arrays = ArrayRecord(run.state.weights)
        run_config = ConfigRecord({protocol.RUN_NAME: run.state.run_name})
        stopped: FederationStopped | None = None
        previous: list[int] = []
        try:
            for server_round in range(run.first_round, config.rounds + 1):
                nodes = wait_for_centres(grid, config.min_centres, config.min_centres_wait)
                run.audit.connected(server_round, nodes, previous)
                previous = nodes
                arrays, metrics = run_round(strategy, grid, nodes, server_round, arrays,
                                            run_config, config.round_timeout, run.audit,
                                            next_edges(config, run.state.last_evaluation))
                evaluation = kept_evaluation(metrics)
                run.checkpoint(server_round, arrays.to_torch_state_dict(), evaluation)
            if run.audit_pending:
                nodes = wait_for_centres(grid, config.min_centres, config.min_centres_wait)
                run.audited(run_audit(strategy, grid, nodes, arrays, run_config,
                                      config.round_timeout, run.audit,
                                      run.state.last_evaluation))
        except FederationStopped as exc:
            stopped = exc
        return run.finish(stopped)
