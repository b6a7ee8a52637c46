"""The local support report: languages, wording, and student data kept in --out only."""

from __future__ import annotations

import html
import os
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from client.cli import app
from client.scoring.support_report import CSV_NAME, HTML_NAME, XLSX_NAME
from client.scoring.support_wording import FORBIDDEN_WORDS, describe_factor, describe_value
from common.schema import COLUMN_BY_NAME, PREDICTORS, Column, Kind, Role, Unit, Words
from tests.client.conftest import harmonised_frame, write_csv
from tests.client.model_files import random_model, save_checkpoint

runner = CliRunner()


@pytest.fixture
def inputs(tmp_path: Path) -> tuple[Path, Path]:
    model = save_checkpoint(tmp_path / "model.pt", random_model())
    data = write_csv(tmp_path / "extract.csv", harmonised_frame(30))
    return model, data


def _score(model: Path, data: Path, out: Path, *extra: str) -> str:
    result = runner.invoke(app, ["score", "--model", str(model), "--data", str(data),
                                 "--out", str(out), *extra])
    assert result.exit_code == 0, result.output
    return result.stdout


def test_the_report_is_in_french_by_default(inputs: tuple[Path, Path], tmp_path: Path) -> None:
    _score(*inputs, tmp_path / "out")

    page = (tmp_path / "out" / HTML_NAME).read_text(encoding="utf-8")
    assert '<html lang="fr">' in page
    text = html.unescape(page)  # what the reader sees: the apostrophe is escaped as &#39;
    assert "Priorités de soutien : rapport local" in text
    assert "Points d'appui (facteurs de protection)" in text


def test_the_report_is_in_english_with_lang_en(inputs: tuple[Path, Path], tmp_path: Path) -> None:
    _score(*inputs, tmp_path / "out", "--lang", "en")

    page = (tmp_path / "out" / HTML_NAME).read_text(encoding="utf-8")
    assert '<html lang="en">' in page
    assert "Support priorities: local report" in page
    assert "Priorité" not in page


@pytest.mark.parametrize("lang", ["fr", "en"])
def test_no_forbidden_word_appears_in_the_outputs(
    inputs: tuple[Path, Path], tmp_path: Path, lang: str
) -> None:
    _score(*inputs, tmp_path / "out", "--lang", lang)

    for name in (HTML_NAME, CSV_NAME):
        text = html.unescape((tmp_path / "out" / name).read_text(encoding="utf-8")).lower()
        assert [word for word in FORBIDDEN_WORDS if word in text] == []


