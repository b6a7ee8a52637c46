"""The model card as a French reader sees it: every attribute, group and size band in
words, and the whole page within 1280 px (headless Chromium)."""

from __future__ import annotations

import html
import json
import re
import shutil
from pathlib import Path

import pytest

from server.publication.model_card import write_model_card
from tests.server.run_fixtures import write_run_folder

RAW = ("home_language", "immigrant_generation", "imse_band", "ehdaa", "sex=", ">false<",
       ">true<", ">large ", ">medium ", ">small ")


def _card(tmp_path: Path) -> tuple[Path, str]:
    run = write_run_folder(tmp_path / "run")
    participation = json.loads((run / "participation.json").read_text())
    participation["auc_by_size_band"] = {"small": 0.71, "medium": 0.74, "large": 0.78}
    (run / "participation.json").write_text(json.dumps(participation))
    _, page = write_model_card(run)
    return page, html.unescape(page.read_text(encoding="utf-8"))


def test_the_french_card_names_groups_in_words(tmp_path: Path) -> None:
    _, french = _card(tmp_path)

    tables = " ".join(re.findall(r"<table class=\"equity\">.*?</table>", french, re.S))
    assert [raw for raw in RAW if raw in tables] == []
    assert "garçons" in tables and "filles" in tables and "EHDAA (handicap" in tables
    assert "oui − non" in tables  # the gap's two groups, in words
    assert "Autochtone : oui" in french  # a suppressed group
    assert "petits centres 0,710" in french and "grands centres" in french


@pytest.mark.slow
def test_the_card_fits_1280_pixels(tmp_path: Path) -> None:
    playwright = pytest.importorskip("playwright.sync_api")
    chromium = shutil.which("chromium") or pytest.skip("chromium is not installed")
    page_file, _ = _card(tmp_path)

    with playwright.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=chromium, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        page = browser.new_page(viewport={"width": 1280, "height": 900}, locale="fr-CA")
        page.goto(page_file.as_uri())
        widths = page.evaluate("[document.documentElement.scrollWidth,"
                               " document.documentElement.clientWidth]")
        browser.close()

    assert widths[0] <= widths[1], widths
