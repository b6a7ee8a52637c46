"""The operations console as an operator uses it: the real uvicorn server on 127.0.0.1,
its pages driven in headless Chromium (Debian's), French first, English by the switch
and Accept-Language, and a run page that follows a run as it grows."""

from __future__ import annotations

import shutil
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from tests.server.console_fixtures import (
    FAILED,
    FINISHED,
    GROWING,
    REFUSAL,
    REJECTION,
    STOPPED,
    TAMPERED,
    GrowingRun,
    console_server,
    listening_addresses,
    tree_digest,
    write_inventory_file,
    write_registry,
    write_runs,
)

playwright_api = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.slow
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu",
                  "--disable-background-networking"]
LIVE_TIMEOUT_MS = 15_000


def _chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    pytest.skip("chromium is not installed: run deploy/install-test-browser.sh")
    raise AssertionError  # unreachable


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("console")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PERSEVERANCE_MINISTRY_KEY", str(root / "ministry-records.key"))
        runs = root / "runs"
        runs.mkdir()
        write_runs(runs)
        growing = GrowingRun(runs / GROWING)
        growing.add_round()
        registry = write_registry(root / "registry", runs)
        inventory = write_inventory_file(root / "inventory.json")
        before = tree_digest(registry) | {k: v for k, v in tree_digest(runs).items()
                                          if not k.startswith(GROWING)}
        try:
            with console_server("--runs", str(runs), "--registry", str(registry),
                                "--inventory", str(inventory), log=root / "console.log") as url:
                yield {"url": url, "runs": runs, "registry": registry, "growing": growing,
                       "before": before}
        finally:
            growing.close()


@pytest.fixture(scope="module")
def browser(site: dict[str, Any]) -> Iterator[Any]:
    with playwright_api.sync_playwright() as driver:
        chromium = driver.chromium.launch(executable_path=_chromium(), args=CHROMIUM_FLAGS,
                                          headless=True)
        yield chromium
        chromium.close()


def _page(browser: Any, locale: str = "fr-CA") -> Any:
    context = browser.new_context(locale=locale)
    context.set_default_timeout(LIVE_TIMEOUT_MS)
    return context.new_page()


def test_runs_are_listed_in_french_with_status_and_french_numbers(
        site: dict[str, Any], browser: Any) -> None:
    page = _page(browser)
    page.goto(f"{site['url']}/runs")

    assert page.inner_text("h1") == "Exécutions"
    status = {run: page.inner_text(f"tr[data-run='{run}'] .status")
              for run in (FINISHED, STOPPED, FAILED, GROWING)}
    assert status == {FINISHED: "terminé", STOPPED: "arrêté avant la fin",
                      FAILED: "échoué", GROWING: "en cours"}
    finished = page.inner_text(f"tr[data-run='{FINISHED}']")
    assert "3 / 3" in finished and "0,780" in finished and "2,95" in finished
    assert "1 / 5" in page.inner_text(f"tr[data-run='{FAILED}']")


def test_the_switch_and_accept_language_give_english(site: dict[str, Any],
                                                     browser: Any) -> None:
    english = _page(browser, locale="en-CA")
    english.goto(f"{site['url']}/runs")
    assert english.inner_text("h1") == "Runs"
    assert "0.780" in english.inner_text(f"tr[data-run='{FINISHED}']")

    page = _page(browser)
    page.goto(f"{site['url']}/runs")
    page.click("#lang-switch")
    assert page.inner_text("h1") == "Runs"
    page.click("nav >> text=Federation")  # the choice holds on the next page
    assert page.inner_text("h1") == "Federation"
    page.click("#lang-switch")
    assert page.inner_text("h1") == "Fédération"


def test_federation_lists_the_inventory_with_refusals(site: dict[str, Any],
                                                      browser: Any) -> None:
    page = _page(browser)
    page.goto(site["url"] + "/")

    laval = page.inner_text("tr[data-centre='css-de-laval']")
    assert "Laval" in laval and "SHA256:lavalkeyfingerprint" in laval
    refused = page.inner_text("tr[data-centre='css-des-laurentides'] .refusal")
    assert REFUSAL in refused and FINISHED in refused
    assert "révoqué le" in page.inner_text("tr[data-centre='css-crie'] .connection")
    assert "2 centres inscrits." in page.inner_text("body")


