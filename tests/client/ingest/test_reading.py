"""Reading extracts: delimiters, encodings, BOMs, Parquet, and files that cannot be read."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from client.ingest import IngestError
from client.ingest.reading import SourceHints, read_extract
from tests.client.conftest import harmonised_frame, write_csv


@pytest.mark.parametrize("sep", [",", ";", "\t", "|"])
def test_every_common_delimiter_is_detected(tmp_path: Path, sep: str) -> None:
    path = write_csv(tmp_path / "x.csv", harmonised_frame(5), sep=sep)

    extract = read_extract(path)

    assert extract.delimiter == sep
    assert list(extract.frame.columns) == list(harmonised_frame(1).columns)
    assert extract.frame["student_id"].tolist() == [f"s{i:04d}" for i in range(5)]


@pytest.mark.parametrize(
    ("encoding", "read_as"),
    [("utf-8", "utf-8"), ("utf-8-sig", "utf-8-sig"), ("utf-16", "utf-16"), ("cp1252", "cp1252")],
)
def test_encodings_with_and_without_bom(tmp_path: Path, encoding: str, read_as: str) -> None:
    frame = harmonised_frame(3).assign(school_id="École Saint-Léon")
    path = write_csv(tmp_path / "x.csv", frame, sep=";", encoding=encoding)

    extract = read_extract(path)

    assert extract.encoding == read_as
    assert extract.frame.columns[0] == "student_id"  # no BOM left in the first name
    assert extract.frame["school_id"].tolist() == ["École Saint-Léon"] * 3


def test_cells_are_text_and_na_spellings_are_missing(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("a,b\n007,NA\n1.50,\n", encoding="utf-8")

    frame = read_extract(path).frame

    assert frame["a"].tolist() == ["007", "1.50"]
    assert frame["b"].isna().all()


def test_parquet_is_read_by_suffix_and_content(tmp_path: Path) -> None:
    harmonised_frame(4).to_parquet(tmp_path / "x.parquet", index=False)
    (tmp_path / "x.parquet").rename(tmp_path / "x.bin")

    extract = read_extract(tmp_path / "x.bin")

    assert extract.file_format == "parquet"
    assert len(extract.frame) == 4


def test_declared_delimiter_and_encoding_are_used(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "x.csv", harmonised_frame(2), sep="|", encoding="latin-1")

    extract = read_extract(path, SourceHints(delimiter="|", encoding="latin-1"))

    assert (extract.delimiter, extract.encoding) == ("|", "latin-1")


def test_decimal_comma_is_accepted_in_semicolon_files(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "x.csv", harmonised_frame(2), sep=";")

    assert read_extract(path).decimal == ","
    assert read_extract(write_csv(tmp_path / "y.csv", harmonised_frame(2))).decimal == "."


@pytest.mark.parametrize(
    ("content", "phrase"),
    [
        (b"", "is empty"),
        (b"  \r\n\n", "is empty"),
        (b"student_id,school_id\n", "no student rows"),
        (b"\x00\x01\x02binary\xff\xfe\x00", "binary data"),
        (b"PK\x03\x04rest-of-a-zip", "spreadsheet or archive"),
        (b"a,a,b\n1,2,3\n", "several columns named 'a'"),
        (b"a,b\n1,2\n1,2,3,4\n", "cannot be read as CSV"),
        (b"PAR1 not really parquet", "not a readable Parquet file"),
    ],
)
def test_unreadable_files_end_in_one_sentence(tmp_path: Path, content: bytes, phrase: str) -> None:
    path = tmp_path / "x.csv"
    path.write_bytes(content)

    with pytest.raises(IngestError) as caught:
        read_extract(path)

    assert phrase in str(caught.value)
    assert str(caught.value).endswith(".")
    assert caught.value.exit_code == 2


def test_missing_file_and_directory_are_refused(tmp_path: Path) -> None:
    with pytest.raises(IngestError, match="does not exist"):
        read_extract(tmp_path / "absent.csv")
    with pytest.raises(IngestError, match="not a file"):
        read_extract(tmp_path)


def test_wrong_declared_encoding_is_refused(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "x.csv", harmonised_frame(2).assign(school_id="É"), encoding="latin-1"
    )

    with pytest.raises(IngestError, match="not in the utf-8 encoding"):
        read_extract(path, SourceHints(encoding="utf-8"))


def test_utf16_without_bom_is_binary(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_bytes("student_id,consent\n1,true\n".encode("utf-16-le"))

    with pytest.raises(IngestError, match="binary data"):
        read_extract(path)


def test_frame_index_numbers_records_from_zero(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "x.csv", harmonised_frame(3))

    assert read_extract(path).frame.index.equals(pd.RangeIndex(3))
