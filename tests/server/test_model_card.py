"""The model card: built from the run folder, optional parts never invented."""

from __future__ import annotations

import hashlib
import html
import json
from pathlib import Path

import pytest

from common.app_approval import NOT_APPROVED, app_refusal
from common.i18n import catalogue as i18n
from common.protocol import Reason
from server.publication.model_card import (
    NOT_MEASURED,
    ModelCardError,
    build_model_card,
    model_id,
    write_model_card,
)
from tests.server.run_fixtures import EQUITY, write_run_folder


def test_the_card_carries_the_sha256_of_the_weights_file(tmp_path: Path) -> None:
    run = write_run_folder(tmp_path / "run")

    card = build_model_card(run)

    expected = hashlib.sha256((run / "model.pt").read_bytes()).hexdigest()
    assert card["version"]["weights_sha256"] == expected
    assert card["model_id"] == f"fixture-{expected[:12]}"


def test_the_model_id_is_a_slug_of_the_scenario_and_the_hash() -> None:
    assert model_id("Québec 72!", "ab" * 32) == "qu-bec-72-abababababab"


def test_summary_figures_are_copied_as_they_are(tmp_path: Path) -> None:
    card = build_model_card(write_run_folder(tmp_path / "run"))

    assert card["performance"]["pooled"]["auc"] == 0.78
    assert card["privacy"]["epsilon_spent_max"] == 2.95
    assert card["privacy"]["delta"] == 1e-6
    assert card["baselines"]["centralized_without_dp"] == 0.8
    assert card["data"]["students"] == 5000
    assert card["performance"]["auc_by_round"] == [0.7, 0.75, 0.78]


def test_the_equity_table_is_the_runs_equity_audit(tmp_path: Path) -> None:
    card = build_model_card(write_run_folder(tmp_path / "run"))

    assert card["equity"] == EQUITY
    assert card["performance"]["by_centre_size_band"] == {"small": 0.74, "medium": None,
                                                           "large": 0.8}


def test_missing_optional_parts_are_said_not_measured(tmp_path: Path) -> None:
    card = build_model_card(write_run_folder(tmp_path / "run", equity=False,
                                             participation=False))

    assert card["equity"] == NOT_MEASURED
    assert card["performance"]["by_centre_size_band"] == NOT_MEASURED
    assert card["membership_inference"] == NOT_MEASURED
    assert card["baselines"]["environment_only"] == NOT_MEASURED
    assert card["baselines"]["local_only"] == NOT_MEASURED
    # Not in the summary of a plain run: the run's configuration says it was off.
    assert card["privacy"]["secure_aggregation"] is False


def test_baselines_and_membership_inference_come_from_the_summary(tmp_path: Path) -> None:
    run = write_run_folder(tmp_path / "run", summary_extra={
        "auc_environment_only": 0.66, "auc_local_only": 0.71,
        "auc_local_only_by_size_band": {"small": 0.6}, "mia_advantage": 0.012,
        "mia_advantage_bound": 0.905})

    card = build_model_card(run)

    assert card["baselines"]["environment_only"] == 0.66
    assert card["baselines"]["local_only"] == 0.71
    assert card["baselines"]["local_only_by_size_band"] == {"small": 0.6}
    assert card["membership_inference"]["advantage"] == 0.012
    assert card["membership_inference"]["dp_bound"] == 0.905


def test_the_card_states_what_the_model_is_not_for(tmp_path: Path) -> None:
    card = build_model_card(write_run_folder(tmp_path / "run"))

    uses = " ".join(card["out_of_scope_uses"]).lower()
    assert "teachers" in uses and "schools" in uses and "automated decision" in uses


def test_local_paths_of_the_run_stay_out_of_the_card(tmp_path: Path) -> None:
    run = write_run_folder(tmp_path / "run")

    write_model_card(run)

    assert str(tmp_path) not in (run / "model_card.json").read_text(encoding="utf-8")
    assert str(tmp_path) not in (run / "model_card.html").read_text(encoding="utf-8")


