#!/usr/bin/env python3
"""Screenshots of the operations console and of the model card (docs/CONSOLE.md,
docs/TRANSPARENCY.md), taken on real runs: ``make screenshots``.

    python tools/screenshots.py [--out docs/figures] [--work DIR] [--no-deployment]

From the project's root, in its virtual environment (``make install``), with Debian's
chromium (``deploy/install-test-browser.sh``) and, for the federation page, nginx:

1. unless ``--no-deployment``, the real deployment on loopback
   (``perseverance-sim dev-federation --centres 3 --rounds 2``): enrolled centres (the
   federation page's inventory) and a run folder of the deployment;
2. the console (``perseverance-server console`` on a free port of 127.0.0.1) on the run
   folders, an empty registry and that inventory;
3. a real tiny federation (``perseverance-sim run --scenario tiny --set rounds=4``): its
   run page is shot while it runs, once its first round is shown;
4. a run every centre refuses (``privacy.epsilon=5``, above their floor of 3) and a
   multi-year simulation (``perseverance-sim years --years 2``);
5. the finished runs published (``perseverance-server registry publish``), then every
   page shot: ``/``, ``/runs``, ``/runs/<tiny run>``, ``/audit/<tiny run>``,
   ``/runs/<years>``, ``/registry`` and the tiny run's model card (``/registry/<id>``);
6. the console stopped by its PID (and every command run waited for).

Each page is written as ``console-<page>.png`` (the card as ``model-card.png``): 1280
pixels wide, the full page cut at ``MAX_HEIGHT`` (the card at ``CARD_MAX_HEIGHT``), in
French, reduced to a palette of ``COLOURS`` colours (the card ``CARD_COLOURS``) to stay
small (each under 300 KB).
Runs, keys and the registry stay in ``--work`` (a temporary folder, removed unless
given).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from PIL import Image
from playwright.sync_api import Browser, Page, ViewportSize, expect, sync_playwright

from server.deployment.processes import interrupt

VIEWPORT: ViewportSize = {"width": 1280, "height": 900}
MAX_HEIGHT = 2400
# The model card down to its equity audit, in fewer colours (it is long): under 300 KB.
CARD_MAX_HEIGHT, CARD_COLOURS = 4800, 48
COLOURS = 128
RUN_SECONDS = 600
STARTUP_SECONDS = 30.0
TINY = ["--scenario", "tiny", "--set", "rounds=4"]
# Above every simulated centre's privacy floor (3 per run): each refuses at round 1.
REFUSED = ["--scenario", "tiny", "--set", "rounds=2", "--set", "privacy.epsilon=5"]
YEARS = ["--scenario", "tiny", "--years", "2", "--set", "rounds=1", "--set", "privacy.epsilon=8",
         "--set", "centre_policy.max_epsilon_per_run=8"]
DEPLOYMENT = ["--centres", "3", "--rounds", "2"]


def program(name: str) -> str:
    """A command of the project, from the environment running this tool."""
    beside = Path(sys.executable).with_name(name)
    found = str(beside) if beside.is_file() else shutil.which(name)
    if not found:
        sys.exit(f"{name} not found: run this tool with the project's environment (make install)")
    return found


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def run(command: list[str], env: dict[str, str], cwd: Path, log: Path,
        fails: bool = False) -> None:
    """Run one of the project's commands to its end (``fails``: it must fail, as a run
    every centre refuses does); its output goes to ``log``."""
    print("$", " ".join(command), flush=True)
    with log.open("ab") as out:
        done = subprocess.run(command, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                              timeout=RUN_SECONDS, check=False)
    if (done.returncode != 0) != fails:
        sys.exit(f"{command[0]} ended with {done.returncode}: see {log}")


@contextmanager
def started(command: list[str], env: dict[str, str], cwd: Path,
            log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A command running in the background; on the way out, stopped by its PID if it is
    still running (SIGINT, which the project's commands handle; SIGKILL after 30 s)."""
    print("$", " ".join(command), "&", flush=True)
    with log.open("ab") as out:
        process = subprocess.Popen(command, env=env, cwd=cwd, stdout=out,
                                   stderr=subprocess.STDOUT)
    try:
        yield process
    finally:
        interrupt(process)


def wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                sys.exit(f"the console did not start: see {log}")
            time.sleep(0.2)


def wait_until_running(run_dir: Path, process: subprocess.Popen[bytes], log: Path) -> None:
    """Until the run's ServerApp holds its folder's lock (the console says running)."""
    from server.console.runs import lock_held
    from server.federation.checkpoint import LOCK

    deadline = time.monotonic() + RUN_SECONDS
    while not lock_held(run_dir / LOCK):
        if process.poll() is not None or time.monotonic() > deadline:
            sys.exit(f"the tiny federation did not start: see {log}")
        time.sleep(0.1)


def shoot(page: Page, target: Path, max_height: int = MAX_HEIGHT,
          colours: int = COLOURS) -> None:
    """The page as a small PNG (full page, cut at ``max_height``, a palette of
    ``colours``)."""
    raw = target.with_suffix(".raw.png")
    page.screenshot(path=str(raw), full_page=True)
    with Image.open(raw) as shot:
        image = shot.convert("RGB")
    raw.unlink()
    image = image.crop((0, 0, image.width, min(image.height, max_height)))
    image.quantize(colors=colours, method=Image.Quantize.MEDIANCUT).save(target, optimize=True)
    print(f"  {target} {image.width}x{image.height} {target.stat().st_size // 1024} KB",
          flush=True)


