"""The secret that keys a side's records (audit log, privacy ledger): HMAC-SHA256.

Each side holds its own key: a centre at ``records-key-path`` of its node config (default
``<state-dir>/records.key``), the ministry at ``$PERSEVERANCE_MINISTRY_KEY`` (default
``$FLWR_HOME/perseverance/ministry-records.key``, never in a run folder). Whoever lacks
the key cannot edit a record and recompute the chain unseen; whoever holds it can, which
is why the heads are also anchored at the other side (``docs/PRIVACY.md``, "Records
that prove themselves").

The key is created on first use, readable by its owner only from its first byte (a
temporary file opened ``O_CREAT | O_EXCL`` with mode 0600, then linked into place, so
that two processes creating it at once agree on one key and nobody reads half of it).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from common.errors import ExitCode, PerseveranceError

KEY_FILE = "records.key"
KEY_BYTES = 32
GENESIS = "0" * 64  # what the first record of a chain follows
KEY_ID_LABEL = b"perseverance records key id\0"
KEY_ID_HEX_DIGITS = 16


class RecordsKeyError(PerseveranceError):
    """The key file exists but cannot be used (unreadable, wrong length). One sentence."""

    exit_code = ExitCode.UNUSABLE


def read_key(path: Path) -> bytes | None:
    """The key at ``path``, or None if there is none (verification never creates one)."""
    try:
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise RecordsKeyError(f"The records key {path} cannot be read: {exc}.") from exc
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) != KEY_BYTES:
        raise RecordsKeyError(f"The records key {path} is not {KEY_BYTES} bytes in hex: "
                              "it was damaged or replaced.")
    return key


def load_or_create_key(path: Path) -> bytes:
    """The key at ``path``, created (owner-only) if absent."""
    key = read_key(path)
    if key is not None:
        return key
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    descriptor = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(descriptor, (secrets.token_hex(KEY_BYTES) + "\n").encode("ascii"))
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    try:
        os.link(staging, path)  # atomic, and refuses to replace a key created meanwhile
    except FileExistsError:
        pass
    finally:
        staging.unlink()
    created = read_key(path)
    assert created is not None, f"the records key {path} vanished as it was created"
    return created


def key_id(key: bytes) -> str:
    """A records key's public name: the first 16 hex digits of SHA-256 over a fixed label
    and the key. A function of the key only (nothing about a record or a student), and
    it tells nothing of the key; it lets a verifier say "signed with another key"."""
    return hashlib.sha256(KEY_ID_LABEL + key).hexdigest()[:KEY_ID_HEX_DIGITS]


def chain_mac(key: bytes, previous: str, content: str) -> str:
    """HMAC-SHA256 of one record: it covers the previous record's MAC and this content."""
    return hmac.new(key, f"{previous}\n{content}".encode(), hashlib.sha256).hexdigest()


def same(a: str, b: str) -> bool:
    """Constant-time comparison of two MACs."""
    return hmac.compare_digest(a.encode(), b.encode())
