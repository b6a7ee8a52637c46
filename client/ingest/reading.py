"""Reading a centre's extract as it comes out of its student information system.

CSV in any common delimiter (comma, semicolon, tab, pipe) and encoding (UTF-8 with or
without BOM, UTF-16 with BOM, Windows-1252, Latin-1), or Parquet. CSV cells are read
as text: types are decided later, column by column, against the schema, so a stray
word in a numeric column becomes a listed row problem rather than a silent cast.
"""

from __future__ import annotations

import codecs
import csv
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from client.ingest.errors import IngestError, quote
from common.i18n.catalogue import N_, word

DELIMITERS = (",", ";", "\t", "|")
DELIMITER_NAMES = {",": N_("comma"), ";": N_("semicolon"), "\t": N_("tab"), "|": N_("pipe")}
# Cells read as missing (case as written); anything else is a value to validate.
NA_SPELLINGS = ("", "NA", "N/A", "n/a", "NaN", "nan", "NULL", "null", "None", "#N/A")
_SNIFF_CHARS = 65_536
_SCAN_CHUNK = 1_048_576
# Largest extract read: about four times a 10-school-year extract of the largest centre
# (CSS de Montreal, about 29,000 secondary students, 40 columns). Reading peaks at about
# 2.5 times the file's size (docs/BENCHMARKS.md), validating at about 7 times.
MAX_EXTRACT_BYTES = 500_000_000
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
    """Read a CSV or Parquet extract; raise ``IngestError`` for anything unreadable.

    Memory: the file is never held whole in memory as bytes or text; a CSV is checked
    (encoding, emptiness) in one streaming pass and parsed by pandas from the file, so
    reading peaks at a small multiple of the file's size (docs/BENCHMARKS.md). Files
    above ``MAX_EXTRACT_BYTES`` are refused.
    """
    hints = hints or SourceHints()
    if not path.exists():
        raise IngestError(N_("The data file %(path)s does not exist; check the path given.",
                              path=path))
    if not path.is_file():
        raise IngestError(N_("The data path %(path)s is not a file; give the extract file "
                              "itself.", path=path))
    try:
        size = path.stat().st_size
        with path.open("rb") as handle:
            head = handle.read(_SNIFF_CHARS)
    except OSError as exc:
        raise IngestError(N_(
            "The data file %(path)s cannot be opened (%(reason)s); check its permissions.",
            path=path, reason=exc.strerror)) from exc
    if size > MAX_EXTRACT_BYTES:
        raise _too_large(path, size)
    if not head.strip():
        raise _empty(path)  # a longer file of blanks is caught by the streaming pass
    is_parquet = hints.file_format == "parquet" or (
        hints.file_format is None
        and (path.suffix.lower() in _PARQUET_SUFFIXES or head[:4] == b"PAR1")
    )
    extract = _read_parquet(path, hints) if is_parquet else _read_csv(path, head, hints)
    if extract.frame.empty:
        raise IngestError(N_(
            "The data file %(path)s has a header but no student rows; export the extract "
            "again with its rows.", path=path))
    return extract


def _too_large(path: Path, size: int) -> IngestError:
    return IngestError(
        N_("The data file %(path)s is %(size)s MB, more than the %(limit)s MB an extract may "
           "be; export one school year (or one part of the centre) per file.", path=path,
           size=format(size / 1e6, ",.0f"), limit=format(MAX_EXTRACT_BYTES / 1e6, ",.0f"))
    )


def _read_parquet(path: Path, hints: SourceHints) -> Extract:
    import pyarrow
    import pyarrow.parquet

    try:
        metadata = pyarrow.parquet.ParquetFile(path).metadata
        groups = range(metadata.num_row_groups)
        unpacked = sum(metadata.row_group(i).total_byte_size for i in groups)
        if unpacked > MAX_EXTRACT_BYTES:  # compressed files: bound what they unpack to
            raise _too_large(path, unpacked)
        frame = pd.read_parquet(path)
    except (OSError, ValueError, pyarrow.ArrowException) as exc:
        raise IngestError(
            N_("The file %(path)s is not a readable Parquet file; export it again as "
               "Parquet or as CSV.", path=path),
            details=[N_("reader said: %(error)s", error=str(exc))],
        ) from exc
    frame.columns = [str(name).strip() for name in frame.columns]
    _refuse_duplicate_columns(path, list(frame.columns))
    decimal = hints.decimal or "."
    return Extract(frame.reset_index(drop=True), str(path), "parquet", decimal=decimal)


