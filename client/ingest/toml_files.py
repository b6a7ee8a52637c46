"""Reading the centre's small TOML files (mapping, site policy) so that no content can
crash the reader: every problem is an ``IngestError`` with one sentence (exit code 2).

``tomllib`` alone turns some valid-looking files into a traceback: an array nested
thousands deep (``RecursionError``), an integer of more than 4,300 digits
(``ValueError``), and integers of any size reach the code that reads them (a 900-digit
``scale`` overflows ``float``). TOML itself allows only 64-bit integers, so larger ones
are refused here, as is nesting deeper than any mapping or policy needs, and files
larger than any of them would be.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from client.ingest.errors import IngestError
from common.i18n.catalogue import N_, word

MAX_BYTES = 1_048_576  # 1 MiB: a mapping or policy is a few kB
MAX_DEPTH = 8  # tables and arrays inside each other: a mapping needs 3 ([columns.x] recode)
INT64 = (-(2**63), 2**63 - 1)  # the TOML specification's integer range


def read_toml(path: Path, what: str, fix: str) -> dict[str, Any]:
    """The parsed TOML file ``path``, or ``IngestError`` saying why it cannot be.

    ``what`` names the file in the sentence ("The mapping file", "The site policy");
    ``fix`` ends it ("correct it and validate again"); both are catalogue messages
    (``N_``), translated with the sentence.
    """
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise IngestError(N_(
                "%(what)s %(path)s is %(size)s bytes, larger than the %(limit)s a TOML file "
                "of this kind may be; %(fix)s.", what=word(what), path=path,
                size=format(size, ","), limit=format(MAX_BYTES, ","), fix=word(fix)))
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError as exc:
        raise IngestError(N_("%(what)s %(path)s does not exist; check the path given.",
                             what=word(what), path=path)) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise IngestError(N_("%(what)s %(path)s cannot be read; check the path.",
                             what=word(what), path=path)) from exc
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise IngestError(N_("%(what)s %(path)s is not valid TOML (%(error)s); %(fix)s.",
                             what=word(what), path=path, error=str(exc),
                             fix=word(fix))) from exc
    except (RecursionError, MemoryError) as exc:
        raise _too_deep(what, path, fix) from exc
    except ValueError as exc:  # an integer beyond Python's 4,300-digit conversion limit
        raise _too_large(what, path, fix) from exc
    _check_values(raw, what, path, fix)
    return raw


def _check_values(raw: dict[str, Any], what: str, path: Path, fix: str) -> None:
    """Refuse nesting beyond ``MAX_DEPTH`` and integers outside 64 bits (iteratively:
    the check itself must not recurse)."""
    stack: list[tuple[object, int]] = [(raw, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict | list):
            if depth > MAX_DEPTH:
                raise _too_deep(what, path, fix)
            children = value.values() if isinstance(value, dict) else value
            stack.extend((child, depth + 1) for child in children)
        elif isinstance(value, int) and not INT64[0] <= value <= INT64[1]:
            raise _too_large(what, path, fix)


def _too_deep(what: str, path: Path, fix: str) -> IngestError:
    return IngestError(N_(
        "%(what)s %(path)s nests tables or arrays more than %(depth)s deep, which no "
        "setting needs; %(fix)s.", what=word(what), path=path, depth=MAX_DEPTH,
        fix=word(fix)))


def _too_large(what: str, path: Path, fix: str) -> IngestError:
    return IngestError(N_(
        "%(what)s %(path)s holds an integer outside the 64-bit range TOML allows; %(fix)s.",
        what=word(what), path=path, fix=word(fix)))
