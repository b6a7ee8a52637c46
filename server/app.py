"""The ServerApp: wiring only. The logic is in ``server.federation``."""

from __future__ import annotations

from flwr.app import Context
from flwr.serverapp import Grid, ServerApp

from common.config import RunConfig
from server.federation import run_federation

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    """Run the federation described by the run configuration."""
    run_federation(grid, RunConfig.from_flat(context.run_config))
