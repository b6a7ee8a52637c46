"""Append-only audit trails: one JSON object per line, each keyed and chained to the one before.

Both sides keep one (the ministry in the run folder, each centre in its state folder):
who connected, what ran, what was sent, refused or rejected, with UTC timestamps. Every
line carries ``seq`` (its line number), ``prev`` (the MAC of the line before, ``"0" * 64``
for the first), ``key_id`` (the public name of the key that signs it,
``common.records.key.key_id``) and ``mac``: HMAC-SHA256, with the side's key
(``common.records.key``), of the line's content including ``prev`` and ``key_id``.
Editing a line, or recomputing the chain without the key, breaks the MAC at that
line; removing or inserting one breaks ``prev`` or ``seq``; :func:`check_trail` names
the first such line. A cut-off tail leaves an intact chain: the heads anchored at the
other side find it (``client.privacy.records``).
The ``key_id`` lets a verifier tell a wrong or missing key from an edited line
(:func:`key_problem`): lines that all name another key were signed with another key.
Keyed lines written before key ids (no ``key_id``) are checked as before; if not one of
them verifies with the key given, the key is named as not theirs rather than every line
as edited.

Lines written before keying (``prev`` the SHA-256 of the line before, no ``mac``) are
read as before and reported as unkeyed; they may only precede keyed lines. Lines are
appended under an exclusive ``flock``: several processes of the same side (Flower
starts one per message) may write to one trail.

Durability (issue 32): a line is fsynced when it is written (``sync=True``, the
default), or, when its writer says so (``sync=False``), by the next synced line or
:func:`sync_trail` of the same file: ``fsync`` flushes every written page of the file,
whichever process or descriptor wrote it. A writer defers a line only when a sync point
always follows it before anything that depends on it leaves the process: the head of a
trail (what the other side anchors) is never sent before the lines it covers are on
disk. What a crash of the machine (not of a process: written lines are in the kernel's
cache and survive it) can then lose is a tail no anchor covers, which verifies as an
intact, shorter chain. Each deferral is argued where it is made
(``client.federation.app``, ``client.privacy.ledger``, ``server.federation.audit_log``)
and in docs/PRIVACY.md, "Records that prove themselves".
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from common.i18n.catalogue import N_, Sentence, word
from common.records.key import GENESIS as GENESIS  # re-exported: the chain's first `prev`
from common.records.key import KEY_FILE, chain_mac, key_id, load_or_create_key, same

# Enough to hold the longest line we write (events are small); the last line is all we
# need to read before appending.
TAIL_BYTES = 65_536
RESERVED = ("seq", "prev", "key_id", "mac")


def _digest(line: str) -> str:
    return hashlib.sha256(line.encode("utf-8")).hexdigest()


def _canonical(entry: dict[str, Any]) -> str:
    return json.dumps(entry, sort_keys=True, default=str, allow_nan=False)


def _last_line(handle: Any) -> str | None:
    handle.seek(0, os.SEEK_END)
    size = handle.tell()
    if size == 0:
        return None
    handle.seek(max(0, size - TAIL_BYTES))
    lines = handle.read().decode("utf-8", errors="replace").splitlines()
    return lines[-1] if lines else None


def _count_lines(handle: Any) -> int:
    handle.seek(0)
    return sum(1 for line in handle.read().decode("utf-8", errors="replace").splitlines()
               if line.strip())


@dataclass(frozen=True)
class Head:
    """Where a trail ends: its last line's ``link`` (MAC, or SHA-256 of an unkeyed line;
    ``""`` if empty), its number of lines and the actor of its last line."""

    link: str
    lines: int
    actor: str | None


def _head(handle: Any) -> Head:
    last = _last_line(handle)
    if last is None:
        return Head("", 0, None)
    try:
        entry = json.loads(last)
        mac, seq, actor = entry.get("mac"), entry.get("seq"), entry.get("actor")
    except (ValueError, AttributeError):
        mac = seq = actor = None
    link = mac if isinstance(mac, str) else _digest(last)
    lines = seq if isinstance(seq, int) else _count_lines(handle)  # once, at keying
    return Head(link, lines, actor if isinstance(actor, str) else None)


def trail_head(path: Path) -> Head:
    """The head of a trail, from its tail only (under a shared lock)."""
    if not path.is_file():
        return Head("", 0, None)
    with path.open("rb") as handle:
        fcntl.flock(handle, fcntl.LOCK_SH)
        try:
            return _head(handle)
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class AuditTrail:
    """An append-only, keyed and chained JSON-lines file.

    Parameters
    ----------
    path : Path
        The trail's file; its folder is created if needed.
    actor : str
        Who writes it (``"ministry"`` or the centre's name), repeated on every line.
    key_path : Path | None
        The side's records key, created on first use; default ``records.key`` beside the
        trail (a centre's state folder; the ministry always passes its own).
    """

    def __init__(self, path: Path, actor: str, key_path: Path | None = None) -> None:
        self.path = path
        self.actor = actor
        self.key_path = key_path or path.parent / KEY_FILE
        self._key: bytes | None = None
        path.parent.mkdir(parents=True, exist_ok=True)

    def record(self, event: str, *, sync: bool = True, **fields: Any) -> dict[str, Any]:
        """Append one event with the current UTC time; returns what was written.

        ``sync=False`` leaves the line in the kernel's cache (written, visible to every
        reader, not yet on disk): the caller guarantees a later synced line or
        :func:`sync_trail` before anything that covers it leaves (module docstring)."""
        assert not set(RESERVED) & set(fields), f"{RESERVED} are the chain's own fields"
        if self._key is None:
            self._key = load_or_create_key(self.key_path)
        with self.path.open("a+b") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                head = _head(handle)
                entry = {
                    "at": datetime.now(UTC).isoformat(timespec="milliseconds"),
                    "actor": self.actor,
                    "event": event,
                    **fields,
                    "seq": head.lines + 1,
                    "prev": head.link or GENESIS,
                    "key_id": key_id(self._key),
                }
                # What a reader will parse back, so that its MAC is computed on the same text.
                entry = dict(json.loads(_canonical(entry)))
                entry["mac"] = chain_mac(self._key, entry["prev"], _canonical(entry))
                handle.seek(0, os.SEEK_END)
                handle.write((_canonical(entry) + "\n").encode("utf-8"))
                handle.flush()
                if sync:
                    os.fsync(handle.fileno())  # this line and every deferred one before it
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
        return entry


def sync_trail(path: Path) -> None:
    """Make every line written to the trail at ``path`` durable (one fsync of the file,
    which covers lines deferred by any process); nothing to do if it does not exist."""
    try:
        descriptor = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def read_trail(path: Path) -> list[dict[str, Any]]:
    """Every event of a trail, oldest first (an absent file is an empty trail)."""
    if not path.is_file():
        return []
    text = path.read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@dataclass(frozen=True)
class Tampering:
    """One record that is not what was written: the file, the entry, why."""

    path: Path
    entry: str
    reason: str

    def sentence(self) -> str:
        # A reason or entry without parameters is a plain catalogue message: as a word,
        # it is translated with the sentence (a centre's name is not in the catalogue).
        return N_("%(path)s, %(entry)s: %(reason)s", path=self.path,
                  entry=self.entry if isinstance(self.entry, Sentence) else word(self.entry),
                  reason=self.reason if isinstance(self.reason, Sentence) else word(self.reason))


@dataclass
class TrailCheck:
    """What :func:`check_trail` found: every line's link, the unkeyed lines, problems;
    ``key_ids`` the key ids the keyed lines name, ``foreign`` the lines whose key is not
    the one given (by their key id, or every keyed line of a log without key ids whose
    MAC fails), ``verified`` the lines whose MAC the key given confirmed."""

    path: Path
    links: list[str] = field(default_factory=list)
    actor: str | None = None
    unkeyed: int = 0
    problems: list[Tampering] = field(default_factory=list)
    key_ids: list[str] = field(default_factory=list)
    foreign: list[int] = field(default_factory=list)
    verified: int = 0

    @property
    def keyed(self) -> int:
        """The number of lines that carry a MAC."""
        return len(self.links) - self.unkeyed


def check_trail(path: Path, key: bytes | None) -> TrailCheck:
    """Check a trail line by line. Without ``key`` only the chain's links and numbers are
    checked (an edited line with its MAC left in place then goes unseen)."""
    check = TrailCheck(path)
    lines = path.read_text(encoding="utf-8").splitlines() if path.is_file() else []
    keyed = False
    unnamed_failures: list[tuple[int, Tampering]] = []
    for number, line in enumerate(lines, start=1):
        where = N_("line %(number)s", number=number)
        expected = check.links[-1] if check.links else GENESIS
        try:
            entry = json.loads(line)
            claimed, mac = entry.get("prev"), entry.pop("mac", None)
        except (ValueError, AttributeError):
            check.problems.append(Tampering(path, where, N_("it is not a JSON object.")))
            check.links.append(_digest(line))
            continue
        check.actor = check.actor or entry.get("actor")
        if mac is None:
            check.unkeyed += 1
            if keyed:
                check.problems.append(Tampering(path, where, N_(
                    "it carries no MAC after keyed lines: it was written without the key.")))
            elif claimed != expected:
                check.problems.append(Tampering(path, where, N_(
                    "it does not follow line %(before)s: a line was edited, removed or "
                    "inserted.", before=number - 1)))
            check.links.append(_digest(line))
            continue
        keyed = True
        check.links.append(str(mac))
        named = entry.get("key_id")
        if isinstance(named, str) and named not in check.key_ids:
            check.key_ids.append(named)
        if claimed != expected:
            check.problems.append(Tampering(path, where, N_(
                "it does not follow line %(before)s: a line before it was removed or "
                "inserted.", before=number - 1)))
        elif key is not None and isinstance(named, str) and named != key_id(key):
            check.foreign.append(number)  # signed with another key: key_problem names it
        elif key is not None and not same(str(mac), chain_mac(key, expected,
                                                                _canonical(entry))):
            failure = Tampering(path, where, N_(
                "its MAC does not match its content: the line was edited (its chain "
                "recomputed without the key)."))
            check.problems.append(failure)
            if named is None:
                unnamed_failures.append((number, failure))
        elif entry.get("seq") != number:
            check.problems.append(Tampering(path, where, N_(
                "it is numbered %(seq)s: lines before it were removed or inserted.",
                seq=entry.get("seq"))))
        elif key is not None:
            check.verified += 1
    if key is not None and not check.verified and not check.key_ids and unnamed_failures \
            and len(unnamed_failures) == check.keyed:
        # A log from before key ids, not one line of which this key signed: another key.
        check.foreign = [number for number, _ in unnamed_failures]
        dropped = [failure for _, failure in unnamed_failures]
        check.problems = [p for p in check.problems if p not in dropped]
    if key is not None and len(check.key_ids) > 1:
        _mixed_keys(check, key)
    if key is not None and lines and not keyed:
        check.problems.append(Tampering(path, N_("line %(number)s", number=1), N_(
            "no line carries a MAC although the key exists: the MACs were stripped and the "
            "chain recomputed without the key.")))
    return check


def _mixed_keys(check: TrailCheck, key: bytes) -> None:
    """Lines naming another key than the log's other lines, signed with the key given:
    one side has one key, so these lines were edited (or the key changed mid-run)."""
    mine = key_id(key)
    if mine not in check.key_ids:
        return  # every line names another key: a wrong key, not an edit (key_problem)
    for number in check.foreign:
        check.problems.append(Tampering(check.path, N_("line %(number)s", number=number), N_(
            "it names the key %(other)s, but the log's other lines were signed with the key "
            "given (%(mine)s): the line was edited, or the key was replaced during the run.",
            other=check.key_ids[-1] if check.key_ids[0] == mine else check.key_ids[0],
            mine=mine)))
    check.foreign = []


def key_problem(check: TrailCheck, key: bytes | None, key_path: Path, option: str) -> str | None:
    """Why ``key`` (read from ``key_path``) cannot verify a trail, in one sentence, or
    None: it is missing while lines are keyed, or every keyed line was signed with
    another key (named by its key id). Not an alteration: the key is the problem.
    ``option`` says how to give another key (``--key``, a variable)."""
    if key is None:
        if not check.keyed:
            return None
        if check.key_ids:
            return N_("%(log)s was signed with the key %(id)s, but there is no key at "
                      "%(path)s: give the key that signed it (%(option)s).",
                      log=check.path, id=", ".join(check.key_ids), path=key_path, option=option)
        return N_("%(log)s is keyed, but there is no key at %(path)s: give the key that "
                  "signed it (%(option)s).", log=check.path, path=key_path, option=option)
    if not check.foreign:
        return None
    if check.key_ids:
        return N_("The key at %(path)s (%(mine)s) is not the one that signed %(log)s "
                  "(%(id)s): give the key that signed it (%(option)s).", path=key_path,
                  mine=key_id(key), log=check.path, id=", ".join(check.key_ids), option=option)
    return N_("The key at %(path)s (%(mine)s) verifies none of the %(lines)s keyed lines of "
              "%(log)s: it is not the key that signed it (%(option)s; this log, written before "
              "key ids, does not name its key).", path=key_path, mine=key_id(key),
              lines=len(check.foreign), log=check.path, option=option)


def verify_trail(path: Path, key: bytes | None = None) -> list[str]:
    """Where a trail is broken: one sentence per bad line, none if intact (see
    :func:`check_trail` for what is checked without ``key``)."""
    return [problem.sentence() for problem in check_trail(path, key).problems]
