"""The ministry's operations console (``perseverance-server console``): a read-only web
application over the run folders, the registry, the inventory and the SuperLink."""

from __future__ import annotations

import uvicorn

from server.console.app import ConsoleSettings, create_app

__all__ = ["ConsoleSettings", "create_app", "serve"]


def serve(settings: ConsoleSettings, host: str = "127.0.0.1", port: int = 8080,
          root_path: str = "") -> None:
    """Serve the console with uvicorn until interrupted (one process, no reload)."""
    uvicorn.run(create_app(settings), host=host, port=port, root_path=root_path,
                proxy_headers=False, server_header=False, log_level="warning",
                access_log=False)
