"""``validate`` and ``score`` say who was left out and why, quoting the file's own cells
(the row's line, its student id, the source column and the text as written), in French
by default, within 80 columns, a long list cut with its whole in rows-left-out.csv."""

from __future__ import annotations

import html
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from client.cli import app
from client.commands.left_out import LEFT_OUT_NAME
from tests.client.conftest import said_lines, write_text
from tests.client.model_files import random_model, save_checkpoint

runner = CliRunner()
NO_LOCALE = {"LC_ALL": "", "LC_MESSAGES": "", "LANG": "C.UTF-8", "COLUMNS": "80"}
MAPPING = """\
name = "sis-test"
[columns]
student_id = "Fiche"
school_id = "École"
school_year = { value = "2023-2024" }
consent = { from = "Consentement", recode = { oui = true, non = false } }
absence_rate = { expr = "`Jours absents` / 180" }
grade_french = { from = "Note français", scale = 5 }
left_without_diploma = { expr = "where(Statut == 'en cours', missing, Statut == 'décrochage')" }
"""
HEADER = "Fiche;École;Consentement;Jours absents;Note français;Statut"
#: Record number (from 1) -> the bad row: four kinds of problem.
BAD = {5: "105;A;peut-être;3;12;diplômé",     # consent: not a yes/no value (once)
       8: "108;A;oui;deux;12;diplômé",         # an expression's cell: not a number
       12: "112;A;oui;-4;15;diplômé",          # -4 / 180 below absence_rate's 0
       20: "120;A;oui;2;25;diplômé"}           # 25 * 5 above grade_french's 100
GU = "\u00a0"  # the non-breaking space inside French quotes


def extract(folder: Path, rows: int = 150, bad: dict[int, str] | None = None) -> Path:
    """``rows`` valid records of a centre's own columns, the records of ``bad`` replaced."""
    lines = [HEADER] + [f"{100 + i};A;oui;{i % 10};{10 + i % 10};"
                        f"{'décrochage' if i % 4 == 0 else 'diplômé'}" for i in range(1, rows + 1)]
    for record, line in (BAD if bad is None else bad).items():
        lines[record] = line
    path = folder / "extract.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def quoted(text: str) -> str:
    return f"«{GU}{text}{GU}»"


@pytest.fixture
def mapping(tmp_path: Path) -> Path:
    return write_text(tmp_path / "mapping.toml", MAPPING)


def test_validate_quotes_the_source_cells_of_each_row_left_out(
    tmp_path: Path, mapping: Path
) -> None:
    result = runner.invoke(app, ["validate", "--data", str(extract(tmp_path)),
                                 "--mapping", str(mapping)], env=NO_LOCALE)

    assert result.exit_code == 0, result.output
    out = result.stdout
    section = out[out.index("Valeurs invalides"):].splitlines()
    text = " ".join(line.strip() for line in section)  # wrapped lines joined
    assert text.startswith("Valeurs invalides : 4 lignes sur 150 exclues (lignes numérotées "
                           "comme dans le fichier, l'en-tête étant la ligne 1)")
    assert (f"ligne 6 (fiche 105) : {quoted('Consentement')} = {quoted('peut-être')} : "
            "pas une valeur oui/non") in text
    assert (f"ligne 9 (fiche 108) : {quoted('Jours absents')} = {quoted('deux')} : "
            "pas un nombre") in text
    assert (f"ligne 13 (fiche 112) : {quoted('Jours absents')} = {quoted('-4')} donne "
            "absence_rate = -0,02222 : hors de la plage 0 à 1") in text
    assert (f"ligne 21 (fiche 120) : {quoted('Note français')} = {quoted('25')} donne "
            "grade_french = 125 : hors de la plage 0 à 100") in text
    assert text.count("(fiche 105)") == 1  # the bad consent cell once, not also "missing"
    assert "manquante, mais obligatoire" not in text
    assert "-0.0222" not in out and "125.0" not in out  # no harmonised value unformatted
    assert max(len(line) for line in section) <= 80


