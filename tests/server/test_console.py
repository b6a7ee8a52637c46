"""The operations console as an operator uses it: the real uvicorn server on 127.0.0.1,
its pages driven in headless Chromium (Debian's), French first, English by the switch
and Accept-Language, each page's screenshot checked to show something, and a run page
that follows a real tiny federation as it runs."""

from __future__ import annotations

import json
import re
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from common.i18n import catalogue as i18n
from tests.server.console_fixtures import (
    FAILED,
    FINISHED,
    GROWING,
    LOOPBACK,
    REFUSAL,
    SIMULATED,
    STOPPED,
    TAMPERED,
    VIEWPORT,
    GrowingRun,
    check_screenshot,
    console_server,
    listening_addresses,
    tiny_federation,
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
# A real tiny federation, without baselines (they come after the rounds: the page has
# nothing more to follow). Its rounds take 1 to 3 s each on two cores: with 6 of them,
# the page (polling every 2 s) sees a round land some seconds before the run ends.
LIVE_ROUNDS = 6
TINY_LIVE = (f"rounds={LIVE_ROUNDS}", "baselines.enabled=false")
RUN_SECONDS = 300


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
    context = browser.new_context(locale=locale, viewport=VIEWPORT)
    context.set_default_timeout(LIVE_TIMEOUT_MS)
    return context.new_page()


def test_runs_are_listed_in_french_with_status_and_french_numbers(
        site: dict[str, Any], browser: Any, tmp_path: Path) -> None:
    page = _page(browser)
    page.goto(f"{site['url']}/runs")
    check_screenshot(page, tmp_path / "runs.png")

    assert page.inner_text("h1") == "Exécutions"
    status = {run: page.inner_text(f"tr[data-run='{run}'] .status")
              for run in (FINISHED, STOPPED, FAILED, GROWING)}
    assert status == {FINISHED: "terminé", STOPPED: "arrêté avant la fin",
                      FAILED: "échoué", GROWING: "en cours"}
    # Each kind of run in its own section: the deployed federation's apart from the
    # simulations and from the loopback deployment's.
    for kind, runs in (("deployed", {FINISHED, FAILED, GROWING}),
                       ("loopback", {LOOPBACK}), ("simulated", {SIMULATED, STOPPED})):
        rows = page.locator(f"#runs-table-{kind} tr[data-run]")
        shown = {rows.nth(i).get_attribute("data-run") for i in range(rows.count())}
        assert runs <= shown, (kind, shown)
        assert not shown & (({FINISHED, FAILED, GROWING, LOOPBACK, SIMULATED, STOPPED}) - runs)
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


def test_federation_lists_the_inventory_with_refusals(site: dict[str, Any], browser: Any,
                                                      tmp_path: Path) -> None:
    page = _page(browser)
    page.goto(site["url"] + "/")
    check_screenshot(page, tmp_path / "federation.png")

    laval = page.inner_text("tr[data-centre='css-de-laval']")
    assert "Laval" in laval and "SHA256:lavalkeyfingerprint" in laval
    refused = page.inner_text("tr[data-centre='css-des-laurentides'] .refusal")
    assert REFUSAL in refused and FINISHED in refused
    # The simulated run's centre of the same name (and node) refused: not this centre.
    assert page.inner_text("tr[data-centre='css-de-laval'] .refusal") == "—"
    assert SIMULATED not in page.inner_text("#centres")
    assert "exécutions simulées ne sont pas comptées" in page.inner_text("#federation-kind")
    # Its runs: the deployed federation's two it took part in (the finished one and the
    # one growing), not the simulated one.
    assert page.inner_text("tr[data-centre='css-de-laval'] .history") == (
        f"2 (dernière : {GROWING})")
    # The loopback deployment's runs, on demand: its own federation.
    page.goto(site["url"] + "/?federation=loopback")
    assert page.inner_text("tr[data-centre='css-des-laurentides'] .refusal") == "—"
    assert "déploiement sur la boucle locale" in page.inner_text("#federation-kind")
    assert "révoqué le" in page.inner_text("tr[data-centre='css-crie'] .connection")
    assert "2 centres inscrits." in page.inner_text("body")


def test_a_finished_run_shows_equity_baselines_and_links(site: dict[str, Any], browser: Any,
                                                         tmp_path: Path) -> None:
    page = _page(browser)
    page.goto(f"{site['url']}/runs/{FINISHED}")
    check_screenshot(page, tmp_path / "run.png")

    assert page.locator("#rounds tr").count() == 4  # header and three rounds
    assert "0,750 – 0,850" in page.inner_text("#equity")
    assert "0,800" in page.inner_text("#baselines")  # centralised reference
    assert page.locator("svg.chart").count() == 3
    assert "css-de-laval" in page.inner_text("#participation")
    assert REFUSAL in page.inner_text("#refusals")
    page.click("text=fiche du modèle")
    assert page.inner_text("h1").startswith("Fiche du modèle : fixture-")


def test_the_run_page_shows_a_rejected_update_live_with_its_reason(
        site: dict[str, Any], browser: Any) -> None:
    """What a real tiny federation does not do (reject an update), on a run folder the
    test grows by hand; following a real run is the next test."""
    growing: GrowingRun = site["growing"]
    page = _page(browser)
    page.goto(f"{site['url']}/runs/{GROWING}")
    rows = page.locator("#rounds tr")
    assert rows.count() == 1 + growing.rounds
    assert page.get_attribute("#live", "data-status") == "running"

    growing.add_round(reject=True)  # the page is not reloaded: it polls its live part
    # Waiting through Playwright's selectors: the console's policy forbids eval().
    playwright_api.expect(rows).to_have_count(1 + growing.rounds, timeout=LIVE_TIMEOUT_MS)
    # The reason recorded in English, in French on the page.
    assert "la norme de sa mise à jour, 41, dépasse la borne 12 (3,4 fois)" in page.inner_text(
        "#rejections")
    assert "1,80" in page.inner_text("#rounds")  # epsilon of round 2, in French


def test_the_run_page_follows_a_real_tiny_federation_as_its_rounds_land(
        browser: Any, tmp_path: Path) -> None:
    from common.i18n.catalogue import number

    runs = tmp_path / "runs"
    runs.mkdir()
    started = time.monotonic()
    with tiny_federation(runs, tmp_path, *TINY_LIVE) as federation, \
            console_server("--runs", str(runs), log=tmp_path / "console.log") as url:
        federation.wait_until_running(timeout=RUN_SECONDS)
        page = _page(browser)
        loads: list[str] = []
        page.on("load", lambda loaded: loads.append(loaded.url))
        page.goto(f"{url}/runs/{federation.run_dir.name}")
        assert page.get_attribute("#live", "data-status") == "running"
        rows = page.locator("#rounds tr")
        shown = rows.count()
        assert shown < 1 + LIVE_ROUNDS, "every round landed before the page opened"

        # A round lands: the page shows its row without being reloaded (two rounds may
        # land between two polls: the row after those shown is what is waited for).
        playwright_api.expect(rows.nth(shown)).to_be_attached(timeout=RUN_SECONDS * 1000)
        playwright_api.expect(page.locator("#run-rounds")).to_have_text(
            re.compile(rf"[1-{LIVE_ROUNDS}] / {LIVE_ROUNDS}"))  # the counts follow too
        assert len(loads) == 1, "the page was reloaded: the run ended before a poll saw a round"
        check_screenshot(page, tmp_path / "run-live.png")

        assert federation.wait(timeout=RUN_SECONDS) == 0, federation.log.read_text()[-3000:]
        # Once ended, the page reloads itself to show the equity audit.
        playwright_api.expect(page.locator("#run-status")).to_have_text(
            "terminé", timeout=LIVE_TIMEOUT_MS)
        page.wait_for_selector("#equity", timeout=LIVE_TIMEOUT_MS)
        summary = json.loads((federation.run_dir / "summary.json").read_text())
        assert summary["rounds_completed"] == LIVE_ROUNDS
        assert page.inner_text("#run-rounds") == f"{LIVE_ROUNDS} / {LIVE_ROUNDS}"
        assert page.inner_text("#run-auc") == number(summary["auc_pooled"], 3, "fr")
        assert page.inner_text("#run-epsilon") == number(summary["epsilon_max"], 2, "fr")
        assert page.locator("#rounds tr").count() == 1 + LIVE_ROUNDS
    print(f"real tiny federation followed live in {time.monotonic() - started:.0f} s")


def test_the_audit_page_says_whether_the_chain_verifies(site: dict[str, Any], browser: Any,
                                                        tmp_path: Path) -> None:
    page = _page(browser)
    page.goto(f"{site['url']}/audit/{FINISHED}")
    check_screenshot(page, tmp_path / "audit.png")
    assert "Le journal d'audit se vérifie" in page.inner_text("#verdict")
    assert "refus du centre" in page.inner_text("#events")

    page.goto(f"{site['url']}/audit/{TAMPERED}")
    verdict = page.inner_text("#verdict")
    assert "NE se vérifie PAS" in verdict and "ligne 3" in verdict


def test_the_registry_lists_published_models_and_their_cards(
        site: dict[str, Any], browser: Any, tmp_path: Path) -> None:
    page = _page(browser, locale="en-CA")
    page.goto(f"{site['url']}/registry")
    check_screenshot(page, tmp_path / "registry.png")
    assert "1 model published." in page.inner_text("body")
    link = page.locator("#models a").first
    model_id = link.inner_text()
    link.click()
    assert page.inner_text("h1") == f"Model card: {model_id}"  # the English card

    # The origin, kept in the card as a sentence, in the page's language (the card's
    # JSON holds its English text too).
    card = json.loads((site["registry"] / model_id / "model_card.json").read_text())
    french = _page(browser)
    french.goto(f"{site['url']}/registry")
    shown = french.inner_text("#models tr:nth-child(2) td:nth-child(3)")
    assert shown == i18n.translate(i18n.from_record(card["data"]["origin_sentence"]), "fr")
    assert shown != card["data"]["origin"]


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
