"""Writing files so that a reader never sees them half written: the project's one
atomic write (every writer of a state, run, key or report file calls it).

The content goes to a fresh temporary file beside the target, opened with
``O_CREAT | O_EXCL`` and its final permission bits from the first byte (then ``fchmod``,
since the umask may only remove bits), is flushed to disk (fsync), and is renamed over
the target; the folder is then synced so that the rename itself is durable. Replacing a
file therefore never reuses the old file's inode or mode, and a crash leaves the old
content or the new one, never half of either.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import os
import secrets
from pathlib import Path

DISTRIBUTION = "perseverance"


class FileExists(FileExistsError):
    """The file exists and replacing it was not asked for."""


def fsync_folder(folder: Path) -> None:
    """Make a rename or a new file in ``folder`` durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes, mode: int = 0o644, *,
                       overwrite: bool = True, durable: bool = True) -> None:
    """Write ``data`` to ``path`` with permission bits ``mode``, atomically.

    Parameters
    ----------
    path : Path
        The file to write (its folder is created, mode 0700 if new).
    data : bytes
        The whole content.
    mode : int
        Permission bits the file has from its creation (``0o600`` for a private key).
    overwrite : bool
        Replace an existing file; if false and ``path`` exists, raise
        :class:`FileExists` and leave it untouched.
    durable : bool
        Flush the file and its folder to disk (two fsyncs). ``False`` keeps the atomic
        replace (no reader ever sees half a file) without them: a crash of the machine
        may then leave the old content, or a file that does not load. Only for a file
        whose loss costs no guarantee (issue 32: ``client.privacy.releases.ReplyCache``).
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not overwrite and path.exists():
        raise FileExists(str(path))
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.fchmod(fd, mode)  # before the first byte: the umask cannot widen or narrow it
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        if durable:
            os.fsync(fd)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    os.close(fd)
    try:
        if overwrite:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)  # fails if a file appeared meanwhile: never replaced
    except FileExistsError as err:
        raise FileExists(str(path)) from err
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()  # after os.link (or a failed rename) the temporary name remains
    if durable:
        fsync_folder(path.parent)


def package_data(name: str) -> Path:
    """The folder ``name`` of ``common``'s package data (page templates, the translation
    catalogue): beside this module, or, when ``common`` runs from a Flower app bundle (a
    FAB carries only Python, TOML, Markdown, YAML and JSON files, and the ServerApp that
    writes a model card runs from one), in the installed distribution's copy (a regular
    install, or the source folder of an editable one)."""
    here = Path(__file__).parent / name
    if here.is_dir():
        return here
    try:
        dist = importlib.metadata.distribution(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        dist = None
    candidates = []
    if dist is not None:
        candidates.append(Path(str(dist.locate_file(f"common/{name}"))))
        origin = json.loads(dist.read_text("direct_url.json") or "{}")
        if str(origin.get("url", "")).startswith("file://"):
            candidates.append(Path(origin["url"][len("file://"):]) / "common" / name)
    for folder in candidates:
        if folder.is_dir():
            return folder
    raise FileNotFoundError(f"The folder {name} is neither in {here} nor in the installed "
                            f"{DISTRIBUTION} package: reinstall it.")
