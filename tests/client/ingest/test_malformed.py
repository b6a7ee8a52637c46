"""Generated malformed extracts all end in exit code 2, one sentence, no traceback,
and nothing written anywhere.

``make test`` checks the same generated inputs every run (a gate must not fail on a
new draw); ``make fuzz`` draws fresh ones, many more, to look for new parser bugs (add
any it finds as an ``@example``)."""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
from pathlib import Path

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from client.cli import app
from client.ingest.reading import NA_SPELLINGS
from tests.client.conftest import harmonised_frame

runner = CliRunner()
FUZZ = os.environ.get("PERSEVERANCE_FUZZ", "") not in ("", "0")
# Fixed examples in `make test`, fresh ones under `make fuzz`: the profile (tests/conftest.py)
# chooses; here only how many.
SETTINGS = settings(max_examples=300 if FUZZ else 15,
                    suppress_health_check=[HealthCheck.too_slow])
HEADER = list(harmonised_frame(1).columns)
SEPARATORS = st.sampled_from([",", ";", "\t", "|"])
ENCODINGS = st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "cp1252"])


def run_validate(content: bytes, *extra: tuple[str, str]) -> tuple[int, str, str]:
    """Validate ``content`` from a fresh working folder that also holds the file; assert
    the folder is left exactly as it was."""
    # (Click 8.5 deprecates its isolated_filesystem: the same, a fresh folder made current)
    with tempfile.TemporaryDirectory() as folder, contextlib.chdir(folder):
        path = Path(folder) / "extract.csv"
        path.write_bytes(content)
        args = ["validate", "--lang", "en", "--lang", "en", "--data", str(path)]
        for name, text in extra:
            (Path(folder) / name).write_text(text, encoding="utf-8")
            args += [f"--{name.split('.')[0]}", str(Path(folder) / name)]
        before = sorted(p.name for p in Path(folder).iterdir())
        result = runner.invoke(app, args)
        after = sorted(p.name for p in Path(folder).iterdir())
        assert before == after, "validate wrote a file"
        assert path.read_bytes() == content
    return result.exit_code, result.stdout, result.stderr


def assert_refused(code: int, stdout: str, stderr: str) -> str:
    assert code == 2, stdout + stderr
    assert "Traceback" not in stdout + stderr
    first = stderr.splitlines()[0]
    assert first.endswith("."), first
    assert first.startswith("error: "), first  # every command's errors begin so
    first = first.removeprefix("error: ")
    assert first[0].isupper() or first[0].isdigit(), first
    return first


@SETTINGS
@given(st.binary(min_size=1, max_size=400))
def test_binary_garbage(content: bytes) -> None:
    assert_refused(*run_validate(content))


@SETTINGS
@given(st.sampled_from([b"", b"\n", b" \r\n\t\n", "\ufeff".encode()]), SEPARATORS)
def test_empty_files(content: bytes, sep: str) -> None:
    first = assert_refused(*run_validate(content))
    assert "is empty" in first or "no student rows" in first


@SETTINGS
@given(SEPARATORS, ENCODINGS)
def test_header_only(sep: str, encoding: str) -> None:
    content = (sep.join(HEADER) + "\n").encode(encoding)

    assert "no student rows" in assert_refused(*run_validate(content))


@SETTINGS
@given(st.sampled_from([":", " ", "#", "~"]), st.integers(1, 20))
def test_wrong_delimiter(sep: str, rows: int) -> None:
    content = harmonised_frame(rows).to_csv(index=False, sep=sep).encode()

    assert "lacks the required columns" in assert_refused(*run_validate(content))


@SETTINGS
@given(st.integers(1, 20))
def test_wrong_encoding_declared_by_the_mapping(rows: int) -> None:
    frame = harmonised_frame(rows).assign(school_id="École Saint-Léon")
    content = frame.to_csv(index=False).encode("cp1252")
    mapping = ("mapping.toml", '[source]\nencoding = "utf-8"\n')

    assert "not in the utf-8 encoding" in assert_refused(*run_validate(content, mapping))


# Letters every tested encoding can write; the NA spellings are missing values, not text.
WORDS = st.text(st.characters(categories=["L"], max_codepoint=255), min_size=1, max_size=8).filter(
    lambda word: word not in NA_SPELLINGS
)
CORRUPTIONS = {
    "duplicated ids": ("student_id", st.just("s0000")),
    "out-of-range values": ("grade_math", st.floats(100.01, 1e6) | st.floats(-1e6, -0.01)),
    "text in numeric columns": ("absence_rate", WORDS),
    "NaN in required columns": ("consent", st.sampled_from(["", "NaN", "nan", "NA"])),
    "inf": ("grade_trend", st.sampled_from(["inf", "-inf", "Infinity"])),
    "huge values": ("suspensions", st.sampled_from(["1e308", "9" * 40, "1e999"])),
    "not whole numbers": ("failed_courses", st.floats(0.01, 0.99).map(str)),
    "unknown categories": ("home_language", st.sampled_from(["de", "es", "fr-CA", "0"])),
}


@st.composite
def corrupted_extract(draw: st.DrawFn) -> tuple[bytes, set[int], str]:
    """A harmonised extract with more than 5 % of its rows corrupted in one way."""
    kind = draw(st.sampled_from(sorted(CORRUPTIONS)))
    column, values = CORRUPTIONS[kind]
    rows = draw(st.integers(2, 40))
    frame = harmonised_frame(rows).assign(grade_trend=1.5, suspensions=0).astype(object)
    bad = draw(
        st.sets(st.integers(1 if kind == "duplicated ids" else 0, rows - 1), min_size=1).filter(
            lambda s: len(s) / rows > 0.05
        )
    )
    for row in bad:
        frame.loc[row, column] = draw(values)
    if kind == "duplicated ids":
        bad = bad | {0}
    sep, encoding = draw(SEPARATORS), draw(ENCODINGS)
    return frame.to_csv(index=False, sep=sep).encode(encoding), {r + 1 for r in bad}, kind


@settings(max_examples=300 if FUZZ else 25,
          suppress_health_check=[HealthCheck.too_slow])
@given(corrupted_extract())
def test_row_problems_past_the_threshold(case: tuple[bytes, set[int], str]) -> None:
    content, bad_rows, kind = case

    first = assert_refused(*run_validate(content))

    every_row = f"No row of {Path(first.split()[3])} is valid" in first
    assert every_row or (f"{len(bad_rows)} of " in first and "have invalid values" in first), kind


@settings(max_examples=300 if FUZZ else 15,
          suppress_health_check=[HealthCheck.too_slow])
@given(corrupted_extract())
def test_the_same_rows_are_listed_and_excluded(case: tuple[bytes, set[int], str]) -> None:
    from client.ingest import ingest_file
    from client.ingest.centre_data import SitePolicy

    content, bad_rows, _ = case
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "extract.csv"
        path.write_bytes(content)
        result = ingest_file(path, None, SitePolicy(max_invalid_fraction=1.0))
    report = result.report

    assert {p.row for p in report.problems} == bad_rows
    assert len(result.frame) == report.rows_read - len(bad_rows)
    assert math.isclose(report.invalid_fraction, len(bad_rows) / report.rows_read)
    assert not result.frame.empty or report.rows_valid == 0
    assert isinstance(result.frame, pd.DataFrame)
