"""The console on real runs, as a researcher or an operator has them: a tiny simulated
federation (published to a registry), a run every centre refused and a multi-year
simulation (``perseverance-sim years``), each made by its real command. Every page is
walked in French in headless Chromium (Debian's): no English word of the catalogue's
(nor a raw code of the data) on it, nothing wider than 1280 pixels."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from common.i18n import catalogue as i18n
from common.i18n.catalogue import number
from server.deployment.enrolment import InventoryEntry, write_inventory
from tests.server.console_fixtures import console_server, tree_digest
from tests.simulations.conftest import TinyRun

playwright_api = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent
RUN_SECONDS = 600
WIDTH = 1280
FINGERPRINT = "Vhfkxe3P9Ctyplxg1BMx+rrKLAUM6D7V9LQnZOQzX3Y"
TINY, REFUSED, YEARS = "tiny", "refused", "years"
# Sources whose messages the console's pages show (their English must not be on a
# French page): its templates and words, the equity audit's words, the pages' filters.
SOURCES = ("server/console/", "common/equity/words.py", "common/pages.py",
           "common/templates/")
# Raw codes of the data that a French page must show in words.
# (The size band "large" is also a French word.)
RAW_CODES = ("true", "false", "home_language", "imse_band", "immigrant_generation",
             "medium", "small", "sex=M", "failed", "stopped", "finished")
# English msgids that are also French words or names (or appear inside code shown as
# it is: command lines, scenario names), so their presence says nothing.
ALSO_FRENCH = {"Simulations (perseverance-sim run, sweep, bench)"}


def _used_by_console() -> list[str]:
    """The catalogue has no locations (``--no-location``): the console's messages are
    those its sources hold, as ``pybabel extract`` finds them."""
    from babel.messages.extract import extract_from_dir
    from babel.messages.frontend import parse_mapping_cfg

    root = Path(__file__).resolve().parents[2]
    with (root / "babel.cfg").open(encoding="utf-8") as config:
        method_map, options = parse_mapping_cfg(config)
    used: set[str] = set()
    for filename, _, message, *_ in extract_from_dir(str(root), method_map, options):
        if any(filename.startswith(source) for source in SOURCES):
            used.update(message if isinstance(message, tuple) else (message,))
    french = i18n.gettext("fr")
    phrases = set()
    for english in used:
        if not english or english in ALSO_FRENCH or french(english) == english:
            continue
        piece = max(re.split(r"%\(\w+\)s|%%", english), key=len).strip(" :;,.()")
        if (len(piece) >= 4 and " " in piece) or (piece.isalpha() and len(piece) >= 5):
            phrases.add(piece)
    return sorted(phrases)


def _sim(args: list[str], env: dict[str, str], log: Path, ok: bool = True) -> None:
    with log.open("ab") as out:
        done = subprocess.run([str(BIN / "perseverance-sim"), *args], env=env, stdout=out,
                              stderr=subprocess.STDOUT, timeout=RUN_SECONDS, check=False)
    assert (done.returncode == 0) == ok, log.read_text()[-3000:]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory,
         tiny_run: TinyRun) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("real-runs")
    runs, registry, log = root / "runs", root / "registry", root / "commands.log"
    ray_tmp = Path(f"/tmp/prs-ray-pages-{os.getpid()}")  # Ray's socket paths stay short
    # The tiny run is the suite's (``perseverance-sim run --scenario tiny``, made once per
    # test process, tests/conftest.py); the two runs below are signed with its ministry
    # key, so that the console verifies every audit log with one key.
    assert tiny_run.proc.returncode == 0, tiny_run.proc.stderr[-3000:]
    key = tiny_run.out.parent / "flwr" / "perseverance" / "ministry-records.key"
    env = {**os.environ, "RAY_TMPDIR": str(ray_tmp), "FLWR_HOME": str(root / "flwr"),
           "PERSEVERANCE_MINISTRY_KEY": str(key)}
    shutil.copytree(tiny_run.out, runs / TINY)
    try:
        # Above every centre's floor (3 per run): each refuses, the run stops at round 1.
        _sim(["run", "--scenario", "tiny", "--set", "rounds=2", "--set", "privacy.epsilon=5",
              "--out", str(runs / REFUSED)], env, log, ok=False)
        _sim(["years", "--scenario", "tiny", "--years", "2", "--out", str(runs / YEARS),
              "--set", "rounds=1", "--set", "privacy.epsilon=8",
              "--set", "centre_policy.max_epsilon_per_run=8",
              "--set", "privacy.reproducible_noise=true",
              "--set", "centre_policy.allow_replayable_noise=true"], env, log)
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
    with log.open("ab") as out:
        subprocess.run([str(BIN / "perseverance-server"), "registry", "publish",
                        str(runs / TINY), "--registry", str(registry)], env=env, stdout=out,
                       stderr=subprocess.STDOUT, timeout=120, check=True)
    # The simulated centres' names, enrolled: their runs must not be counted; fingerprints
    # as enrol writes them (the widest column).
    inventory = root / "inventory.json"
    write_inventory(inventory, [
        InventoryEntry(f"css-{n}", 1000 + n, f"SHA256:{FINGERPRINT}", "2026-09-01T12:00:00Z",
                       region="Laval") for n in (20, 56, 67)])
    before = tree_digest(runs)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PERSEVERANCE_MINISTRY_KEY", env["PERSEVERANCE_MINISTRY_KEY"])
        with console_server("--runs", str(runs), "--registry", str(registry),
                            "--inventory", str(inventory), log=root / "console.log") as url:
            yield {"url": url, "runs": runs, "registry": registry}
    assert tree_digest(runs) == before  # the console wrote nothing under the runs


@pytest.fixture(scope="module")
def browser(site: dict[str, Any]) -> Iterator[Any]:
    chromium = shutil.which("chromium") or pytest.skip("chromium is not installed")
    with playwright_api.sync_playwright() as driver:
        launched = driver.chromium.launch(executable_path=chromium, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        yield launched
        launched.close()


def _page(browser: Any) -> Any:
    # The console's policy forbids scripts of the page's own: measuring needs one.
    context = browser.new_context(locale="fr-CA", viewport={"width": WIDTH, "height": 900},
                                  bypass_csp=True)
    context.set_default_timeout(30_000)
    return context.new_page()


def test_a_years_simulation_is_read_through_the_console(site: dict[str, Any],
                                                        browser: Any) -> None:
    table = json.loads((site["runs"] / YEARS / "years.json").read_text())["years"]
    page = _page(browser)
    page.goto(f"{site['url']}/runs")
    listed = page.inner_text("#runs-table-years")
    assert YEARS in listed and "2 années scolaires" in listed
    assert "année 1 (2024-2025)" in listed and "année 2 (2025-2026)" in listed
    page.click(f"tr[data-years='{YEARS}'] a")
    assert page.inner_text("h1") == f"Simulation sur plusieurs années scolaires {YEARS}"
    for row in table:
        shown = page.inner_text(f"#years tr[data-year='{row['year']}']")
        assert row["school_year"] in shown and "terminé" in shown
        assert number(row["auc_pooled"], 3, "fr") in shown
    page.click("#years tr[data-year='2'] a")  # the year's own run, with its rounds
    assert page.inner_text("h1") == f"Exécution {YEARS}/year-2"
    assert page.locator("#rounds tr").count() == 2  # header and its one round
    page.goto(f"{site['url']}/audit/{YEARS}/year-2")
    assert "Le journal d'audit se vérifie" in page.inner_text("#verdict")


def test_a_run_every_centre_refused_stopped_before_the_end(site: dict[str, Any],
                                                           browser: Any) -> None:
    page = _page(browser)
    page.goto(f"{site['url']}/runs")
    assert page.inner_text(f"tr[data-run='{REFUSED}'] .status") == "arrêté avant la fin"
    page.goto(f"{site['url']}/runs/{REFUSED}")
    assert "Aucune ronde n'a été terminée" in page.inner_text("#no-rounds")
    assert "plancher de confidentialité du centre" in page.inner_text("#refusals")
    # The simulation's centres are not the inventory's, whatever their names.
    page.goto(site["url"] + "/")
    assert page.locator("td.refusal", has_text="plancher").count() == 0


def _word(text: str) -> re.Pattern[str]:
    """``text`` as a word or phrase of its own (not a part of a word, a name or a file
    name: ``model.pt``)."""
    return re.compile(rf"(?<![\w.-]){re.escape(text)}(?![\w-]|\.\w)")


def _pages(site: dict[str, Any]) -> list[str]:
    model_id = next(p.name for p in site["registry"].iterdir()
                    if (p / "model_card.html").is_file())
    pages = ["/", "/?federation=loopback", "/runs", "/registry", f"/registry/{model_id}"]
    for run in (TINY, REFUSED, YEARS, f"{YEARS}/year-1", f"{YEARS}/year-2"):
        pages.append(f"/runs/{run}")
        if run != YEARS:
            pages.append(f"/audit/{run}")
    pages += [f"/runs/{TINY}/files/model_card.html",
              f"/runs/{YEARS}/year-2/files/model_card.html", "/runs/no-such-run"]
    return pages


def test_every_page_is_french_and_fits_1280_pixels(site: dict[str, Any],
                                                   browser: Any) -> None:
    phrases = _used_by_console()
    assert len(phrases) > 100 and "run stopped" in phrases  # the list is the catalogue's
    page = _page(browser)
    problems = []
    for path in _pages(site):
        page.goto(site["url"] + path)
        # Code shown as code (a predictor's column name, a command) is not a word.
        text = page.evaluate("(() => { const body = document.body.cloneNode(true);"
                             " body.querySelectorAll('code, pre').forEach(e => e.remove());"
                             " return body.textContent; })()")
        english = [p for p in phrases if _word(p).search(text)]
        raw = [c for c in RAW_CODES if _word(c).search(text)]
        width = page.evaluate("document.documentElement.scrollWidth")
        if english or raw or width > WIDTH:
            problems.append(f"{path}: English {english}, raw codes {raw}, width {width}")
    assert problems == []
