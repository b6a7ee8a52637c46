"""Inputs built to hurt: pathological mappings and policies end in exit 2 with one
sentence (never a traceback) through ``validate``, ``score`` and the ClientApp's loading
path; teacher and class columns in any spelling are refused in mappings."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from client.cli import app
from client.ingest.centre_data import DataError, load_centre
from tests.client.conftest import harmonised_frame, said_lines, write_csv, write_text
from tests.client.model_files import random_model, save_checkpoint

runner = CliRunner()

HOSTILE_MAPPINGS = {
    "980 nested unary minus": '[columns.grade_math]\nexpr = "' + "-" * 980 + '1"\n',
    "980 nested unary minus on a column": '[columns.grade_math]\nexpr = "'
    + "-" * 980
    + 'grade_math"\n',
    "900-digit integer in an expression": '[columns.grade_math]\nexpr = "' + "9" * 900 + '"\n',
    "900-digit integer in TOML": '[columns.grade_math]\nfrom = "grade_math"\nscale = '
    + "9" * 900
    + "\n",
    "5,000-digit integer in TOML": "[columns.grade_math]\nvalue = " + "9" * 5000 + "\n",
    "TOML array nested 5,000 deep": "x = " + "[" * 5000 + "]" * 5000 + "\n",
    "TOML inline tables nested 2,000 deep": "x = " + "{a = " * 2000 + "1" + "}" * 2000 + "\n",
    "huge exponent literal": '[columns.grade_math]\nexpr = "grade_math * 1e999999"\n',
    "huge float scale": '[columns.grade_math]\nfrom = "grade_math"\nscale = 1e999\n',
    "power operator": '[columns.grade_math]\nexpr = "9 ** 9 ** 9 ** 9"\n',
    "very long expression": '[columns.grade_math]\nexpr = "' + "+".join(["grade_math"] * 300)
    + '"\n',
    "very deep sum": '[columns.grade_math]\nexpr = "' + "+".join(["1"] * 400) + '"\n',
    "parentheses nested 500 deep": '[columns.grade_math]\nexpr = "' + "(" * 300 + "1"
    + ")" * 300 + '"\n',
    "file of 2 MB": "# " + "x" * 2_000_000 + "\n",
}
HOSTILE_POLICIES = {
    "900-digit min_records": "min_records = " + "9" * 900 + "\n",
    "5,000-digit min_records": "min_records = " + "9" * 5000 + "\n",
    "array nested 5,000 deep": "refused_predictors = " + "[" * 5000 + "]" * 5000 + "\n",
    "support table nested 2,000 deep": "[support]\nhigh = " + "[" * 2000 + "]" * 2000 + "\n",
    "infinite epsilon cap": "epsilon_cap = inf\n",
}


def _one_sentence(stderr: str) -> str:
    lines = said_lines(stderr)
    assert len(lines) == 1, stderr[:2000]
    assert "Traceback" not in stderr
    assert lines[0].endswith(".")
    return lines[0]


@pytest.fixture
def extract(tmp_path: Path) -> Path:
    return write_csv(tmp_path / "x.csv", harmonised_frame(60))


@pytest.mark.parametrize("name", HOSTILE_MAPPINGS)
def test_hostile_mappings_exit_2_in_one_sentence(tmp_path: Path, extract: Path, name: str) -> None:
    mapping = write_text(tmp_path / "m.toml", HOSTILE_MAPPINGS[name])

    result = runner.invoke(app, ["validate", "--lang", "en",
                                 "--data", str(extract), "--mapping", str(mapping)])

    assert result.exit_code == 2, result.output[-2000:]
    assert str(mapping) in _one_sentence(result.stderr)
    with pytest.raises(DataError):  # the ClientApp's loading path: an error reply, no crash
        load_centre(str(extract), str(mapping))


@pytest.mark.parametrize("name", HOSTILE_POLICIES)
def test_hostile_policies_exit_2_in_one_sentence(tmp_path: Path, extract: Path, name: str) -> None:
    policy = write_text(tmp_path / "p.toml", HOSTILE_POLICIES[name])
    model = save_checkpoint(tmp_path / "model.pt", random_model())

    checked = runner.invoke(app, ["validate", "--lang", "en",
                                  "--data", str(extract), "--policy", str(policy)])
    scored = runner.invoke(app, ["score", "--model", str(model), "--data", str(extract),
                                 "--policy", str(policy), "--out", str(tmp_path / "out")])

    for result in (checked, scored):
        assert result.exit_code == 2, result.output[-2000:]
        assert str(policy) in _one_sentence(result.stderr)
    assert not (tmp_path / "out").exists()
    with pytest.raises(DataError):
        load_centre(str(extract), None, str(policy))


def test_score_refuses_a_hostile_mapping_in_one_sentence(tmp_path: Path, extract: Path) -> None:
    mapping = write_text(tmp_path / "m.toml", HOSTILE_MAPPINGS["980 nested unary minus"])
    model = save_checkpoint(tmp_path / "model.pt", random_model())

    result = runner.invoke(app, ["score", "--lang", "en",
                                 "--model", str(model), "--data", str(extract),
                                 "--mapping", str(mapping), "--out", str(tmp_path / "out")])

    assert result.exit_code == 2
    assert "nests operations more than 100 deep" in _one_sentence(result.stderr)


def test_the_console_script_survives_the_nested_minus(tmp_path: Path, extract: Path) -> None:
    # A real process, with its real stack, not the test runner's.
    mapping = write_text(tmp_path / "m.toml", HOSTILE_MAPPINGS["980 nested unary minus"])
    script = Path(sys.executable).parent / "perseverance-client"

    done = subprocess.run([str(script), "validate", "--lang", "en",
                           "-d", str(extract), "-m", str(mapping)],
                          capture_output=True, text=True, timeout=120, check=False)

    assert done.returncode == 2
    assert _one_sentence(done.stderr).startswith(
        f"error: The mapping {mapping} cannot be used")


def test_ordinary_nesting_and_numbers_still_pass(tmp_path: Path, extract: Path) -> None:
    body = "where(grade_math > 50, where(grade_math > 80, 90, 60), -(-grade_math))"
    mapping = write_text(
        tmp_path / "m.toml",
        f'[columns.grade_math]\nexpr = "{body}"\n'
        '[columns.grade_french]\nfrom = "grade_french"\nscale = 1.0\noffset = -0.0\n'
        '[columns.absence_rate]\nexpr = "' + "+".join(["absence_rate/40"] * 40) + '"\n',
    )

    result = runner.invoke(app, ["validate", "--lang", "en",
                                 "--data", str(extract), "--mapping", str(mapping)])

    assert result.exit_code == 0, result.output[-2000:]


FRENCH_EXTRACT = (
    "No fiche;École;Année scolaire;Consentement;Enseignant titulaire;Groupe-repère;"
    "Note math\n"
    "A1;E1;2023-2024;oui;Mme Tremblay;101;72,5\n"
    "A2;E1;2023-2024;oui;M. Gagnon;102;48,0\n"
)
FRENCH_MAPPING = """
[source]
delimiter = ";"
encoding = "cp1252"
decimal = ","
[columns]
student_id = "No fiche"
school_id = "{school}"
school_year = "Année scolaire"
consent = {{ from = "Consentement", recode = {{ oui = true, non = false }} }}
grade_math = {{ expr = "{math}" }}
"""


@pytest.mark.parametrize(
    ("school", "math", "refused"),
    [
        ("Enseignant titulaire", "`Note math`", "Enseignant titulaire"),
        ("École", "where(`Groupe-repère` == 101, 1, 0) + `Note math`", "Groupe-repère"),
        ("École", "`Note math` + 0 * `Enseignant titulaire`", "Enseignant titulaire"),
    ],
)
def test_a_mapping_reading_a_teacher_or_class_column_exits_2(
    tmp_path: Path, school: str, math: str, refused: str
) -> None:
    data = tmp_path / "eleves.csv"
    data.write_bytes(FRENCH_EXTRACT.encode("cp1252"))
    mapping = tmp_path / "m.toml"
    mapping.write_text(FRENCH_MAPPING.format(school=school, math=math), encoding="utf-8")

    result = runner.invoke(app, ["validate", "--lang", "en",
                                 "--data", str(data), "--mapping", str(mapping)])

    assert result.exit_code == 2, result.output
    first = result.stderr.splitlines()[0]
    assert f"reads the teacher or class column '{refused}'" in first


def test_the_french_extract_without_the_teacher_columns_passes(tmp_path: Path) -> None:
    data = tmp_path / "eleves.csv"
    data.write_bytes(FRENCH_EXTRACT.encode("cp1252"))
    mapping = tmp_path / "m.toml"
    mapping.write_text(FRENCH_MAPPING.format(school="École", math="`Note math`"),
                       encoding="utf-8")
    policy = write_text(tmp_path / "p.toml", "min_records = 1\n")

    result = runner.invoke(app, ["validate", "--lang", "en", "-d", str(data), "-m", str(mapping),
                                 "-p", str(policy)])

    assert result.exit_code == 0, result.output
    assert "Enseignant titulaire" in result.stdout and "Groupe-repère" in result.stdout  # dropped


def test_a_teacher_column_as_centre_column_is_refused(tmp_path: Path) -> None:
    mapping = write_text(tmp_path / "m.toml", 'centre_column = "Prof. titulaire"\n')
    data = write_csv(tmp_path / "x.csv", harmonised_frame(10))

    result = runner.invoke(app, ["validate", "--lang", "en",
                                 "--data", str(data), "--mapping", str(mapping)])

    assert result.exit_code == 2
    assert "centre_column names the teacher or class column" in _one_sentence(result.stderr)