def test_a_finished_run_shows_equity_baselines_and_links(site: dict[str, Any],
                                                         browser: Any) -> None:
    page = _page(browser)
    page.goto(f"{site['url']}/runs/{FINISHED}")

    assert page.locator("#rounds tr").count() == 4  # header and three rounds
    assert "0,750 – 0,850" in page.inner_text("#equity")
    assert "0,800" in page.inner_text("#baselines")  # centralised reference
    assert page.locator("svg.chart").count() == 3
    assert "css-de-laval" in page.inner_text("#participation")
    assert REFUSAL in page.inner_text("#refusals")
    page.click("text=fiche du modèle")
    assert page.inner_text("h1").startswith("Fiche du modèle : fixture-")


def test_the_run_page_follows_a_growing_run_live(site: dict[str, Any],
                                                 browser: Any) -> None:
    growing: GrowingRun = site["growing"]
    page = _page(browser)
    page.goto(f"{site['url']}/runs/{GROWING}")
    rows = page.locator("#rounds tr")
    assert rows.count() == 1 + growing.rounds
    assert page.get_attribute("#live", "data-status") == "running"

    growing.add_round(reject=True)  # the page is not reloaded: it polls its live part
    # Waiting through Playwright's selectors: the console's policy forbids eval().
    playwright_api.expect(rows).to_have_count(1 + growing.rounds, timeout=LIVE_TIMEOUT_MS)
    assert REJECTION in page.inner_text("#rejections")
    assert "1,80" in page.inner_text("#rounds")  # epsilon of round 2, in French

    growing.finish()
    page.wait_for_selector("#equity", timeout=LIVE_TIMEOUT_MS)  # reloaded once ended
    assert page.inner_text("#run-status") == "terminé"


def test_the_audit_page_says_whether_the_chain_verifies(site: dict[str, Any],
                                                        browser: Any) -> None:
    page = _page(browser)
    page.goto(f"{site['url']}/audit/{FINISHED}")
    assert "Le journal d'audit se vérifie" in page.inner_text("#verdict")
    assert "refus du centre" in page.inner_text("#events")

    page.goto(f"{site['url']}/audit/{TAMPERED}")
    verdict = page.inner_text("#verdict")
    assert "NE se vérifie PAS" in verdict and "line 3" in verdict


def test_the_registry_lists_published_models_and_their_cards(site: dict[str, Any],
                                                             browser: Any) -> None:
    page = _page(browser, locale="en-CA")
    page.goto(f"{site['url']}/registry")
    assert "1 models published." in page.inner_text("body")
    link = page.locator("#models a").first
    model_id = link.inner_text()
    link.click()
    assert page.inner_text("h1") == f"Model card: {model_id}"  # the English card


def test_the_console_reads_only_and_listens_on_loopback(site: dict[str, Any]) -> None:
    url = site["url"]
    for method, path in (("POST", "/runs"), ("DELETE", f"/runs/{FINISHED}"),
                         ("PUT", "/registry")):
        request = urllib.request.Request(url + path, data=b"x", method=method)
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        assert refused.value.code == 405
    for path in ("/runs/..%2F..%2Fetc", f"/runs/{FINISHED}/files/summary.json",
                 "/registry/..%2Fruns"):
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(url + path, timeout=10)
        assert missing.value.code == 404
    with urllib.request.urlopen(url + "/runs", timeout=10) as response:
        assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    port = int(url.rsplit(":", 1)[1])
    assert listening_addresses(port) == ["0100007F"]  # 127.0.0.1 only
    after = tree_digest(site["registry"]) | {k: v for k, v in tree_digest(site["runs"]).items()
                                             if not k.startswith(GROWING)}
    assert after == site["before"]
