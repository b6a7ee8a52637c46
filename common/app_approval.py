"""The apps a centre approved: the SHA-256 of every FAB it agreed to run.

A run ships its code to the centres as a FAB (Flower App Bundle, the zip that
``flwr build`` and ``flwr run`` make); Flower names a FAB by the SHA-256 of its bytes.
A centre's own ClientApp runtime (``client/federation/runtime_task.py``) computes that hash from
the bytes it received and installs, imports and runs the FAB only if the hash is in
``<state-dir>/approved-apps.json``; anything else is refused before one file of it is
unpacked. ``perseverance-client app approve|list|revoke`` edit the list, and the
loopback launcher pre-approves the app it ships. Flower-free, so both sides can use it.

The file (written atomically, under a lock, never half written)::

    {"version": 1, "apps": [{"fab_hash": "<64 hex>", "approved_at": "<ISO 8601 UTC>",
                             "note": "<free text: who reviewed what>"}]}
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from common.errors import ExitCode, PerseveranceError
from common.files import atomic_write_bytes
from common.i18n.catalogue import N_, Sentence

APPROVED_APPS_FILE = "approved-apps.json"
FORMAT_VERSION = 1
_HASH = re.compile(r"[0-9a-f]{64}")
_PREFIX = re.compile(r"[0-9a-f]{8,64}")


class ApprovalError(PerseveranceError):
    """The approved list cannot be read or changed as asked (one sentence)."""

    exit_code = ExitCode.UNUSABLE


@dataclass(frozen=True)
class ApprovedApp:
    """One approved FAB: its SHA-256 (64 lowercase hex digits), when, and why."""

    fab_hash: str
    approved_at: str
    note: str = ""


def fab_hash(content: bytes) -> str:
    """The SHA-256 of a FAB's bytes, as Flower names the FAB (hex)."""
    return hashlib.sha256(content).hexdigest()


def is_fab_hash(text: str) -> bool:
    """Whether ``text`` is a full SHA-256 in hex (either case)."""
    return _HASH.fullmatch(text.strip().lower()) is not None


def approved_apps_path(state_dir: Path) -> Path:
    """Where the centre keeps its list (its state folder: the SuperNode's state-dir)."""
    return state_dir / APPROVED_APPS_FILE


def read_approved(state_dir: Path) -> list[ApprovedApp]:
    """The approved apps, oldest first; none if the centre never approved one.

    Raises
    ------
    ApprovalError
        The file exists but is not a list this module wrote.
    """
    path = approved_apps_path(state_dir)
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as err:
        raise ApprovalError(N_("The approved-apps list %(path)s cannot be read (%(reason)s).",
                               path=path, reason=str(err))) from err
    try:
        if payload["version"] != FORMAT_VERSION:
            raise ValueError(f"format version {payload['version']}")
        apps = [ApprovedApp(**entry) for entry in payload["apps"]]
    except (KeyError, TypeError, ValueError) as err:
        raise ApprovalError(N_("The approved-apps list %(path)s is not valid (%(reason)s).",
                               path=path, reason=str(err))) from err
    if not all(_HASH.fullmatch(app.fab_hash) for app in apps):
        raise ApprovalError(N_("The approved-apps list %(path)s holds a malformed hash.",
                               path=path))
    return apps


def is_approved(state_dir: Path, digest: str) -> bool:
    """Whether the FAB with SHA-256 ``digest`` is on the centre's list."""
    return any(app.fab_hash == digest for app in read_approved(state_dir))


def approve(state_dir: Path, digest: str, note: str = "") -> tuple[ApprovedApp, bool]:
    """Add a FAB's hash to the list; returns the entry and whether it is new (approving
    an approved app again keeps the first entry and its note)."""
    digest = digest.strip().lower()
    if not _HASH.fullmatch(digest):
        raise ApprovalError(N_("%(digest)r is not a SHA-256 (64 hexadecimal digits).",
                               digest=digest))
    with _locked(state_dir):
        apps = read_approved(state_dir)
        for app in apps:
            if app.fab_hash == digest:
                return app, False
        entry = ApprovedApp(digest, datetime.now(UTC).isoformat(timespec="seconds"), note)
        _write(state_dir, [*apps, entry])
    return entry, True


def revoke(state_dir: Path, digest_or_prefix: str) -> ApprovedApp:
    """Remove one app from the list, named by its hash or a unique prefix of at least 8
    hex digits; returns the entry removed."""
    wanted = digest_or_prefix.strip().lower()
    if not _PREFIX.fullmatch(wanted):
        raise ApprovalError(N_("%(digest)r is not a hash or a prefix of at least 8 "
                               "hexadecimal digits.", digest=digest_or_prefix))
    with _locked(state_dir):
        apps = read_approved(state_dir)
        matches = [app for app in apps if app.fab_hash.startswith(wanted)]
        if len(matches) != 1:
            raise ApprovalError(
                N_("No approved app has a hash starting with %(prefix)s.", prefix=wanted)
                if not matches else
                N_("%(count)s approved apps have a hash starting with %(prefix)s; give more "
                   "digits.", count=len(matches), prefix=wanted))
        _write(state_dir, [app for app in apps if app is not matches[0]])
    return matches[0]


def _write(state_dir: Path, apps: list[ApprovedApp]) -> None:
    payload = {"version": FORMAT_VERSION, "apps": [asdict(app) for app in apps]}
    text = json.dumps(payload, indent=2, ensure_ascii=False) + "\n"
    atomic_write_bytes(approved_apps_path(state_dir), text.encode("utf-8"))


@contextmanager
def _locked(state_dir: Path) -> Iterator[None]:
    """One writer at a time (two operators, or the launcher and an operator): a change
    read before another one was written would undo it."""
    if not state_dir.is_dir():
        raise ApprovalError(N_("The state folder %(path)s does not exist; give the "
                               "centre's state-dir.", path=state_dir))
    lock_path = state_dir / f".{APPROVED_APPS_FILE}.lock"
    with lock_path.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


# The sentence a centre's runtime sends back to the ministry when it refuses an app
# (code ``common.protocol.Reply.NOT_APPROVED``), in English on the wire with its hashes.
NOT_APPROVED = N_("App not approved: this centre runs only apps it approved, and the FAB "
                  "%(digest)s is not on its list.")
NOT_AS_ANNOUNCED = N_("App not approved: the FAB's content hashes to %(digest)s, not to the "
                      "%(announced)s it was announced as.")
LIST_UNREADABLE = N_("App not approved: the centre's approved-apps list cannot be read, so "
                     "the FAB %(digest)s is refused.")
_REFUSALS = tuple(
    (re.compile(re.escape(template).replace(re.escape("%(digest)s"), r"(?P<digest>\S+)")
                .replace(re.escape("%(announced)s"), r"(?P<announced>\S+)")), template)
    for template in (NOT_APPROVED, NOT_AS_ANNOUNCED, LIST_UNREADABLE))


def app_refusal(template: str, **hashes: str) -> str:
    """An app refusal as sent: ``template`` (one of the three above) in English."""
    return template % hashes


def refusal_sentence(text: str) -> str:
    """A received app refusal as the catalogue sentence it was written from (shown in
    the reader's language, its hashes kept); any other text as it is."""
    for pattern, template in _REFUSALS:
        match = pattern.fullmatch(text)
        if match:
            return Sentence(template, match.groupdict())
    return text
