"""Write key and certificate files atomically, private keys owner-only from the first byte.

A private key is written to a fresh temporary file opened with ``O_CREAT | O_EXCL`` and
mode 0600 (then ``fchmod`` 0600, since the umask may only remove bits), flushed to disk,
and renamed over the target. Replacing a key therefore never reuses the old file's inode
or mode, and a crash leaves the old key or the new one, never half of one.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path


class KeyFileExistsError(FileExistsError):
    """The file exists and replacing it was not asked for."""


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes, mode: int, *, overwrite: bool = True) -> None:
    """Write ``data`` to ``path`` with permission bits ``mode``, atomically.

    Parameters
    ----------
    path : Path
        The file to write (its folder is created, mode 0700 if new).
    data : bytes
        The whole content.
    mode : int
        Permission bits the file has from its creation (e.g. ``0o600``).
    overwrite : bool
        Replace an existing file; if false and ``path`` exists, raise
        :class:`KeyFileExistsError` and leave it untouched.
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not overwrite and path.exists():
        raise KeyFileExistsError(str(path))
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.fchmod(fd, mode)  # before the first byte: the umask cannot widen or narrow it
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
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
        raise KeyFileExistsError(str(path)) from err
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()  # after os.link (or a failed rename) the temporary name remains
    _fsync_folder(path.parent)


def write_private(path: Path, data: bytes, *, overwrite: bool = False) -> None:
    """Write a private key (mode 0600 from its first byte)."""
    write_atomic(path, data, 0o600, overwrite=overwrite)


def write_public(path: Path, data: bytes) -> None:
    """Write a certificate or public key (mode 0644), replacing any previous one."""
    write_atomic(path, data, 0o644, overwrite=True)
