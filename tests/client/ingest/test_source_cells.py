"""Every invalid cell traced back to the file's own cells (client.ingest.source_cells)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from client.commands.left_out import problem_line
from client.ingest import ingest_file
from client.site_policy import SitePolicy
from tests.client.conftest import harmonised_frame, write_csv, write_text

LENIENT = SitePolicy(max_invalid_fraction=1.0)


def test_an_expression_names_every_column_it_reads(tmp_path: Path) -> None:
    frame = pd.DataFrame({"id": ["a", "b"], "absents": ["10", "90"], "jours": ["180", "60"]})
    data = write_csv(tmp_path / "x.csv", frame)
    mapping = write_text(tmp_path / "m.toml", """\
[columns]
student_id = "id"
school_id = { value = "e" }
school_year = { value = "2023-2024" }
consent = { value = true }
absence_rate = { expr = "absents / jours" }
""")

    problem, = ingest_file(data, mapping, LENIENT).report.problems

    assert (problem.row, problem.harmonised, problem.student) == (2, "absence_rate", "b")
    assert problem.cells == (("absents", "90"), ("jours", "60"))


def test_a_constant_has_no_source_cell(tmp_path: Path) -> None:
    data = write_csv(tmp_path / "x.csv", harmonised_frame(3).drop(columns=["grade_level"]))
    mapping = write_text(tmp_path / "m.toml", "[columns.grade_level]\nvalue = 9\n")

    report = ingest_file(data, mapping, LENIENT).report

    assert [(p.row, p.cells) for p in report.problems] == [(1, ()), (2, ()), (3, ())]
    line = problem_line(report.problems[0], report, "fr")
    assert line == ("ligne 2 (fiche s0000) : la constante de la correspondance donne "
                    "grade_level = 9 : hors de la plage 1 à 5")


def test_an_empty_required_cell_is_said_empty_once(tmp_path: Path) -> None:
    frame = harmonised_frame(4).astype(object)
    frame.loc[1, "consent"] = "NA"
    data = write_csv(tmp_path / "x.csv", frame)

    report = ingest_file(data, None, LENIENT).report

    problem, = report.problems
    assert problem.cells == (("consent", None),)
    assert problem_line(problem, report, "en") == (
        "line 3 (student s0001): \u201cconsent\u201d is empty: missing, but required")


def test_a_duplicated_id_quotes_it_on_every_row(tmp_path: Path) -> None:
    frame = harmonised_frame(5).astype(object)
    frame.loc[3, "student_id"] = "s0001"
    data = write_csv(tmp_path / "x.csv", frame)

    report = ingest_file(data, None, LENIENT).report

    assert [(p.row, p.cells) for p in report.problems] == [
        (2, (("student_id", "s0001"),)), (4, (("student_id", "s0001"),))]


def test_a_parquet_file_counts_records_not_lines(tmp_path: Path) -> None:
    frame = harmonised_frame(4)
    frame["grade_math"] = [50.0, 140.0, 60.0, 70.0]
    data = tmp_path / "x.parquet"
    frame.to_parquet(data)

    report = ingest_file(data, None, LENIENT).report

    problem, = report.problems
    assert problem.cells == (("grade_math", "140"),)
    assert problem_line(problem, report, "fr") == (
        "enregistrement 2 (fiche s0001) : «\u00a0grade_math\u00a0» = «\u00a0140\u00a0» : "
        "hors de la plage 0 à 100")
