"""``perseverance-client``'s language: its error sentences and its help in French unless
``--lang en`` or the locale says English (``common.i18n.cli``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from client.cli import app

runner = CliRunner()
# No locale variable saying a language, and a terminal wide enough not to wrap the help.
NO_LOCALE = {"LC_ALL": "", "LC_MESSAGES": "", "LANG": "C.UTF-8", "COLUMNS": "200"}


def test_an_error_sentence_is_french_by_default_and_english_when_asked(tmp_path: Path) -> None:
    absent = tmp_path / "absent.csv"
    args = ["validate", "--data", str(absent)]

    french = runner.invoke(app, args, env=NO_LOCALE)
    english = runner.invoke(app, [*args, "--lang", "en"], env=NO_LOCALE)

    assert french.exit_code == english.exit_code == 2
    assert french.stderr.splitlines()[0] == (
        f"erreur : Le fichier de données {absent} n'existe pas; vérifiez le chemin indiqué.")
    assert english.stderr.splitlines()[0] == (
        f"error: The data file {absent} does not exist; check the path given.")


def test_the_help_is_french_by_default_and_english_with_lang_or_the_locale() -> None:
    french = runner.invoke(app, ["validate", "--help"], env=NO_LOCALE)
    english = runner.invoke(app, ["validate", "--lang", "en", "--help"], env=NO_LOCALE)
    by_locale = runner.invoke(app, ["--help"], env={**NO_LOCALE, "LANG": "en_CA.UTF-8"})
    listing = runner.invoke(app, ["--help"], env=NO_LOCALE)

    assert french.exit_code == english.exit_code == by_locale.exit_code == 0
    assert "Appliquer la correspondance à l'extraction d'un centre" in french.stdout
    assert "Afficher ce message et quitter." in french.stdout
    assert "Map and validate a centre's extract" not in french.stdout
    assert "Map and validate a centre's extract" in english.stdout
    assert "Show this message and exit." in english.stdout
    assert "Commandes" in listing.stdout and "Calculer les scores des élèves" in listing.stdout
    assert "Commands" in by_locale.stdout and "Score a centre's students" in by_locale.stdout


def test_lang_is_taken_before_the_command_as_the_other_commands_take_it(tmp_path: Path) -> None:
    absent = tmp_path / "absent.csv"

    before = runner.invoke(app, ["--lang", "en", "validate", "--data", str(absent)],
                           env=NO_LOCALE)

    assert before.exit_code == 2
    assert before.stderr.splitlines()[0] == (
        f"error: The data file {absent} does not exist; check the path given.")


def test_the_clientapp_runtimes_help_and_errors_are_french_by_default(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    from client.federation.runtime import main
    from common.i18n import cli as cli_language

    monkeypatch.setattr(cli_language._Invocation, "lang", None)
    monkeypatch.setenv("COLUMNS", "200")
    absent = ["--runtime-api-address", "127.0.0.1:1", "--state", str(tmp_path / "absent")]
    shown = {}
    for name, args in (("fr", ["--help"]), ("en", ["--lang", "en", "--help"]),
                       ("error", absent)):
        with pytest.raises(SystemExit) as stop:
            main(args)
        shown[name] = (stop.value.code, capsys.readouterr())

    assert shown["fr"][0] == shown["en"][0] == 0
    assert "Utilisation : perseverance-clientapp" in shown["fr"][1].out
    assert "Exécuter les ClientApps du SuperNode du centre" in shown["fr"][1].out
    assert "Afficher ce message et quitter." in shown["fr"][1].out
    assert "Run the ClientApps of the centre's SuperNode" in shown["en"][1].out
    assert shown["error"][0] == 2
    assert shown["error"][1].err.startswith("erreur : le dossier d'état ")