def new_page(browser: Browser) -> Page:
    context = browser.new_context(locale="fr-CA", viewport=VIEWPORT)  # French: the default
    context.set_default_timeout(RUN_SECONDS * 1000)
    return context.new_page()


def take(work: Path, out: Path, deployment: bool, inventory: Path | None = None) -> None:
    sim, server = program("perseverance-sim"), program("perseverance-server")
    runs, registry, log = work / "runs", work / "registry", work / "commands.log"
    tiny, loopback = runs / "tiny-4-rounds", runs / "loopback-3-centres"
    refused, years = runs / "tiny-refused", runs / "years-tiny"
    # A --work used again: the simulations anew, published anew; the deployment's run kept.
    for folder in (tiny, refused, years, registry):
        shutil.rmtree(folder, ignore_errors=True)
    runs.mkdir(parents=True, exist_ok=True)
    registry.mkdir()
    ray_tmp = Path(tempfile.mkdtemp(prefix="prs-ray-", dir="/tmp"))  # Ray's socket paths are short
    env = {**os.environ, "FLWR_HOME": str(work / "flwr"), "RAY_TMPDIR": str(ray_tmp),
           "PERSEVERANCE_MINISTRY_KEY": str(work / "ministry-records.key"),
           "FLWR_TELEMETRY_ENABLED": "0", "FLWR_DISABLE_UPDATE_CHECK": "1",
           "RAY_USAGE_STATS_ENABLED": "0"}
    console = [server, "console", "--runs", str(runs), "--registry", str(registry)]
    if deployment:
        if not (loopback / "summary.json").is_file():
            run([sim, "dev-federation", *DEPLOYMENT, "--out", str(loopback),
                 "--work", str(work / "devfed")], env, work, log)
        console += ["--inventory", str(work / "devfed" / "inventory.json")]
    else:
        shutil.rmtree(loopback, ignore_errors=True)
        if inventory is not None:
            console += ["--inventory", str(inventory)]
    port = free_port()
    out.mkdir(parents=True, exist_ok=True)
    try:
        with started([*console, "--port", str(port)], env, work, log) as process, \
                sync_playwright() as driver:
            wait_for_port(port, process, log)
            url = f"http://127.0.0.1:{port}"
            chromium = shutil.which("chromium") or shutil.which("chromium-browser")
            browser = driver.chromium.launch(executable_path=chromium, headless=True,
                                             args=["--no-sandbox", "--disable-gpu"])
            with started([sim, "run", *TINY, "--out", str(tiny)], env, work, log) as federation:
                wait_until_running(tiny, federation, log)
                page = new_page(browser)
                page.goto(f"{url}/runs/{tiny.name}")
                expect(page.locator("#rounds tr").nth(1)).to_be_attached(  # a round landed
                    timeout=RUN_SECONDS * 1000)
                if page.locator("#live-note").is_visible():
                    shoot(page, out / "console-run-live.png")
                else:
                    print("  the run ended before its live page was shot", flush=True)
                if federation.wait(timeout=RUN_SECONDS) != 0:
                    sys.exit(f"the tiny federation failed: see {log}")
            run([sim, "run", *REFUSED, "--out", str(refused)], env, work, log, fails=True)
            run([sim, "years", *YEARS, "--out", str(years)], env, work, log)
            for folder in (tiny, loopback):
                if folder.is_dir():
                    run([server, "registry", "publish", str(folder), "--registry",
                         str(registry)], env, work, log)
            page = new_page(browser)
            card = next(p.name for p in registry.iterdir() if (p / "publication.json").is_file()
                        and json.loads((p / "publication.json").read_text(
                            encoding="utf-8"))["source_run"] == tiny.name)
            for path, name in (("/", "console-federation"), ("/runs", "console-runs"),
                               (f"/runs/{tiny.name}", "console-run"),
                               (f"/audit/{tiny.name}", "console-audit"),
                               (f"/runs/{years.name}", "console-years"),
                               ("/registry", "console-registry"),
                               (f"/registry/{card}", "model-card")):
                page.goto(url + path)
                card_page = name == "model-card"
                shoot(page, out / f"{name}.png", CARD_MAX_HEIGHT if card_page else MAX_HEIGHT,
                      CARD_COLOURS if card_page else COLOURS)
            browser.close()
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--out", type=Path, default=Path("docs/figures"),
                        help="folder for the PNG files (default: docs/figures)")
    parser.add_argument("--work", type=Path, default=None,
                        help="folder for the runs, keys and registry (default: a temporary "
                        "one, removed afterwards)")
    parser.add_argument("--no-deployment", action="store_true",
                        help="skip the loopback deployment (no nginx): the federation page "
                        "then has no inventory")
    parser.add_argument("--inventory", type=Path, default=None,
                        help="with --no-deployment, an inventory of enrolled centres for the "
                        "federation page (an earlier deployment's, e.g. WORK/devfed/"
                        "inventory.json)")
    args = parser.parse_args()
    inventory = args.inventory.resolve() if args.inventory else None
    if args.work is not None:
        args.work.mkdir(parents=True, exist_ok=True)
        take(args.work.resolve(), args.out.resolve(), not args.no_deployment, inventory)
        return
    with tempfile.TemporaryDirectory(prefix="screenshots-") as work:
        take(Path(work), args.out.resolve(), not args.no_deployment, inventory)


if __name__ == "__main__":
    main()
