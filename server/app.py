"""The ServerApp: wiring only. The logic is in ``server.federation.run``."""

from __future__ import annotations

from logging import ERROR

from flwr.app import Context
from flwr.common import log
from flwr.serverapp import Grid, ServerApp

from common.config import ConfigError, RunConfig
from server.federation.checkpoint import ResumeError
from server.federation.regions import RegisterError
from server.federation.rounds import FederationStopped
from server.federation.run import run_federation
from server.federation.secure import run_secure_federation

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    """Run the federation described by the run configuration."""
    try:
        config = RunConfig.from_flat(context.run_config)
        if config.privacy.secure_aggregation:  # Flower's SecAgg+: the legacy path
            run_secure_federation(grid, config)
        else:
            run_federation(grid, config)
    except (ConfigError, RegisterError, FederationStopped, ResumeError) as exc:
        # A clean stop: the sentence is the operator's message, the run folder's
        # summary.json says `stopped`, and the checkpoint allows resuming.
        log(ERROR, "%s", exc)