def test_score_says_how_many_students_were_left_out_and_why(
    tmp_path: Path, mapping: Path
) -> None:
    model = save_checkpoint(tmp_path / "model.pt", random_model())
    out = tmp_path / "soutien"

    result = runner.invoke(app, ["score", "--model", str(model),
                                 "--data", str(extract(tmp_path)), "--mapping", str(mapping),
                                 "--out", str(out), "--no-explain"], env=NO_LOCALE)

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if "laissés de côté" in line)
    listed = " ".join(line.strip() for line in lines[start:])
    assert listed.startswith("4 élèves sur 150 laissés de côté : leur ligne a une valeur "
                             "invalide, ils n'ont donc pas de priorité de soutien")
    assert f"ligne 13 (fiche 112) : {quoted('Jours absents')} = {quoted('-4')} donne" in listed
    assert all(len(line) <= 80 for line in lines if str(tmp_path) not in line)
    left_out = pd.read_csv(out / LEFT_OUT_NAME, sep=";", encoding="utf-8-sig", dtype=str)
    assert left_out.columns.tolist() == [
        "ligne", "fiche", "colonne du fichier", "valeur dans le fichier",
        "colonne harmonisée", "valeur harmonisée", "motif"]
    assert left_out["ligne"].tolist() == ["6", "9", "13", "21"]
    # The file's own text: "-4" is a plain number, which the CSV writer leaves as it is.
    assert left_out.loc[2].tolist() == ["13", "112", "Jours absents", "-4", "absence_rate",
                                        "-0,02222", "hors de la plage 0 à 1"]
    scored = pd.read_csv(out / "support-priorities.csv", sep=";", encoding="utf-8-sig")
    assert len(scored) == 146
    page = html.unescape((out / "support-report.html").read_text(encoding="utf-8"))
    assert ("4 élèves sur les 150 de l'extraction n'ont pas de priorité : leur ligne a une "
            "valeur invalide. Le service informatique du centre en trouve la liste dans "
            "rows-left-out.csv") in page


def test_a_long_list_is_cut_and_written_whole_beside_the_outputs(
    tmp_path: Path, mapping: Path
) -> None:
    bad = {r: f"{100 + r};A;oui;-{r};12;diplômé" for r in range(2, 200, 4)}  # 50 rows
    policy = write_text(tmp_path / "policy.toml", "max_invalid_fraction = 0.5\n")
    model = save_checkpoint(tmp_path / "model.pt", random_model())
    out = tmp_path / "soutien"

    result = runner.invoke(app, ["score", "--model", str(model), "--no-explain",
                                 "--data", str(extract(tmp_path, 200, bad)),
                                 "--mapping", str(mapping), "--policy", str(policy),
                                 "--out", str(out)], env=NO_LOCALE)

    assert result.exit_code == 0, result.output
    text = " ".join(line.strip() for line in result.stdout.splitlines())
    assert "50 élèves sur 200 laissés de côté" in text
    assert text.count(f"{quoted('Jours absents')} = ") == 10
    assert (f"et 40 autres lignes : la liste complète est dans {out / LEFT_OUT_NAME}") in text
    left_out = pd.read_csv(out / LEFT_OUT_NAME, sep=";", encoding="utf-8-sig", dtype=str)
    assert len(left_out) == 50
    assert left_out["valeur dans le fichier"].tolist()[:2] == ["-2", "-6"]


def test_a_later_clean_extract_removes_the_earlier_list(tmp_path: Path, mapping: Path) -> None:
    model = save_checkpoint(tmp_path / "model.pt", random_model())
    out = tmp_path / "soutien"
    args = ["score", "--model", str(model), "--mapping", str(mapping), "--out", str(out),
            "--no-explain", "--data"]

    runner.invoke(app, [*args, str(extract(tmp_path))], env=NO_LOCALE)
    assert (out / LEFT_OUT_NAME).exists()
    clean = runner.invoke(app, [*args, str(extract(tmp_path, bad={}))], env=NO_LOCALE)

    assert clean.exit_code == 0, clean.output
    assert not (out / LEFT_OUT_NAME).exists()
    assert "laissé" not in clean.stdout
    assert "extraction n'" not in (out / "support-report.html").read_text(encoding="utf-8")


def test_past_the_policys_share_score_lists_the_rows_and_writes_nothing(
    tmp_path: Path, mapping: Path
) -> None:
    model = save_checkpoint(tmp_path / "model.pt", random_model())
    out = tmp_path / "soutien"

    result = runner.invoke(app, ["score", "--model", str(model), "--no-explain",
                                 "--data", str(extract(tmp_path, rows=40)),
                                 "--mapping", str(mapping), "--out", str(out)], env=NO_LOCALE)

    assert result.exit_code == 2
    first, *rest = said_lines(result.stderr)
    assert first.startswith("erreur : 4 lignes sur 40 de ")
    assert f"  ligne 6 (fiche 105) : {quoted('Consentement')} = {quoted('peut-être')} :" in rest[0]
    assert not out.exists()


def test_english_with_lang_en(tmp_path: Path, mapping: Path) -> None:
    result = runner.invoke(app, ["validate", "--lang", "en", "--data", str(extract(tmp_path)),
                                 "--mapping", str(mapping)], env=NO_LOCALE)

    text = " ".join(line.strip() for line in result.stdout.splitlines())
    assert ("line 13 (student 112): \u201cJours absents\u201d = \u201c-4\u201d gives "
            "absence_rate = -0.02222: outside 0 to 1") in text
