"""Where every command keeps its state and the ministry's key, and the environment that
keeps Flower and Ray offline: one place, resolved the same way by ``perseverance-sim``,
``perseverance-server`` (its ``audit verify`` and console included) and the ServerApp,
whatever the working directory.

- :func:`work_root`: the project's ignored working folder, ``.work`` beside the code of a
  checkout (``pip install -e``), else ``$XDG_STATE_HOME/perseverance``
  (``~/.local/state/perseverance``); never the working directory.
- :func:`flwr_home`: Flower's home, ``$FLWR_HOME`` if set, else ``<work root>/flwr-home``.
- :func:`ministry_key_path`: the ministry's records key, ``$PERSEVERANCE_MINISTRY_KEY`` if
  set, else ``<Flower's home>/perseverance/ministry-records.key`` (never in a run folder).

A centre's records key is not here: it belongs to the centre's state folder (its
node config's ``records-key-path``, ``client.privacy.audit_log.records_key_path``).

Nothing may reach the internet at run time: no telemetry, no update check, no
runtime dependency installation.
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


FLWR_HOME_ENV = "FLWR_HOME"
MINISTRY_KEY_ENV = "PERSEVERANCE_MINISTRY_KEY"
MINISTRY_KEY_NAME = "ministry-records.key"


def work_root() -> Path:
    """The project's ignored working folder: ``.work`` beside the code of a checkout, else
    ``$XDG_STATE_HOME/perseverance`` (``~/.local/state/perseverance``)."""
    project = Path(__file__).resolve().parents[1]
    if (project / "pyproject.toml").is_file():
        return project / ".work"
    state = os.environ.get("XDG_STATE_HOME", "") or str(Path.home() / ".local" / "state")
    return Path(state) / "perseverance"


def flwr_home() -> Path:
    """Flower's home: ``$FLWR_HOME``, else ``flwr-home`` in :func:`work_root`."""
    configured = os.environ.get(FLWR_HOME_ENV, "")
    return Path(configured) if configured else work_root() / "flwr-home"


def ministry_key_path() -> Path:
    """The ministry's records key: ``$PERSEVERANCE_MINISTRY_KEY``, else
    ``perseverance/ministry-records.key`` in :func:`flwr_home` (beside the SuperLink's own
    state, outside every run folder: a run folder is published)."""
    configured = os.environ.get(MINISTRY_KEY_ENV, "")
    return Path(configured) if configured else flwr_home() / "perseverance" / MINISTRY_KEY_NAME


def export_flwr_home() -> Path:
    """Set ``$FLWR_HOME`` to :func:`flwr_home` (for the ``flwr`` programs a command starts,
    which would otherwise use ``~/.flwr``); returns it."""
    home = flwr_home()
    os.environ[FLWR_HOME_ENV] = str(home)
    return home


def prepare_environment() -> dict[str, str]:
    """Set the offline variables and the state folders in ``os.environ``; returns them."""
    for key, value in OFFLINE_ENVIRONMENT.items():
        os.environ[key] = value
    root = work_root()
    export_flwr_home()
    ray_tmp = Path(os.environ.get("RAY_TMPDIR", str(root / "ray")))
    if len(str(ray_tmp)) > MAX_RAY_TMPDIR_LENGTH:
        # Ray's socket paths would pass the AF_UNIX limit: use a short per-user folder.
        ray_tmp = Path(f"/tmp/perseverance-ray-{os.getuid()}")
    os.environ["RAY_TMPDIR"] = str(ray_tmp)
    for folder in (os.environ["FLWR_HOME"], os.environ["RAY_TMPDIR"]):
        Path(folder).mkdir(parents=True, exist_ok=True)
    return {k: os.environ[k] for k in (*OFFLINE_ENVIRONMENT, "FLWR_HOME", "RAY_TMPDIR")}
