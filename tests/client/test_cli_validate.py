"""``perseverance-client validate``: exit codes, the one-sentence error, the report, in
French unless ``--lang en`` or the locale says English."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from client.cli import app
from tests.client.conftest import harmonised_frame, write_csv, write_text

runner = CliRunner()
# No locale variable saying a language: the commands speak French.
NO_LOCALE = {"LC_ALL": "", "LC_MESSAGES": "", "LANG": "C.UTF-8"}


def test_a_usable_extract_exits_0_with_its_report(harmonised_csv: Path) -> None:
    result = runner.invoke(app, ["validate", "--lang", "en", "--data", str(harmonised_csv)])

    assert result.exit_code == 0, result.output
    assert "read                                40" in result.stdout
    assert "usable (valid, consent, label)      40" in result.stdout
    assert "label rate (left without diploma)   35.0%" in result.stdout
    assert "absent and encoded as missing" in result.stdout
    assert result.stderr == ""


def test_unusable_input_exits_2_with_one_sentence_first(tmp_path: Path) -> None:
    result = runner.invoke(app, ["validate", "--data", str(tmp_path / "absent.csv")],
                           env=NO_LOCALE)

    assert result.exit_code == 2
    first = result.stderr.strip().splitlines()[0]
    assert first == (f"erreur : Le fichier de données {tmp_path / 'absent.csv'} n'existe pas; "
                     "vérifiez le chemin indiqué.")
    assert "Traceback" not in result.output
    assert result.stdout == ""


def test_the_report_is_french_unless_the_option_or_the_locale_says_english(
    harmonised_csv: Path,
) -> None:
    args = ["validate", "--data", str(harmonised_csv)]

    french = runner.invoke(app, args, env=NO_LOCALE)
    english = runner.invoke(app, [*args, "--lang", "en"], env={"LANG": "fr_CA.UTF-8"})
    by_locale = runner.invoke(app, args, env={"LC_ALL": "", "LC_MESSAGES": "",
                                              "LANG": "en_CA.UTF-8"})
    told_french = runner.invoke(app, [*args, "--lang", "fr"], env={"LANG": "en_CA.UTF-8"})

    assert french.exit_code == english.exit_code == by_locale.exit_code == 0
    assert "Rapport de qualité des données" in french.stdout
    assert "Utilisable : 40 lignes valides" in french.stdout
    assert "taux de l'issue (sortie sans diplôme)" in french.stdout
    assert "35,0\u00a0%" in french.stdout
    assert "Data-quality report" not in french.stdout
    assert "Usable: 40 valid rows" in english.stdout and "Utilisable" not in english.stdout
    assert by_locale.stdout == english.stdout
    assert told_french.stdout == french.stdout


def test_an_error_sentence_follows_the_language(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.csv"
    garbage.write_bytes(bytes(range(256)) * 4)

    french = runner.invoke(app, ["validate", "--data", str(garbage)], env=NO_LOCALE)
    english = runner.invoke(app, ["validate", "--data", str(garbage), "--lang", "en"])

    assert french.exit_code == english.exit_code == 2
    assert french.stderr.startswith(f"erreur : Le fichier {garbage} n'est pas un fichier CSV "
                                    "texte")
    assert english.stderr.startswith(f"error: The file {garbage} is not a text CSV file")


def test_too_many_invalid_rows_exit_2_and_list_the_rows(tmp_path: Path) -> None:
    frame = harmonised_frame(10).astype(object)
    frame.loc[[2, 5], "grade_math"] = "n/d"
    data = write_csv(tmp_path / "x.csv", frame)

    result = runner.invoke(app, ["validate", "--lang", "en", "--data", str(data)])

    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    assert lines[0].startswith("error: 2 of 10 rows of")
    assert "more than the 5.0% the site policy allows" in lines[0]
    assert [line for line in lines if "not a number" in line] == [
        "  line 4 (student s0002): \u201cgrade_math\u201d = \u201cn/d\u201d: not a number",
        "  line 7 (student s0005): \u201cgrade_math\u201d = \u201cn/d\u201d: not a number",
    ]


def test_the_policy_threshold_lets_the_same_file_through(tmp_path: Path) -> None:
    frame = harmonised_frame(10).astype(object)
    frame.loc[[2, 5], "grade_math"] = "n/d"
    data = write_csv(tmp_path / "x.csv", frame)
    policy = write_text(tmp_path / "p.toml", "max_invalid_fraction = 0.2\n")

    result = runner.invoke(app, ["validate", "--lang", "en",
                                 "-d", str(data), "--policy", str(policy)])

    assert result.exit_code == 0, result.output
    assert "excluded: invalid values            2" in result.stdout


def test_mapping_and_policy_errors_exit_2(harmonised_csv: Path, tmp_path: Path) -> None:
    bad_mapping = write_text(tmp_path / "m.toml", "[columns]\nnope = 'x'\n")
    bad_policy = write_text(tmp_path / "p.toml", "min_records = 'many'\n")

    for option, path in (("--mapping", bad_mapping), ("--policy", bad_policy)):
        result = runner.invoke(app, ["validate", "--lang", "en",
                                     "--data", str(harmonised_csv), option,
                                     str(path)])
        assert result.exit_code == 2
        first = result.stderr.splitlines()[0]
        assert first.startswith("error: The ") and first.endswith(" again.")


def test_usage_errors_exit_2_and_help_documents_exit_codes() -> None:
    assert runner.invoke(app, ["validate"]).exit_code == 2
    help_text = runner.invoke(app, ["validate", "--lang", "en", "--help"]).stdout
    aide = runner.invoke(app, ["validate", "--help"], env=NO_LOCALE).stdout
    assert "Exit codes: 0 the extract is usable; 2" in " ".join(help_text.split())
    assert "Codes de sortie : 0 l'extraction est utilisable; 2" in " ".join(aide.split())


def test_cell_values_are_printed_as_they_are(tmp_path: Path) -> None:
    frame = harmonised_frame(40).astype(object)
    frame.loc[0, "home_language"] = "[bold]fr[/bold]"
    data = write_csv(tmp_path / "x.csv", frame)

    result = runner.invoke(app, ["validate", "--data", str(data)])

    assert result.exit_code == 0
    assert "[bold]fr[/bold]" in result.stdout


def test_the_installed_console_script_runs(harmonised_csv: Path, tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "perseverance-client"
    ok = subprocess.run(
        [str(script), "validate", "--data", str(harmonised_csv)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, **NO_LOCALE},
    )
    garbage = tmp_path / "garbage.csv"
    garbage.write_bytes(bytes(range(256)) * 4)
    bad = subprocess.run(
        [str(script), "validate", "--lang", "en", "--data", str(garbage)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert ok.returncode == 0, ok.stderr
    assert "Utilisable : 40 lignes valides" in ok.stdout
    assert bad.returncode == 2
    assert bad.stderr.startswith(f"error: The file {garbage} is not a text CSV file")
    assert "Traceback" not in bad.stderr
