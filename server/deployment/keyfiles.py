"""Write key and certificate files atomically, private keys owner-only from the first byte.

A private key is written to a fresh temporary file opened with ``O_CREAT | O_EXCL`` and
mode 0600 (then ``fchmod`` 0600, since the umask may only remove bits), flushed to disk,
and renamed over the target. Replacing a key therefore never reuses the old file's inode
or mode, and a crash leaves the old key or the new one, never half of one.
"""

from __future__ import annotations

from pathlib import Path

from common.files import FileExists, atomic_write_bytes

#: The file exists and replacing it was not asked for.
KeyFileExistsError = FileExists


def write_atomic(path: Path, data: bytes, mode: int, *, overwrite: bool = True) -> None:
    """Write ``data`` to ``path`` with permission bits ``mode``, atomically
    (``common.files.atomic_write_bytes``)."""
    atomic_write_bytes(path, data, mode, overwrite=overwrite)


def write_private(path: Path, data: bytes, *, overwrite: bool = False) -> None:
    """Write a private key (mode 0600 from its first byte)."""
    write_atomic(path, data, 0o600, overwrite=overwrite)


def write_public(path: Path, data: bytes) -> None:
    """Write a certificate or public key (mode 0644), replacing any previous one."""
    write_atomic(path, data, 0o644, overwrite=True)