def test_write_model_card_writes_json_and_html_into_the_run_folder(tmp_path: Path) -> None:
    run = write_run_folder(tmp_path / "run")

    json_path, html_path = write_model_card(run)

    card = json.loads(json_path.read_text(encoding="utf-8"))
    page = (run / "model_card.en.html").read_text(encoding="utf-8")
    assert card["model_id"] in page
    assert "equal opportunity gap" in page and "Indigenous : yes" in page
    assert "0.200 [0.110,&nbsp;0.280]" in page and "yes − no" in page
    # Each group's figure with its interval under it (EHDAA true: AUC 0.74 [0.68, 0.80]).
    assert '0.740<br><span class="muted">[0.680,&nbsp;0.800]</span>' in page
    # The French page (the default): the same figures with decimal commas, lists with ";".
    french = html_path.read_text(encoding="utf-8")
    assert html_path.name == "model_card.html" and '<html lang="fr">' in french
    assert "Fiche du modèle : " in french and "écart d'égalité des chances" in french
    assert '0,740<br><span class="muted">[0,680;&nbsp;0,800]</span>' in french
    assert "Usage prévu" in french and "Estimer, pour chaque élève" in french
    assert 'href="model_card.en.html"' in french and 'href="model_card.html"' in page


def test_a_folder_without_weights_is_refused_in_one_sentence(tmp_path: Path) -> None:
    run = write_run_folder(tmp_path / "run")
    (run / "model.pt").unlink()

    with pytest.raises(ModelCardError, match=r"has no model\.pt; give the folder of a finished"):
        build_model_card(run)


def test_noisy_equity_counts_are_said_and_unjudgeable_groups_named(tmp_path: Path) -> None:
    run = write_run_folder(tmp_path / "run")
    equity = json.loads((run / "equity.json").read_text())
    equity["noise_std"] = 7.26
    equity["groups"]["ehdaa"]["true"]["auc_ci"] = [0.2, 1.0]
    (run / "equity.json").write_text(json.dumps(equity))

    limitations = build_model_card(run)["limitations"]

    noisy = [note for note in limitations if "differential-privacy noise" in note]
    assert len(noisy) == 1 and "7.26" in noisy[0]
    # The group in words (the JSON keeps the English), not the audit's code ehdaa=true.
    ehdaa = "EHDAA (handicap, social maladjustment or learning difficulty)"
    assert f"{ehdaa}: yes" in noisy[0] and f"{ehdaa}: no" not in noisy[0]
    assert "ehdaa=true" not in noisy[0]
    # Without noise the card says nothing of it.
    plain = build_model_card(write_run_folder(tmp_path / "plain"))["limitations"]
    assert not any("differential-privacy noise" in note for note in plain)


def test_unequal_shares_of_the_audits_noise_are_said(tmp_path: Path) -> None:
    run = write_run_folder(tmp_path / "run")
    equity = json.loads((run / "equity.json").read_text())
    stds = {"sex": 5.35, "ehdaa": 5.35, "indigenous": 5.35, "immigrant_generation": 5.35,
            "home_language": 5.35, "imse_band": 4.04}
    equity.update(noise_std=4.04, noise_std_by_attribute=stds)
    (run / "equity.json").write_text(json.dumps(equity))
    shares = [note for note in build_model_card(run)["limitations"]
              if "shares its noise unequally" in note]
    assert len(shares) == 1 and "4.04" in shares[0] and "imse_band" in shares[0]
    assert "5.35" in shares[0]
    equity["noise_std_by_attribute"] = dict.fromkeys(stds, 5.04)  # equal: nothing said
    (run / "equity.json").write_text(json.dumps(equity))
    assert not any("unequally" in note for note in build_model_card(run)["limitations"])


def test_the_computed_sentences_are_in_the_language_of_each_page(tmp_path: Path) -> None:
    run = write_run_folder(tmp_path / "run")
    equity = json.loads((run / "equity.json").read_text())
    equity["noise_std"] = 7.26
    equity["suppressed"] = ["region=Nord"]
    (run / "equity.json").write_text(json.dumps(equity))

    json_path, html_path = write_model_card(run)

    card = json.loads(json_path.read_text(encoding="utf-8"))
    french = html.unescape(html_path.read_text(encoding="utf-8"))
    english = html.unescape((run / "model_card.en.html").read_text(encoding="utf-8"))
    noise = "The equity counts carry differential-privacy noise (std 7.26 per count"
    assert any(note.startswith(noise) for note in card["limitations"])  # the JSON: English
    assert noise in english and "écart-type 7,26 par effectif de chaque centre" in french
    assert "sont supprimés : région : Nord." in french  # in words, not region=Nord
    assert "simulation (scénario fixture)" in french and "(ReLU), sortie logit" in french
    assert "differential-privacy noise" not in french and "Groups too small" not in french


REFUSED = {
    "CSS des Trois-Lacs": Reason.FLOOR_EPSILON,
    "CSS de la Capitale": Reason.BUDGET_RETIRED,
}


