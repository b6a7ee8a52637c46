"""The model card states which trust model held for each centre's secure evaluation
releases (issue 26, point 5): public, from the centres' policies as their replies
declared them (``summary.json``'s ``centres_trust``), French first."""

from __future__ import annotations

import html
import json
from pathlib import Path

from server.publication.model_card import NOT_MEASURED, build_model_card, write_model_card
from tests.server.run_fixtures import write_run_folder

TRUST = {
    "css-des-affluents": {"model": "secure-aggregation", "colluding": 1, "threshold": 9},
    "css-de-laval": {"model": "alone"},
    "css-de-montreal": {"model": "whole-noise"},
}


def test_each_centres_trust_model_is_on_the_card_french_first(tmp_path: Path) -> None:
    run = write_run_folder(tmp_path / "run", summary_extra={"centres_trust": TRUST})

    json_path, html_path = write_model_card(run)

    trust = json.loads(json_path.read_text(encoding="utf-8"))["privacy"][
        "distributed_noise_trust"]
    assert list(trust) == sorted(TRUST)
    assert trust["css-des-affluents"] == (
        "a share of the noise, booked as the sum of 8 honest shares (SecAgg+ threshold 9, "
        "at most 1 colluding centres)")
    french = html.unescape(html_path.read_text(encoding="utf-8"))
    row = french.split("modèle de confiance des diffusions d'évaluation de chaque centre")[1]
    row = row.split("</tr>")[0]
    assert ("css-des-affluents (une part du bruit, comptée comme la somme de 8 parts "
            "honnêtes (seuil SecAgg+ 9, au plus 1 centres de connivence))") in row
    assert "css-de-laval (une part du bruit, comptée comme si elle était vue seule)" in row
    assert "css-de-montreal (le bruit entier : sa diffusion seule respecte la cible" in row
    english = html.unescape((run / "model_card.en.html").read_text(encoding="utf-8"))
    assert "css-de-laval (a share of the noise, booked as if seen alone)" in english


def test_a_plain_or_older_run_says_not_measured(tmp_path: Path) -> None:
    plain = write_run_folder(tmp_path / "plain", summary_extra={"centres_trust": None})

    assert build_model_card(plain)["privacy"]["distributed_noise_trust"] == NOT_MEASURED
