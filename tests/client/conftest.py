"""Shared builders for the client tests: small harmonised extracts with known answers."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

# ../shared/data beside the repository (tests run from the repo root; CI clones beside it).
REAL_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
REPO = Path(__file__).resolve().parents[2]
MAPPINGS = REPO / "client" / "mappings"
POLICIES = REPO / "client" / "policies"


def harmonised_frame(rows: int = 10) -> pd.DataFrame:
    """``rows`` valid records in the harmonised columns; row i has label i % 3 == 0."""
    return pd.DataFrame(
        {
            "student_id": [f"s{i:04d}" for i in range(rows)],
            "school_id": ["ecole-a" if i % 2 else "ecole-b" for i in range(rows)],
            "school_year": ["2023-2024"] * rows,
            "consent": [True] * rows,
            "left_without_diploma": [i % 3 == 0 for i in range(rows)],
            "grade_level": [1 + i % 5 for i in range(rows)],
            "ehdaa": [i % 4 == 0 for i in range(rows)],
            "home_language": [("fr", "en", "other")[i % 3] for i in range(rows)],
            "absence_rate": [round(0.01 * (i % 30), 2) for i in range(rows)],
            "grade_french": [50.0 + (i % 50) for i in range(rows)],
            "grade_math": [40.0 + (i % 60) for i in range(rows)],
            "failed_courses": [i % 4 for i in range(rows)],
            "sex": [("F", "M")[i % 2] for i in range(rows)],
            "indigenous": [i % 10 == 0 for i in range(rows)],
        }
    )


def write_csv(path: Path, frame: pd.DataFrame, sep: str = ",", encoding: str = "utf-8") -> Path:
    frame.to_csv(path, index=False, sep=sep, encoding=encoding)
    return path


def write_text(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def harmonised_csv(tmp_path: Path) -> Path:
    return write_csv(tmp_path / "extract.csv", harmonised_frame(40))


def real_file(name: str) -> Path:
    path = REAL_DATA / name
    if not path.is_file():
        pytest.skip(f"public data set {path} not available (expected in ../shared/data)")
    return path


def said_lines(stderr: str) -> list[str]:
    """The lines of ``stderr`` that are not progress: a command's waits (``…``-ended
    lines, said off a terminal once a wait lasts; common.i18n.waits) are not its error."""
    return [line for line in stderr.strip().splitlines() if not line.endswith("…")]