def _read_csv(path: Path, head: bytes, hints: SourceHints) -> Extract:
    if head[:4] == b"PK\x03\x04":
        raise IngestError(N_(
            "The file %(path)s is a spreadsheet or archive, not CSV; save it as 'CSV UTF-8' "
            "or Parquet and validate that file.", path=path))
    encoding = _encoding(path, head, hints.encoding)
    text = head.decode(encoding, errors="ignore").removeprefix("\ufeff")
    if not hints.encoding and _looks_binary(text):
        raise _binary(path)
    delimiter = hints.delimiter or _sniff_delimiter(text)
    header = _header(text, delimiter)
    _refuse_duplicate_columns(path, header)
    try:
        frame = pd.read_csv(
            path,
            sep=delimiter,
            encoding=encoding,
            dtype=str,
            keep_default_na=False,
            na_values=list(NA_SPELLINGS),
            skip_blank_lines=True,
        )
    except (pd.errors.ParserError, pd.errors.EmptyDataError, csv.Error, ValueError) as exc:
        detail = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise IngestError(
            N_("The file %(path)s cannot be read as CSV with a %(delimiter)s delimiter; check "
               "the delimiter and that every row has as many fields as the header.",
               path=path, delimiter=word(DELIMITER_NAMES.get(delimiter, repr(delimiter)))),
            details=[N_("reader said: %(error)s", error=str(detail))],
        ) from exc
    frame.columns = [str(name).strip().removeprefix("\ufeff") for name in frame.columns]
    decimal = hints.decimal or ("." if delimiter == "," else ",")
    return Extract(frame, str(path), "csv", encoding, delimiter, decimal)


def _encoding(path: Path, head: bytes, declared: str | None) -> str:
    """The encoding the whole file decodes in, checked in one streaming pass."""
    if declared:
        failure = _scan(path, declared)
        if failure == "empty":
            raise _empty(path)
        if failure is not None:
            raise IngestError(N_(
                "The file %(path)s is not in the %(encoding)s encoding that the mapping "
                "declares (byte %(byte)s does not decode); export it in %(encoding)s or "
                "correct [source] encoding in the mapping.", path=path, encoding=declared,
                byte=failure))
        return declared
    for bom, encoding in _BOMS:
        if head.startswith(bom):
            failure = _scan(path, encoding)
            if failure == "empty":
                raise _empty(path)
            if failure is not None:
                raise _binary(path)
            return encoding
    if b"\x00" in head:
        raise _binary(path)
    for encoding in ("utf-8", "cp1252", "latin-1"):
        failure = _scan(path, encoding)
        if failure == "empty":
            raise _empty(path)
        if failure is None:
            return encoding
    raise _binary(path)  # pragma: no cover - latin-1 decodes every byte


def _scan(path: Path, encoding: str) -> int | str | None:
    """Decode the file chunk by chunk: None when it decodes and holds text, "empty"
    when it decodes to blanks only, else the offset of the first byte that fails."""
    decoder = codecs.getincrementaldecoder(encoding)()
    offset, seen_text = 0, False
    try:
        with path.open("rb") as handle:
            while chunk := handle.read(_SCAN_CHUNK):
                try:
                    text = decoder.decode(chunk)
                except UnicodeDecodeError as exc:
                    return offset + max(exc.start, 0)
                seen_text = seen_text or bool(text.strip().removeprefix("\ufeff").strip())
                offset += len(chunk)
            try:
                seen_text = seen_text or bool(decoder.decode(b"", final=True).strip())
            except UnicodeDecodeError:
                return offset
    except OSError as exc:
        raise IngestError(N_(
            "The data file %(path)s cannot be read (%(reason)s); check its permissions.",
            path=path, reason=exc.strerror)) from exc
    return None if seen_text else "empty"


def _looks_binary(text: str) -> bool:
    sample = text[:_SNIFF_CHARS]
    controls = sum(
        1 for ch in sample if (ord(ch) < 32 and ch not in "\t\r\n") or 0x7F <= ord(ch) < 0xA0
    )
    return controls > 0.01 * len(sample) or (controls > 0 and len(sample) < 100)


def _empty(path: Path) -> IngestError:
    return IngestError(N_(
        "The data file %(path)s is empty; export the extract again, with a header row and "
        "one row per student.", path=path))


def _binary(path: Path) -> IngestError:
    return IngestError(N_(
        "The file %(path)s is not a text CSV file (it holds binary data); export the "
        "extract as CSV (UTF-8) or Parquet.", path=path))


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
            N_("The file %(path)s has several columns named %(column)s; give every column "
               "its own name and export again.", path=path, column=quote(duplicates[0])),
            details=[N_("duplicated column names: %(names)s",
                        names=", ".join(quote(d) for d in duplicates))],
        )
