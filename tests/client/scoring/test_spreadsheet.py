"""support-priorities.xlsx read back with openpyxl: headers in the command's language,
numbers as numbers, identifiers and hostile cells as text, the header row frozen."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pandas as pd
import pytest
from openpyxl import load_workbook
from typer.testing import CliRunner

from client.cli import app
from client.scoring.spreadsheet import MAX_WIDTH, MIN_WIDTH, write_support_xlsx
from client.scoring.support_report import XLSX_NAME
from tests.client.conftest import harmonised_frame, write_csv
from tests.client.model_files import random_model, save_checkpoint

runner = CliRunner()
NO_LOCALE = {"LC_ALL": "", "LC_MESSAGES": "", "LANG": "C.UTF-8"}
#: Identifiers a hostile or careless export could hold: each would run as a formula.
HOSTILE = ("=HYPERLINK(\"http://x.test\",\"clic\")", "+1+2", "-2+3", "@SUM(A1:A9)",
           "=cmd|' /C calc'!A0")
FRENCH_HEADERS = ["Élève (pseudonyme)", "École", "Année scolaire", "Priorité de soutien",
                  "Probabilité estimée", "Ce qui augmente la priorité de soutien",
                  "Points d'appui (facteurs de protection)"]


@pytest.fixture
def inputs(tmp_path: Path) -> tuple[Path, Path]:
    model = save_checkpoint(tmp_path / "model.pt", random_model())
    frame = harmonised_frame(30)
    frame.loc[: len(HOSTILE) - 1, "student_id"] = list(HOSTILE)
    frame.loc[len(HOSTILE), "student_id"] = "007"  # a leading zero stays
    return model, write_csv(tmp_path / "extract.csv", frame)


def _score(inputs: tuple[Path, Path], out: Path, *extra: str) -> Path:
    model, data = inputs
    result = runner.invoke(app, ["score", "--model", str(model), "--data", str(data),
                                 "--out", str(out), *extra], env=NO_LOCALE)
    assert result.exit_code == 0, result.output
    return out / XLSX_NAME


def test_french_headers_a_frozen_header_row_and_filters(
    inputs: tuple[Path, Path], tmp_path: Path
) -> None:
    sheet = load_workbook(_score(inputs, tmp_path / "out")).active

    assert [c.value for c in sheet[1]] == FRENCH_HEADERS
    assert all(c.font.bold for c in sheet[1])
    assert sheet.title == "Priorités de soutien"
    assert sheet.freeze_panes == "A2"
    assert sheet.auto_filter.ref == "A1:G31"
    assert sheet.max_row == 31  # every student, one row each


def test_the_probability_is_a_number_shown_as_a_french_percentage(
    inputs: tuple[Path, Path], tmp_path: Path
) -> None:
    sheet = load_workbook(_score(inputs, tmp_path / "out")).active

    cells = [row[4] for row in sheet.iter_rows(min_row=2)]
    assert all(c.data_type == "n" and isinstance(c.value, float) for c in cells)
    assert all(0.0 <= c.value <= 1.0 for c in cells)
    assert {c.number_format for c in cells} == {"0.0 %"}
    values = [c.value for c in cells]
    assert values == sorted(values, reverse=True)  # highest priority first, as the CSV


def test_hostile_identifiers_stay_text_exactly_as_written(
    inputs: tuple[Path, Path], tmp_path: Path
) -> None:
    path = _score(inputs, tmp_path / "out")
    sheet = load_workbook(path).active

    ids = {c.value: c for c in (row[0] for row in sheet.iter_rows(min_row=2))}
    for text in HOSTILE:
        assert ids[text].data_type == "s", text  # a string, not a formula
        assert ids[text].quotePrefix, text  # and text still once edited in Excel
    assert ids["007"].data_type == "s" and not ids["007"].quotePrefix
    with zipfile.ZipFile(path) as archive:
        xml = archive.read("xl/worksheets/sheet1.xml").decode("utf-8")
    assert "<f>" not in xml and "<f " not in xml  # no formula anywhere in the sheet


def test_widths_fit_the_content(inputs: tuple[Path, Path], tmp_path: Path) -> None:
    sheet = load_workbook(_score(inputs, tmp_path / "out")).active

    widths = {letter: sheet.column_dimensions[letter].width for letter in "ABCDEFG"}
    assert all(MIN_WIDTH <= w <= MAX_WIDTH for w in widths.values()), widths
    assert widths["A"] == max(len(t) for t in HOSTILE) + 2  # the longest id, a margin


def test_factors_are_one_per_line_in_a_wrapped_cell(tmp_path: Path) -> None:
    table = pd.DataFrame({
        "student_id": ["s1"], "probability": [0.5],
        "factors": ["Absences : 18 % des jours d'école | Retard scolaire : 2 ans | "
                    "Note de mathématiques : 48/100"],
        "protective_factors": [""]})

    sheet = load_workbook(write_support_xlsx(tmp_path / "x.xlsx", table)).active

    cell = sheet.cell(row=2, column=3)
    assert cell.value == ("Absences : 18 % des jours d'école\nRetard scolaire : 2 ans\n"
                          "Note de mathématiques : 48/100")
    assert cell.alignment.wrap_text
    longest = max(len(FRENCH_HEADERS[5]), len("Absences : 18 % des jours d'école"))
    assert sheet.column_dimensions["C"].width == longest + 2  # by line, not by cell
    assert sheet.cell(row=2, column=4).value is None  # no factor: an empty cell


def test_english_headers_with_lang_en_and_none_with_no_xlsx(
    inputs: tuple[Path, Path], tmp_path: Path
) -> None:
    english = load_workbook(_score(inputs, tmp_path / "en", "--lang", "en")).active
    _score(inputs, tmp_path / "none", "--no-xlsx")

    assert [c.value for c in english[1]][:2] == ["Student (pseudonym)", "School"]
    assert english.cell(row=2, column=5).number_format == "0.0%"
    assert not (tmp_path / "none" / XLSX_NAME).exists()
    assert (tmp_path / "none" / "support-priorities.csv").exists()
