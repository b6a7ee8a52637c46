"""``perseverance-server``'s own sentences: French unless ``--lang en`` or the locale says
English, from the one catalogue."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from common.errors import ExitCode
from server.cli import app

runner = CliRunner()
NO_LOCALE = {"LC_ALL": "", "LC_MESSAGES": "", "LANG": "C.UTF-8"}


def test_an_error_is_french_by_default_and_english_when_asked(tmp_path: Path) -> None:
    args = ["console", "--runs", str(tmp_path / "none")]

    french = runner.invoke(app, args, env=NO_LOCALE)
    english = runner.invoke(app, ["--lang", "en", *args], env=NO_LOCALE)
    by_locale = runner.invoke(app, args, env={**NO_LOCALE, "LANG": "en_CA.UTF-8"})

    assert french.exit_code == english.exit_code == by_locale.exit_code == 2
    assert " ".join(french.output.split()) == (
        f"erreur : --runs {tmp_path / 'none'} n'est pas un dossier.")
    assert " ".join(english.output.split()) == f"error: --runs {tmp_path / 'none'} is not a folder."
    assert by_locale.output == english.output


def test_what_the_pki_made_is_said_in_the_language(tmp_path: Path) -> None:
    french = runner.invoke(app, ["pki", "init", "--dir", str(tmp_path / "fr")], env=NO_LOCALE)
    english = runner.invoke(app, ["--lang", "en", "pki", "init", "--dir", str(tmp_path / "en")],
                            env=NO_LOCALE)

    assert french.exit_code == english.exit_code == 0, french.output
    assert french.output.startswith("Certificat de l'AC : ")
    assert "Certificat de l'AC des opérateurs : " in french.output
    assert english.output.startswith("CA certificate: ")
    assert "Operator CA certificate: " in english.output


WIDE = {**NO_LOCALE, "COLUMNS": "200"}


def test_a_library_error_is_french_by_default_and_english_when_asked(tmp_path: Path) -> None:
    args = ["pki", "add-centre", "../x", "--dir", str(tmp_path)]

    french = runner.invoke(app, args, env=NO_LOCALE)
    english = runner.invoke(app, ["--lang", "en", *args], env=NO_LOCALE)

    assert french.exit_code == english.exit_code == ExitCode.PKI == 9
    assert " ".join(french.output.split()).startswith(
        "erreur : Le nom de centre '../x' n'est pas valide : utilisez de 1 à 64 lettres")
    assert " ".join(english.output.split()).startswith(
        "error: Centre name '../x' is not valid: use 1-64 letters")


def test_the_help_is_french_by_default_and_english_with_lang() -> None:
    french = runner.invoke(app, ["--help"], env=WIDE)
    english = runner.invoke(app, ["--lang", "en", "--help"], env=WIDE)
    command = runner.invoke(app, ["pki", "init", "--help"], env=WIDE)
    registry = runner.invoke(app, ["--lang", "en", "registry", "publish", "--help"], env=WIDE)

    assert french.exit_code == english.exit_code == command.exit_code == 0
    assert "Le côté ministère de Persévérance : ICP, inscription des centres" in french.stdout
    assert "Commandes" in french.stdout and "Afficher ce message et quitter." in french.stdout
    assert "The ministry's side of Persévérance: PKI, enrolment of centres" in english.stdout
    assert "Créer l'AC et le certificat du serveur" in command.stdout
    assert "Append the run's model card" in registry.stdout


def test_the_audit_help_names_the_variable_of_the_ministry_s_key() -> None:
    from server.audit_verify import HELP
    from server.federation.audit_log import KEY_ENV

    # The help is a catalogue message, so it names the variable in full, not by KEY_ENV.
    assert f"${KEY_ENV}" in HELP