def test_the_centres_that_refused_are_on_the_card_with_their_reason(tmp_path: Path) -> None:
    run = write_run_folder(tmp_path / "run", summary_extra={"centres_refused": REFUSED})

    json_path, html_path = write_model_card(run)

    card = json.loads(json_path.read_text(encoding="utf-8"))
    assert card["centres_refused"] == dict(sorted(REFUSED.items()))
    page = html.unescape(html_path.read_text(encoding="utf-8"))
    refusals = page.split("<h2>Centres ayant refusé</h2>")[1].split("<h2>")[0]
    for name, reason in REFUSED.items():  # the protocol's sentence, in the page's language
        french = i18n.translate(reason, "fr")
        assert french != reason and f"<tr><td>{name}</td><td>{french}</td></tr>" in refusals
    assert "<th>centre</th><th>motif</th>" in refusals
    english = html.unescape((run / "model_card.en.html").read_text(encoding="utf-8"))
    for name, reason in REFUSED.items():
        assert f"<tr><td>{name}</td><td>{reason}</td></tr>" in english
    assert "Aucun centre n'a refusé" not in refusals


def test_an_app_refusal_is_in_the_pages_language_with_its_hash(tmp_path: Path) -> None:
    digest = "c" * 64
    refused = {"cree": app_refusal(NOT_APPROVED, digest=digest)}
    run = write_run_folder(tmp_path / "run", summary_extra={"centres_refused": refused})

    _, html_path = write_model_card(run)

    page = html.unescape(html_path.read_text(encoding="utf-8"))
    assert (f"<tr><td>cree</td><td>Application non approuvée : ce centre n'exécute que les "
            f"applications qu'il a approuvées, et le FAB {digest} n'est pas sur sa "
            "liste.</td></tr>") in page


def test_the_predictors_are_named_as_school_teams_know_them(tmp_path: Path) -> None:
    _, html_path = write_model_card(write_run_folder(tmp_path / "run"))

    french = html.unescape(html_path.read_text(encoding="utf-8"))
    english = html.unescape((tmp_path / "run" / "model_card.en.html").read_text("utf-8"))
    used = french.split("<th>utilisés</th><td>")[1].split("</td>")[0]
    assert '<span title="home_language">Langue parlée à la maison</span>' in used
    assert '<span title="grade_trend">Évolution de la moyenne</span>' in used
    assert ">home_language<" not in used and "<code>" not in used
    audit = french.split("audit seulement (équité, jamais prédicteurs)</th><td>")[1]
    assert audit.startswith('<span title="sex">Sexe</span>; '
                            '<span title="indigenous">Autochtone</span></td>')
    assert '<span title="home_language">Language spoken at home</span>' in english


def test_a_run_nobody_refused_says_so_and_an_older_run_says_not_measured(
    tmp_path: Path,
) -> None:
    none_refused = write_run_folder(tmp_path / "none", summary_extra={"centres_refused": {}})
    older = write_run_folder(tmp_path / "older")

    _, none_page = write_model_card(none_refused)
    _, older_page = write_model_card(older)

    assert build_model_card(none_refused)["centres_refused"] == {}
    assert "Aucun centre n'a refusé cette exécution." in (
        html.unescape(none_page.read_text(encoding="utf-8")))
    assert "No centre refused this run." in (
        none_refused / "model_card.en.html").read_text(encoding="utf-8")
    assert build_model_card(older)["centres_refused"] == NOT_MEASURED
    older_text = html.unescape(older_page.read_text(encoding="utf-8"))
    section = older_text.split("Centres ayant refusé</h2>")[1].split("<h2>")[0]
    assert "non mesuré dans cette exécution" in section and "Aucun centre" not in section


def test_a_value_holding_markup_is_escaped_on_the_card(tmp_path: Path) -> None:
    run = write_run_folder(tmp_path / "run", summary_extra={
        "school_year": "<script>alert(1)</script>",
        "centres_refused": {"<script>alert(2)</script>": "<b onmouseover=alert(3)>x</b>"}})

    _, html_path = write_model_card(run)

    page = html_path.read_text(encoding="utf-8")
    assert "<script" not in page and "<b " not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in page
    assert "&lt;b onmouseover=alert(3)&gt;x&lt;/b&gt;" in page


def test_a_loopback_runs_origin_is_said_in_the_pages_language(tmp_path: Path) -> None:
    run = write_run_folder(tmp_path / "run", summary_extra={"deployment": "loopback"})

    _, html_path = write_model_card(run)

    french = html.unescape(html_path.read_text(encoding="utf-8"))
    english = (run / "model_card.en.html").read_text(encoding="utf-8")
    assert "<th>origine</th><td>déploiement sur la boucle locale</td>" in french
    assert "<th>origin</th><td>deployment on loopback</td>" in english
