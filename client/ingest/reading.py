"""Reading a centre's extract as it comes out of its student information system.

CSV in any common delimiter (comma, semicolon, tab, pipe) and encoding (UTF-8 with or
without BOM, UTF-16 with BOM, Windows-1252, Latin-1), or Parquet. CSV cells are read
as text: types are decided later, column by column, against the schema, so a stray
word in a numeric column becomes a listed row problem rather than a silent cast.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from client.ingest.errors import IngestError, quote

DELIMITERS = (",", ";", "\t", "|")
DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}
# Cells read as missing (case as written); anything else is a value to validate.
NA_SPELLINGS = ("", "NA", "N/A", "n/a", "NaN", "nan", "NULL", "null", "None", "#N/A")
_SNIFF_CHARS = 65_536
_PARQUET_SUFFIXES = (".parquet", ".pq")
_BOMS = (
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


@dataclass(frozen=True)
class SourceHints:
    """How to read a file when detection is not wanted (the mapping's ``[source]``)."""

    file_format: str | None = None  # "csv" or "parquet"; default: by suffix and content
    delimiter: str | None = None
    encoding: str | None = None
    decimal: str | None = None  # "," also accepts 12,5; default: so unless comma-delimited


@dataclass(frozen=True)
class Extract:
    """The rows of one extract, in the source's own columns, as read."""

    frame: pd.DataFrame  # RangeIndex: row i is record i + 1 (line i + 2 of a CSV)
    source: str
    file_format: str
    encoding: str | None = None
    delimiter: str | None = None
    decimal: str = "."  # "," also accepts 12,5 as 12.5 in numeric cells


def read_extract(path: Path, hints: SourceHints | None = None) -> Extract:
    """Read a CSV or Parquet extract; raise ``IngestError`` for anything unreadable."""
    hints = hints or SourceHints()
    if not path.exists():
        raise IngestError(f"The data file {path} does not exist; check the path given.")
    if not path.is_file():
        raise IngestError(f"The data path {path} is not a file; give the extract file itself.")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise IngestError(
            f"The data file {path} cannot be opened ({exc.strerror}); check its permissions."
        ) from exc
    if not data.strip():
        raise _empty(path)
    is_parquet = hints.file_format == "parquet" or (
        hints.file_format is None
        and (path.suffix.lower() in _PARQUET_SUFFIXES or data[:4] == b"PAR1")
    )
    extract = _read_parquet(path, hints) if is_parquet else _read_csv(path, data, hints)
    if extract.frame.empty:
        raise IngestError(
            f"The data file {path} has a header but no student rows; "
            "export the extract again with its rows."
        )
    return extract


def _read_parquet(path: Path, hints: SourceHints) -> Extract:
    import pyarrow

    try:
        frame = pd.read_parquet(path)
    except (OSError, ValueError, pyarrow.ArrowException) as exc:
        raise IngestError(
            f"The file {path} is not a readable Parquet file; export it again as Parquet "
            "or as CSV.",
            details=[f"reader said: {exc}"],
        ) from exc
    frame.columns = [str(name).strip() for name in frame.columns]
    _refuse_duplicate_columns(path, list(frame.columns))
    decimal = hints.decimal or "."
    return Extract(frame.reset_index(drop=True), str(path), "parquet", decimal=decimal)


def _read_csv(path: Path, data: bytes, hints: SourceHints) -> Extract:
    if data[:4] == b"PK\x03\x04":
        raise IngestError(
            f"The file {path} is a spreadsheet or archive, not CSV; "
            "save it as 'CSV UTF-8' or Parquet and validate that file."
        )
    text, encoding = _decode(path, data, hints.encoding)
    text = text.removeprefix("\ufeff")
    if not text.strip():
        raise _empty(path)
    delimiter = hints.delimiter or _sniff_delimiter(text)
    header = _header(text, delimiter)
    _refuse_duplicate_columns(path, header)
    try:
        frame = pd.read_csv(
            io.StringIO(text),
            sep=delimiter,
            dtype=str,
            keep_default_na=False,
            na_values=list(NA_SPELLINGS),
            skip_blank_lines=True,
        )
    except (pd.errors.ParserError, pd.errors.EmptyDataError, csv.Error, ValueError) as exc:
        detail = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise IngestError(
            f"The file {path} cannot be read as CSV with a "
            f"{DELIMITER_NAMES.get(delimiter, repr(delimiter))} delimiter; check the delimiter "
            "and that every row has as many fields as the header.",
            details=[f"reader said: {detail}"],
        ) from exc
    frame.columns = [str(name).strip() for name in frame.columns]
    decimal = hints.decimal or ("." if delimiter == "," else ",")
    return Extract(frame, str(path), "csv", encoding, delimiter, decimal)


def _decode(path: Path, data: bytes, declared: str | None) -> tuple[str, str]:
    """Text and the encoding it was read with."""
    if declared:
        try:
            return data.decode(declared), declared
        except UnicodeDecodeError as exc:
            raise IngestError(
                f"The file {path} is not in the {declared} encoding that the mapping declares "
                f"(byte {exc.start} does not decode); export it in {declared} or correct "
                "[source] encoding in the mapping."
            ) from exc
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(encoding), encoding
            except UnicodeDecodeError as exc:
                raise _binary(path) from exc
    if b"\x00" in data[:_SNIFF_CHARS]:
        raise _binary(path)
    for encoding in ("utf-8", "cp1252", "latin-1"):
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            continue
        if _looks_binary(text):
            raise _binary(path)
        return text, encoding
    raise _binary(path)  # pragma: no cover - latin-1 decodes every byte


def _looks_binary(text: str) -> bool:
    sample = text[:_SNIFF_CHARS]
    controls = sum(
        1 for ch in sample if (ord(ch) < 32 and ch not in "\t\r\n") or 0x7F <= ord(ch) < 0xA0
    )
    return controls > 0.01 * len(sample) or (controls > 0 and len(sample) < 100)


def _empty(path: Path) -> IngestError:
    return IngestError(
        f"The data file {path} is empty; export the extract again, "
        "with a header row and one row per student."
    )


def _binary(path: Path) -> IngestError:
    return IngestError(
        f"The file {path} is not a text CSV file (it holds binary data); "
        "export the extract as CSV (UTF-8) or Parquet."
    )


def _sniff_delimiter(text: str) -> str:
    """The candidate delimiter giving the widest header with the most consistent rows."""
    lines = [line for line in text[:_SNIFF_CHARS].splitlines()[:50] if line.strip()]
    if not lines:
        return ","
    best, best_score = ",", (0.0, 1)
    for candidate in DELIMITERS:
        widths = [len(row) for row in csv.reader(lines, delimiter=candidate)]
        if not widths or widths[0] < 2:
            continue
        score = (sum(w == widths[0] for w in widths) / len(widths), widths[0])
        if score > best_score:
            best, best_score = candidate, score
    return best


def _header(text: str, delimiter: str) -> list[str]:
    for line in text[:_SNIFF_CHARS].splitlines():
        if line.strip():
            return [name.strip() for name in next(csv.reader([line], delimiter=delimiter))]
    return []


def _refuse_duplicate_columns(path: Path, names: list[str]) -> None:
    duplicates = sorted(name for name, count in Counter(names).items() if count > 1)
    if duplicates:
        raise IngestError(
            f"The file {path} has several columns named {quote(duplicates[0])}; "
            "give every column its own name and export again.",
            details=[f"duplicated column names: {', '.join(quote(d) for d in duplicates)}"],
        )