def test_student_data_is_written_into_the_output_folder_only(
    inputs: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    before = {p for p in tmp_path.rglob("*")}

    stdout = _score(*inputs, tmp_path / "out")

    written = {p for p in tmp_path.rglob("*")} - before
    assert written == {tmp_path / "out", tmp_path / "out" / CSV_NAME, tmp_path / "out" / HTML_NAME,
                       tmp_path / "out" / XLSX_NAME}
    assert "s0001" not in stdout  # pseudonyms only in the files
    assert all(os.stat(p).st_mode & 0o077 == 0 for p in written if p.is_file())


def test_the_page_loads_nothing_from_anywhere(inputs: tuple[Path, Path], tmp_path: Path) -> None:
    _score(*inputs, tmp_path / "out")

    page = (tmp_path / "out" / HTML_NAME).read_text(encoding="utf-8")
    assert "http://" not in page and "https://" not in page
    assert "<script" not in page and "src=" not in page and "<link" not in page


def test_every_student_gets_one_row_highest_probability_first(
    inputs: tuple[Path, Path], tmp_path: Path
) -> None:
    _score(*inputs, tmp_path / "out")

    table = pd.read_csv(tmp_path / "out" / CSV_NAME, sep=";", decimal=",", encoding="utf-8-sig")
    assert sorted(table["student_id"]) == [f"s{i:04d}" for i in range(30)]
    assert table["probability"].is_monotonic_decreasing
    assert set(table["support_priority"]) <= {"high", "moderate", "low"}
    assert {"factors", "protective_factors"} <= set(table.columns)


def test_no_explain_leaves_the_factors_out(inputs: tuple[Path, Path], tmp_path: Path) -> None:
    stdout = _score(*inputs, tmp_path / "out", "--no-explain")

    table = pd.read_csv(tmp_path / "out" / CSV_NAME, sep=";", decimal=",", encoding="utf-8-sig")
    assert "factors" not in table.columns
    assert "Integrated Gradients" not in stdout
    assert "--no-explain" in (tmp_path / "out" / HTML_NAME).read_text(encoding="utf-8")


def test_the_french_csv_opens_in_a_french_spreadsheet(
    inputs: tuple[Path, Path], tmp_path: Path
) -> None:
    _score(*inputs, tmp_path / "out", "--no-explain")

    raw = (tmp_path / "out" / CSV_NAME).read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # UTF-8 byte-order mark: Excel reads UTF-8
    header, first = raw[3:].decode("utf-8").split("\r\n")[:2]
    assert header.split(";")[:2] == ["student_id", "school_id"] or ";" in header
    cells = dict(zip(header.split(";"), first.split(";"), strict=True))
    assert "," in cells["probability"] and "." not in cells["probability"]


def test_the_machine_csv_is_rfc_4180_with_decimal_points(
    inputs: tuple[Path, Path], tmp_path: Path
) -> None:
    _score(*inputs, tmp_path / "out", "--no-explain", "--machine-csv")

    raw = (tmp_path / "out" / CSV_NAME).read_bytes()
    assert not raw.startswith(b"\xef\xbb\xbf")
    table = pd.read_csv(tmp_path / "out" / CSV_NAME)
    assert table["probability"].between(0, 1).all()


@pytest.mark.parametrize(
    ("predictor", "value", "lang", "expected"),
    [
        ("absence_rate", 0.18, "fr", "Absences : 18 % des jours d'école"),
        ("absence_rate", 0.18, "en", "Absences: 18 % of school days"),
        ("grade_trend", -6.0, "fr", "Évolution de la moyenne : -6,0 points par année"),
        ("grade_math", 48.0, "en", "Mathematics grade: 48/100"),
        ("home_language", "other", "fr", "Langue parlée à la maison : autre langue"),
        ("extracurricular", True, "en", "Extracurricular activity: yes"),
        ("grade_level", 3, "fr", "Niveau : secondaire 3"),
        ("age_grade_lag", 1, "fr", "Retard scolaire : 1 an"),
        ("age_grade_lag", 2, "fr", "Retard scolaire : 2 ans"),
        ("age_grade_lag", 0, "en", "Years behind the expected age: 0 years"),
        ("age_grade_lag", 1, "en", "Years behind the expected age: 1 year"),
        ("sfr_decile", 8, "en", "School low-income setting (SFR): decile 8 of 10"),
        ("grade_trend", 3.25, "en", "Change of the average: +3.2 points a year"),
        ("suspensions", 2, "fr", "Suspensions cette année : 2"),
    ],
)
def test_factors_are_worded_with_their_unit(
    predictor: str, value: object, lang: str, expected: str
) -> None:
    assert describe_factor(predictor, value, lang) == expected


@pytest.mark.parametrize("predictor", [p for p in PREDICTORS
                                       if COLUMN_BY_NAME[p].kind is Kind.BOOLEAN])
def test_a_yes_no_predictor_reads_oui_non_and_yes_no(predictor: str) -> None:
    said = [describe_value(predictor, value, lang)
            for lang in ("fr", "en") for value in (True, False, 1, 0, 1.0)]

    assert said == ["oui", "non", "oui", "non", "oui", "yes", "no", "yes", "no", "yes"]


def test_a_new_predictor_is_worded_from_its_schema_column_alone(
    monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(COLUMN_BY_NAME, "tutoring", Column(
        "tutoring", Kind.BOOLEAN, Role.PREDICTOR, "tutoring this year",
        label=Words("Tutorat", "Tutoring"), reference=False))
    monkeypatch.setitem(COLUMN_BY_NAME, "homework_done", Column(
        "homework_done", Kind.NUMERIC, Role.PREDICTOR, "share of homework done", low=0, high=1,
        label=Words("Devoirs faits", "Homework done"),
        unit=Unit("{n} % des devoirs", "{n} % of homework", percent=True), reference=0.9))

    assert describe_factor("tutoring", 1, "fr") == "Tutorat : oui"
    assert describe_factor("tutoring", 0.0, "en") == "Tutoring: no"
    assert describe_factor("homework_done", 0.62, "fr") == "Devoirs faits : 62 % des devoirs"


def test_many_low_priority_students_are_left_to_the_csv(
    inputs: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("client.scoring.support_report.LOW_LISTED_MAX", 0)

    _score(*inputs, tmp_path / "out", "--policy", str(_policy(tmp_path, high=0.98,
                                                              moderate=0.97)))

    page = (tmp_path / "out" / HTML_NAME).read_text(encoding="utf-8")
    assert f"ils figurent dans {CSV_NAME}" in page
    assert "s0001" not in page
    assert "s0001" in (tmp_path / "out" / CSV_NAME).read_text(encoding="utf-8")


def _policy(tmp_path: Path, high: float, moderate: float) -> Path:
    path = tmp_path / "policy.toml"
    path.write_text(f"[support]\nhigh = {high}\nmoderate = {moderate}\n", encoding="utf-8")
    return path


def test_a_value_holding_markup_is_escaped_in_the_page(tmp_path: Path) -> None:
    model = save_checkpoint(tmp_path / "model.pt", random_model())
    frame = harmonised_frame(30)
    frame.loc[0, "student_id"] = "<script>alert(1)</script>"
    frame.loc[1, "school_id"] = '"><img src=x onerror=alert(2)>'
    data = write_csv(tmp_path / "extract.csv", frame)

    _score(model, data, tmp_path / "out")

    page = (tmp_path / "out" / HTML_NAME).read_text(encoding="utf-8")
    assert "<script" not in page and "<img" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&#34;&gt;&lt;img src=x onerror=alert(2)&gt;" in page
