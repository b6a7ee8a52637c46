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

MAX_BYTES = 1_048_576  # 1 MiB: a mapping or policy is a few kB
MAX_DEPTH = 8  # tables and arrays inside each other: a mapping needs 3 ([columns.x] recode)
INT64 = (-(2**63), 2**63 - 1)  # the TOML specification's integer range


def read_toml(path: Path, what: str, fix: str) -> dict[str, Any]:
    """The parsed TOML file ``path``, or ``IngestError`` saying why it cannot be.

    ``what`` names the file in the sentence ("The mapping file", "The site policy");
    ``fix`` ends it ("correct it and validate again").
    """
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise IngestError(
                f"{what} {path} is {size:,} bytes, larger than the {MAX_BYTES:,} a TOML "
                f"file of this kind may be; {fix}."
            )
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError as exc:
        raise IngestError(f"{what} {path} does not exist; check the path given.") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise IngestError(f"{what} {path} cannot be read; check the path.") from exc
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise IngestError(f"{what} {path} is not valid TOML ({exc}); {fix}.") from exc
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
    return IngestError(
        f"{what} {path} nests tables or arrays more than {MAX_DEPTH} deep, which no "
        f"setting needs; {fix}."
    )


def _too_large(what: str, path: Path, fix: str) -> IngestError:
    return IngestError(
        f"{what} {path} holds an integer outside the 64-bit range TOML allows; {fix}."
    )
