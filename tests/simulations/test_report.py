"""The run report: standalone page, one image per plot, notes for what was not measured,
French by default with English beside it, and (slow) the images really load in headless
Chromium."""

from __future__ import annotations

import base64
import html
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from common.i18n import catalogue as i18n
from common.metrics import ScoreHistogram
from simulations.report import NOT_MEASURED, REPORT, REPORT_EN, render_report, write_report
from simulations.report_plots import roc_points
from tests.server.run_fixtures import write_run_folder

IMAGE = re.compile(r'<img alt="[^"]*" src="data:image/png;base64,([A-Za-z0-9+/=]+)">')
REPO = Path(__file__).resolve().parents[2]


def english(run: Path) -> str:
    """The English page of the run folder (written beside the French one)."""
    write_report(run)
    return (run / REPORT_EN).read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    """The complete run folder of ``write_run_folder`` and its two pages, written once
    (each ``write_report`` draws twelve figures, about 3 s) for the tests that only read
    them: the run folder, the French page, the English page."""
    run = write_run_folder(tmp_path_factory.mktemp("report") / "run")
    french = write_report(run).read_text(encoding="utf-8")
    return run, french, (run / REPORT_EN).read_text(encoding="utf-8")


def test_a_complete_run_gets_all_six_plots(tmp_path: Path) -> None:
    run = write_run_folder(tmp_path / "run", summary_extra={
        "auc_local_only_by_size_band": {"small": 0.7, "medium": None, "large": 0.79}})

    page = english(run)

    assert len(IMAGE.findall(page)) == 6
    assert NOT_MEASURED not in page.split("<h2>Learning curves</h2>")[1]


def test_every_image_is_an_embedded_png(report: tuple[Path, str, str]) -> None:
    _, french, en = report

    assert IMAGE.findall(french) and IMAGE.findall(en)
    for data in IMAGE.findall(french) + IMAGE.findall(en):
        assert base64.b64decode(data).startswith(b"\x89PNG\r\n\x1a\n")


def test_missing_equity_and_participation_become_notes(tmp_path: Path) -> None:
    run = write_run_folder(tmp_path / "run", equity=False, participation=False)

    page = english(run)

    assert len(IMAGE.findall(page)) == 3  # learning curves, ROC, calibration
    assert f"Equity by group was {NOT_MEASURED}" in page
    assert f"Epsilon by centre was {NOT_MEASURED}" in page
    assert f"AUC by centre size was {NOT_MEASURED}" in page


def test_the_page_loads_nothing_from_anywhere(report: tuple[Path, str, str]) -> None:
    _, french, en = report

    for text in (french, en):
        assert "http://" not in text and "https://" not in text and "<script" not in text


def test_the_report_is_french_with_english_beside_it(tmp_path: Path) -> None:
    run = write_run_folder(tmp_path / "run", equity=False)

    page = write_report(run)
    french = page.read_text(encoding="utf-8")
    en = (run / REPORT_EN).read_text(encoding="utf-8")

    assert page.name == REPORT == "report.html"
    assert '<html lang="fr">' in french and '<html lang="en">' in en
    assert "<h2>Courbes d'apprentissage</h2>" in french and "Learning curves" not in french
    assert "L'équité par groupe n'a pas été mesurée" in html.unescape(french)
    assert 'href="report.en.html" hreflang="en"' in french
    assert "<h2>Learning curves</h2>" in en and 'href="report.html" hreflang="fr"' in en


def test_the_figures_are_drawn_in_the_page_language(report: tuple[Path, str, str]) -> None:
    french, en = IMAGE.findall(report[1]), IMAGE.findall(report[2])

    assert len(french) == len(en) == 6
    assert all(f != e for f, e in zip(french, en, strict=True))
    assert i18n.gettext("fr")("false-positive rate") != "false-positive rate"


def test_french_summary_figures_take_the_decimal_comma(report: tuple[Path, str, str]) -> None:
    run, french, _ = report
    summary = json.loads((run / "summary.json").read_text())

    assert f"<td class=\"num\">{i18n.number(summary['auc_pooled'], 3, 'fr')}</td>" in french
    assert "," in i18n.number(summary["auc_pooled"], 3, "fr")


def test_roc_points_of_a_perfect_separation_pass_through_the_corner() -> None:
    positives, negatives = np.zeros(4), np.zeros(4)
    positives[3], negatives[0] = 5.0, 5.0
    h = ScoreHistogram(positives, negatives, np.zeros(4), 0.0)

    fpr, tpr = roc_points(h)

    assert tpr.tolist() == [0.0, 1.0, 1.0, 1.0, 1.0]
    assert fpr.tolist() == [0.0, 0.0, 0.0, 0.0, 1.0]


