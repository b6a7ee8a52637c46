"""Reading an extract is bounded in memory: a small multiple of the file's size, and
files above ``MAX_EXTRACT_BYTES`` are refused in one sentence."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from client.cli import app
from client.ingest.reading import MAX_EXTRACT_BYTES
from tests.client.big_extract import write_big_extract, write_mapping

GROWTH_BOUND = 4.0  # documented in docs/DATA-INGESTION.md; measured about 3 (BENCHMARKS)

_MEASURE = """
import resource, sys
from pathlib import Path
from client.ingest.mapping import load_mapping
from client.ingest.reading import read_extract
mapping = load_mapping(Path(sys.argv[3]))
read_extract(Path(sys.argv[1]), mapping.hints)  # warm up: imports, pandas and arrow pools
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
extract = read_extract(Path(sys.argv[2]), mapping.hints)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(len(extract.frame), (after - before) * 1024)
"""


def test_reading_peaks_at_a_small_multiple_of_the_file_size(tmp_path: Path) -> None:
    small = write_big_extract(tmp_path / "small.csv", 0.5)
    big = write_big_extract(tmp_path / "big.csv", 25, seed=1)
    mapping = write_mapping(tmp_path / "m.toml")

    done = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(small), str(big), str(mapping)],
        capture_output=True, text=True, timeout=300, check=True,
    )

    rows, growth = map(int, done.stdout.split())
    size = big.stat().st_size
    assert rows > 250_000
    # Reading the whole file into bytes, then text, then a StringIO (as before) peaked
    # at about 9 times the size.
    assert growth < GROWTH_BOUND * size, f"peak grew by {growth / size:.2f} times the file size"


def test_a_file_above_the_limit_is_refused_in_one_sentence(tmp_path: Path) -> None:
    huge = tmp_path / "huge.csv"
    with huge.open("wb") as handle:  # sparse: takes no disk space
        handle.write(b"student_id,school_id\n")
        handle.truncate(MAX_EXTRACT_BYTES + 1)

    result = CliRunner().invoke(app, ["validate", "--lang", "en", "--data", str(huge)])

    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"error: The data file {huge} is 500 MB, more than the 500 MB")
