"""Releases of the Flower app: the FAB the centres approve, published with its SHA-256.

A centre runs a run's code only if the SHA-256 of its FAB is on its approved list
(``common/app_approval.py``). The ministry publishes each release of the app in the
registry folder, beside the model cards; a centre reviews the same source (the git
commit named here), computes ``perseverance-client app hash`` on it and approves the hash
if it equals the published one. Layout::

    apps/<version>/<name>.fab          the FAB, built by Flower's own build function
    apps/<version>/SHA256SUMS          "<hex>  <name>.fab", checkable with ``sha256sum -c``
    apps/<version>/publication.json    version, the app's name and pyproject version,
                                       SHA-256, size, date, git commit (if any) and
                                       whether the app's files differ from that commit

A published version is never replaced: publishing it again is refused (exit code 2).
The version's folder is assembled in a hidden staging folder and renamed into place, so
a reader never sees half a release; one publisher at a time (the registry's lock).
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import subprocess
import tempfile
import tomllib
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from common.errors import ExitCode, PerseveranceError
from common.i18n.catalogue import N_
from server import run_folder

APPS = "apps"
SHA256SUMS = "SHA256SUMS"
PUBLICATION = "publication.json"
PUBLIC_FILE, PUBLIC_DIR = 0o644, 0o755  # the registry is served as static files
_VERSION = re.compile(r"[0-9A-Za-z][0-9A-Za-z._+-]{0,63}")


class AppReleaseError(PerseveranceError, ValueError):
    """The app cannot be published as asked (one sentence; exit code 2)."""

    exit_code = ExitCode.UNUSABLE


class AppAlreadyPublishedError(AppReleaseError):
    """This version of the app is in the registry already; releases are never replaced."""


@dataclass(frozen=True)
class AppRelease:
    """One published release: its folder, FAB file and SHA-256."""

    folder: Path
    fab: Path
    sha256: str
    record: dict[str, Any]


def build_fab(app_dir: Path) -> bytes:
    """The app's FAB, as ``flwr build`` and ``flwr run`` make it (Flower's own function,
    so its SHA-256 is the one a run of this folder ships)."""
    from server.flower_compat import build_fab as flower_build_fab

    try:
        return flower_build_fab(app_dir)
    except (ValueError, OSError) as err:
        raise AppReleaseError(N_("%(path)s cannot be packaged as a Flower app (%(reason)s).",
                                 path=app_dir, reason=str(err))) from err


def prepare(app_dir: Path, version: str | None = None,
            now: datetime | None = None) -> tuple[bytes, dict[str, Any]]:
    """Build the FAB of ``app_dir`` and its publication record as ``version`` (default:
    the app's pyproject version); nothing is written."""
    app_dir = app_dir.expanduser().resolve()
    project = _project(app_dir)
    name, app_version = str(project["name"]), str(project.get("version", ""))
    version = version or app_version
    if not _VERSION.fullmatch(version):
        raise AppReleaseError(N_("%(version)r is not a usable version: letters, digits, "
                                 "dots, dashes, underscores or plus signs, starting with a "
                                 "letter or a digit.", version=version))
    content = build_fab(app_dir)
    commit, clean = _git_state(app_dir, content)
    return content, {
        "format": 1, "version": version, "name": name, "app_version": app_version,
        "fab": f"{name}.fab", "fab_sha256": hashlib.sha256(content).hexdigest(),
        "fab_bytes": len(content),
        "published": (now or datetime.now(UTC)).isoformat(timespec="seconds"),
        "git_commit": commit, "git_clean": clean,
    }


def write_release(registry_dir: Path, content: bytes, record: dict[str, Any]) -> AppRelease:
    """Write a prepared release under ``registry_dir/apps`` (the caller holds the
    registry's lock); refuses a version that exists, leaving it untouched."""
    apps = registry_dir / APPS
    target = apps / str(record["version"])
    apps.mkdir(parents=True, exist_ok=True)
    apps.chmod(PUBLIC_DIR)
    if target.exists():
        raise AppAlreadyPublishedError(N_(
            "The app's version %(version)s is already published in %(path)s; a published "
            "version is never replaced: publish it under a new version.",
            version=record["version"], path=apps))
    fab_name = str(record["fab"])
    staging = Path(tempfile.mkdtemp(dir=apps, prefix=".staging-"))
    try:
        (staging / fab_name).write_bytes(content)
        (staging / SHA256SUMS).write_text(f"{record['fab_sha256']}  {fab_name}\n",
                                          encoding="utf-8")
        run_folder.write_json(staging / PUBLICATION, record)
        place_public(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return AppRelease(target, target / fab_name, str(record["fab_sha256"]), record)


def place_public(staging: Path, target: Path) -> None:
    """Give a staged release folder and its files the registry's public modes, then
    rename it to ``target`` in one step (a reader sees all of it or none)."""
    for path in [staging, *staging.iterdir()]:
        path.chmod(PUBLIC_DIR if path.is_dir() else PUBLIC_FILE)
    os.rename(staging, target)


def list_apps(registry_dir: Path) -> list[dict[str, Any]]:
    """The publication records of every published release, newest first."""
    apps = registry_dir / APPS
    if not apps.is_dir():
        return []
    records = [run_folder.read_json(folder / PUBLICATION) for folder in apps.iterdir()
               if not folder.name.startswith(".") and (folder / PUBLICATION).is_file()]
    return sorted(records, key=lambda r: (r["published"], r["version"]), reverse=True)


def _project(app_dir: Path) -> dict[str, Any]:
    try:
        with (app_dir / "pyproject.toml").open("rb") as handle:
            project = tomllib.load(handle)["project"]
        str(project["name"])
    except (OSError, KeyError, TypeError, tomllib.TOMLDecodeError) as err:
        raise AppReleaseError(N_("%(path)s is not a Flower app folder: its pyproject.toml "
                                 "cannot be read or has no project name (%(reason)s).",
                                 path=app_dir, reason=str(err))) from err
    return dict(project)


def _git_state(app_dir: Path, content: bytes) -> tuple[str | None, bool | None]:
    """The commit checked out in ``app_dir`` and whether the app's files are that
    commit's (no change, deletion or untracked file in the folders and files the FAB is
    made of), or ``(None, None)`` outside git."""
    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", "-C", str(app_dir), *args], capture_output=True,
                                  text=True, timeout=30, check=False)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return None, None
    with zipfile.ZipFile(io.BytesIO(content)) as fab:
        tops = sorted({name.split("/")[0] for name in fab.namelist()
                       if not name.startswith(".info/")})
    status = git("status", "--porcelain", "--untracked-files=all", "--", *tops)
    return commit.strip(), status is not None and status.strip() == ""