def test_the_report_module_does_not_import_the_client_side() -> None:
    code = ("import sys, simulations.report; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'client'))")

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=REPO, check=True, timeout=120).stdout

    assert out.strip() == "[]"


REFUSED = {"CSS des Navigateurs": "The run asks for less privacy than this centre's policy "
                                     "allows."}


def _refusals(page: str) -> str:
    """The text of the refusals section (up to the next heading) of the French page."""
    section = page.split("<h2>Centres ayant refusé</h2>")[1]
    return html.unescape(section.split("<h2>")[0])


def test_the_centres_that_refused_are_listed_with_their_reason(tmp_path: Path) -> None:
    # The refusals' section only: the French page of a run folder with fewer figures.
    run = write_run_folder(tmp_path / "run", equity=False, participation=False,
                           summary_extra={"centres_refused": REFUSED})

    section = _refusals(render_report(run, "fr"))

    name, reason = next(iter(REFUSED.items()))
    assert f"<tr><td>{name}</td><td>{reason}</td></tr>" in section
    assert "Aucun centre n'a refusé" not in section


def test_a_run_nobody_refused_says_so(tmp_path: Path) -> None:
    # The refusals' section only: run folders with fewer figures, each page drawn once.
    run = write_run_folder(tmp_path / "run", equity=False, participation=False,
                           summary_extra={"centres_refused": {}})
    older = write_run_folder(tmp_path / "older", equity=False, participation=False)

    section = _refusals(render_report(run, "fr"))
    older_section = _refusals(render_report(older, "fr"))

    assert "Aucun centre n'a refusé cette exécution." in section
    assert "No centre refused this run." in render_report(run, "en")
    assert "non mesuré dans cette exécution" in older_section
    assert "Aucun centre" not in older_section


def test_a_value_holding_markup_is_escaped_in_the_report(tmp_path: Path) -> None:
    run = write_run_folder(tmp_path / "run", equity=False, participation=False, summary_extra={
        "scenario": "<script>alert(1)</script>",
        "centres_refused": {"<img src=x onerror=alert(2)>": "<script>alert(3)</script>"}})

    page = render_report(run, "fr")

    assert "<script" not in page and "<img src=x" not in page
    assert "<h1>Rapport d'exécution : &lt;script&gt;alert(1)&lt;/script&gt;</h1>" in page
    assert "&lt;img src=x onerror=alert(2)&gt;" in page
    assert "&lt;script&gt;alert(3)&lt;/script&gt;" in page


# -- headless Chromium ---------------------------------------------------------------

COUNT_IMAGES = """<script>
window.addEventListener("load", () => {
  const images = Array.from(document.images);
  const loaded = images.filter((i) => i.complete && i.naturalWidth > 0).length;
  document.body.setAttribute("data-images", images.length + "/" + loaded);
});
</script></body>"""


def _chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    pytest.skip("chromium is not installed: run deploy/install-test-browser.sh")
    raise AssertionError  # unreachable: pytest.skip raises


@pytest.mark.slow
def test_every_image_loads_in_headless_chromium(report: tuple[Path, str, str],
                                               tmp_path: Path) -> None:
    chromium = _chromium()
    run, page, _ = report
    probe = tmp_path / "probe.html"
    probe.write_text(page.replace("</body>", COUNT_IMAGES), encoding="utf-8")

    result = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}",
         "--virtual-time-budget=10000", "--dump-dom", probe.as_uri()],
        capture_output=True, text=True, timeout=120, check=False,
    )

    found = re.search(r'data-images="(\d+)/(\d+)"', result.stdout)
    assert found, f"chromium did not render the page: {result.stderr[-500:]}"
    assert (found.group(1), found.group(2)) == ("6", "6")
    assert (run / REPORT).is_file()


def test_size_bands_too_small_to_show_give_a_note(tmp_path: Path) -> None:
    run = write_run_folder(tmp_path / "run")
    participation = json.loads((run / "participation.json").read_text())
    participation["auc_by_size_band"] = {"small": None, "medium": None, "large": None}
    (run / "participation.json").write_text(json.dumps(participation))

    page = english(run)

    assert "No centre-size band holds enough centres" in page
    assert len(IMAGE.findall(page)) == 5
