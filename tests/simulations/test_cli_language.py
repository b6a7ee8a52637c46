"""``perseverance-sim``'s language: its error sentences and its help in French unless
``--lang en`` (before the command) or the locale says English (``common.i18n.cli``).
Only refusals before any simulation starts: no Ray, no Flower."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from common.i18n import catalogue as i18n
from simulations.cli import _done, app

runner = CliRunner()
NO_LOCALE = {"PERSEVERANCE_LANG": "", "LC_ALL": "", "LC_MESSAGES": "", "LANG": "C.UTF-8",
             "COLUMNS": "200"}


def test_an_error_sentence_is_french_by_default_and_english_when_asked() -> None:
    args = ["run", "--scenario", "nowhere"]

    french = runner.invoke(app, args, env=NO_LOCALE)
    english = runner.invoke(app, ["--lang", "en", *args], env=NO_LOCALE)
    by_locale = runner.invoke(app, args, env={**NO_LOCALE, "LANG": "en_CA.UTF-8"})

    assert french.exit_code == english.exit_code == by_locale.exit_code == 2
    assert french.stderr.startswith(
        "erreur : Il n'y a aucun scénario nommé « nowhere » (scénarios connus : demo, ")
    assert english.stderr.startswith(
        "error: There is no scenario named 'nowhere' (known: demo, ")
    assert by_locale.stderr == english.stderr


def test_the_help_is_french_by_default_and_english_with_lang() -> None:
    french = runner.invoke(app, ["--help"], env=NO_LOCALE)
    english = runner.invoke(app, ["--lang", "en", "--help"], env=NO_LOCALE)
    option = runner.invoke(app, ["run", "--help"], env=NO_LOCALE)

    assert french.exit_code == english.exit_code == option.exit_code == 0
    assert "Fédérations simulées des centres de services scolaires du Québec." in french.stdout
    assert "Commandes" in french.stdout and "Lister les scénarios fournis." in french.stdout
    assert "Simulated federations of Québec school service centres." in english.stdout
    assert "Commands" in english.stdout and "List the shipped scenarios." in english.stdout
    assert "Utilisation : root run [OPTIONS]" in option.stdout
    assert "Usage: root [OPTIONS]" in english.stdout
    assert "Nom du scénario (voir `list`) ou chemin d'un fichier TOML." in option.stdout
    assert "[par défaut : demo]" in option.stdout


def test_the_end_of_a_run_is_said_with_the_numbers_of_the_language() -> None:
    summary = {"wall_seconds": 61.7, "auc_pooled": 0.7843, "auc_centralized": 0.8012,
               "epsilon_max": 1.957, "delta": 1e-06}

    sentence = _done(summary)

    assert sentence == i18n.translate(sentence, "en") == (
        "Done in 62 s: pooled AUC 0.784 (centralised without DP 0.801), epsilon spent at "
        "most 1.96 at delta 1e-06.")
    assert i18n.translate(sentence, "fr") == (
        "Terminé en 62 s : AUC regroupée 0,784 (centralisé sans confidentialité "
        "différentielle 0,801), epsilon dépensé d'au plus 1,96 à delta 1e-06.")


def test_a_run_without_a_pooled_auc_says_why() -> None:
    summary = {"wall_seconds": 30.0, "auc_pooled": None, "auc_centralized": 0.8,
               "epsilon_max": 2.0, "delta": 1e-06}
    refused = i18n.translate(_done({**summary, "num_centres": 0}), "en")
    assert "no centre released its final evaluation" in refused and "centres_refused" in refused
    assert "aucun centre n'a publié" in i18n.translate(_done({**summary, "num_centres": 0}), "fr")
    noisy = i18n.translate(_done({**summary, "num_centres": 12}), "en")
    assert "too few students for the noise" in noisy


def test_the_bench_table_shows_its_names_and_figures_in_the_language() -> None:
    from common.i18n.cli import set_language
    from simulations.bench_report import table_rows
    from simulations.cli import _figures_in_language

    names = [name for name, _ in table_rows(_BENCH_REPORT)]
    set_language("fr")
    try:
        assert _figures_in_language("12 / 1,234 / 20") == "12 / 1\u202f234 / 20"
        assert _figures_in_language("0.78 / 2.73") == "0,78 / 2,73"
        assert i18n.translate(names[1], "fr") == "boucle simple, conf. diff. (s)"
    finally:
        set_language("en")
    assert _figures_in_language("0.78") == "0.78"


_BENCH_REPORT = {
    "num_centres": 12, "num_students": 45000, "rounds": 6,
    "wall_seconds": {"raw_dp": 1.0, "sim_dp": 1.0, "raw_no_dp": 1.0, "sim_no_dp": 1.0},
    "peak_memory": {"rss_bytes": 1, "pss_bytes": 1}, "overhead_ratio": 1.0,
    "overhead_ratio_no_dp": 1.0, "raw_compute_seconds": 1.0, "compute_ratio": 1.0,
    "engine_start_seconds": 1.0, "compute_ratio_with_engine_start": 1.0,
    "overhead_ratio_with_engine_start": 1.0, "raw_compute_ratio": 1.0, "dp_ratio": 1.0,
    "dp_ratio_local_training": 1.0, "dp_ratio_local_epoch": 1.0,
    "bytes_sent_per_centre_per_round": 1.0, "bytes_received_per_centre_per_round": 1.0,
    "scoring_students_per_second": 1.0, "auc_pooled": {"raw_dp": 0.8, "sim_dp": 0.8},
    "load_average": {"before": [1.0, 1.0, 1.0], "after": [1.0, 1.0, 1.0]},
    "parallel": {"workers": 2, "parallel_efficiency": 0.52, "speedup": 1.26,
                 "one_worker_wall_seconds": 1.26},
}


def test_a_run_folder_that_cannot_be_made_is_one_sentence_and_exit_2(tmp_path) -> None:
    """The folder holding the run folder is made before the run starts (the console's
    command it prints must work at once): a path through a file is refused, nothing run."""
    blocker = tmp_path / "a-file"
    blocker.write_text("")

    result = runner.invoke(app, ["run", "--scenario", "tiny", "--out",
                                 str(blocker / "runs" / "one")], env=NO_LOCALE)

    assert result.exit_code == 2
    assert result.stderr.startswith(f"erreur : Impossible de créer le dossier {blocker}/runs (")
    assert "ronde 1/" not in result.stdout and "Pour suivre" not in result.stdout


def test_list_describes_the_scenarios_in_french_by_default_and_in_english_with_lang() -> None:
    french = runner.invoke(app, ["list"], env={**NO_LOCALE, "COLUMNS": "80"})
    english = runner.invoke(app, ["--lang", "en", "list"], env={**NO_LOCALE, "COLUMNS": "80"})

    assert french.exit_code == english.exit_code == 0
    joined = " ".join(french.stdout.split())  # the descriptions wrap within 80 columns
    # (split() reads the non-breaking space of "45 000" as a space)
    assert "demo 12 centres synthétiques, environ 45 000 élèves; DP-SGD epsilon 3 par " \
        "centre (make demo)" in joined
    assert "tiny 3 petits centres, 2 rondes" in joined
    assert "synthetic" not in french.stdout and "Real data" not in french.stdout
    assert "demo 12 synthetic centres, about 45,000 students" in " ".join(english.stdout.split())
    assert max(len(line) for line in french.stdout.splitlines()) <= 80


def test_every_shipped_scenario_is_described_in_the_catalogue() -> None:
    from simulations.scenario import available_scenarios, load_scenario

    french = i18n.gettext("fr")
    for name in available_scenarios():
        description = load_scenario(name).description
        assert description and french(description) != description, name


def test_a_researchers_own_description_is_shown_as_written(tmp_path: Path) -> None:
    from simulations.scenario_catalogue import extract

    own = tmp_path / "mine.toml"
    own.write_text('name = "mine"\ndescription = "Mon propre scénario"\nrounds = 2\n',
                   encoding="utf-8")

    with own.open("rb") as file:
        found = list(extract(file, {}, [], {}))

    assert found == [(2, "", "Mon propre scénario", [])]
    assert i18n.translate("Mon propre scénario", "fr") == "Mon propre scénario"
