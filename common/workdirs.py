"""Where Flower and Ray keep their state, and the environment that keeps them offline.

Nothing may reach the internet at run time: no telemetry, no update check, no
runtime dependency installation. Flower's home and Ray's temporary folder live in the
project's ignored working folder (``.work/``) unless the caller already set them.
"""

from __future__ import annotations

import os
from pathlib import Path

# AF_UNIX socket paths are limited to 107 bytes; Ray adds about 70 to its folder.
MAX_RAY_TMPDIR_LENGTH = 36
OFFLINE_ENVIRONMENT = {
    "FLWR_TELEMETRY_ENABLED": "0",
    "FLWR_DISABLE_UPDATE_CHECK": "1",
    "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1",
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_DEDUP_LOGS": "0",
}


def work_root() -> Path:
    """The project's ignored working folder (``.work`` beside the code, or the cwd's)."""
    project = Path(__file__).resolve().parents[1]
    base = project if (project / "pyproject.toml").is_file() else Path.cwd()
    return base / ".work"


def prepare_environment() -> dict[str, str]:
    """Set the offline variables and the state folders in ``os.environ``; returns them."""
    for key, value in OFFLINE_ENVIRONMENT.items():
        os.environ[key] = value
    root = work_root()
    os.environ.setdefault("FLWR_HOME", str(root / "flwr-home"))
    ray_tmp = Path(os.environ.get("RAY_TMPDIR", str(root / "ray")))
    if len(str(ray_tmp)) > MAX_RAY_TMPDIR_LENGTH:
        # Ray's socket paths would pass the AF_UNIX limit: use a short per-user folder.
        ray_tmp = Path(f"/tmp/perseverance-ray-{os.getuid()}")
    os.environ["RAY_TMPDIR"] = str(ray_tmp)
    for folder in (os.environ["FLWR_HOME"], os.environ["RAY_TMPDIR"]):
        Path(folder).mkdir(parents=True, exist_ok=True)
    return {k: os.environ[k] for k in (*OFFLINE_ENVIRONMENT, "FLWR_HOME", "RAY_TMPDIR")}
