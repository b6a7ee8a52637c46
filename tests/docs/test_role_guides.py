"""The role guides (docs/guides/) say what runs: French first, English beside with the
same commands; every link leads to a file; the README points to them; and the bash
blocks of the centre's and the researcher's guides run, as written, in a fresh home
folder where the clone is ``~/perseverance`` (slow: each starts simulated federations).

Every ``perseverance-*`` call of the guides is also checked against the commands
themselves by tests/deploy/test_guides_commands.py."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.docs.guides import GUIDES, PAIRS, ROOT, RUN, blocks, commands, links, script

DOCS = ROOT / "docs"
TIMEOUT = 1800  # seconds per guide: two to four simulated federations on a loaded 2-core machine


@pytest.mark.parametrize(("french", "english"), PAIRS.items())
def test_each_guide_is_french_first_with_its_english_twin_and_the_same_commands(
        french: str, english: str) -> None:
    fr_text = (GUIDES / french).read_text(encoding="utf-8")
    en_text = (GUIDES / english).read_text(encoding="utf-8")

    assert f"*English: [{english}]({english}).*" in fr_text
    assert f"*Français : [{french}]({french}).*" in en_text
    assert [(commands(b), b.runs) for b in blocks(GUIDES / french)] == [
        (commands(b), b.runs) for b in blocks(GUIDES / english)]
    assert blocks(GUIDES / french)
    fr_titles = re.findall(r"^## (.*)$", fr_text, re.M)
    en_titles = re.findall(r"^## (.*)$", en_text, re.M)
    assert len(fr_titles) == len(en_titles) and all(
        f != e for f, e in zip(fr_titles, en_titles, strict=True))


def test_the_run_guides_have_blocks_that_run_and_blocks_that_say_why_not() -> None:
    for name in RUN:
        found = blocks(GUIDES / name)
        assert sum(b.runs for b in found) >= 5, name
        assert "perseverance-" in script(GUIDES / name)
    skipped = [b for b in blocks(GUIDES / "centre.md") if not b.runs]
    assert any("make install" in b.text for b in skipped)
    assert any("docker compose" in b.text for b in skipped)


def _pages() -> list[Path]:
    return [*sorted(GUIDES.glob("*.md")), *sorted((DOCS / "reference").glob("*.md")),
            *sorted((DOCS / "measurements").glob("*.md")), DOCS / "PRIVACY.md",
            DOCS / "BENCHMARKS.md", ROOT / "README.md"]


@pytest.mark.parametrize("page", _pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_leads_to_a_file(page: Path) -> None:
    missing = [link for link, target in links(page) if not target.exists()]
    assert not missing, f"{page.relative_to(ROOT)}: {missing}"


def test_the_readme_points_to_the_three_guides_french_first() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for french, english in PAIRS.items():
        fr_at = readme.index(f"(docs/guides/{french})")
        assert fr_at < readme.index(f"(docs/guides/{english})"), french


def _summary_keys_documented() -> set[str]:
    keys: set[str] = set()
    for name in ("summary-json.md", "summary-json.en.md"):
        text = (DOCS / "reference" / name).read_text(encoding="utf-8")
        rows = {row.split("|")[1] for row in text.splitlines() if row.startswith("| `")}
        found = {key for row in rows for key in re.findall(r"`([a-z_]+)`", row)}
        assert not keys or found == keys, name  # the two languages name the same keys
        keys = found
    return keys


def _run(guide: str, home: Path) -> subprocess.CompletedProcess[str]:
    home.mkdir()
    (home / "perseverance").symlink_to(ROOT)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("LC_", "VIRTUAL_ENV", "FLWR_HOME", "PERSEVERANCE_"))}
    env.update(HOME=str(home), LANG="C.UTF-8", COLUMNS="80", FLWR_TELEMETRY_ENABLED="0",
               FLWR_DISABLE_UPDATE_CHECK="1", RAY_USAGE_STATS_ENABLED="0",
               PATH=os.defpath)  # the guide's `source .../activate` must bring the commands
    env.setdefault("RAY_TMPDIR", tempfile.mkdtemp(prefix="ray-", dir="/tmp"))
    process = subprocess.Popen(["bash", "-c", script(GUIDES / guide)], cwd=home, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True)
    try:
        output, _ = process.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGTERM)  # the process group this test started
        output, _ = process.communicate()
        pytest.fail(f"{guide}: not done in {TIMEOUT} s\n{output[-6000:]}")
    return subprocess.CompletedProcess(process.args, process.returncode, output)


@pytest.mark.slow
@pytest.mark.timeout(TIMEOUT + 120)
def test_the_centre_guide_runs_as_written(tmp_path: Path) -> None:
    started = time.monotonic()
    done = _run("centre.md", tmp_path / "home")
    assert done.returncode == 0, done.stdout[-8000:]
    trial = tmp_path / "home" / "essai"
    assert (trial / "soutien" / "support-priorities.xlsx").stat().st_size > 0
    assert json.loads((trial / "federation" / "state" / "centre-0" / "approved-apps.json")
                      .read_text("utf-8"))
    assert "Registres intacts" in done.stdout
    assert "Utilisable" in done.stdout  # validate's verdict, in French
    summary = json.loads((trial / "federation" / "summary.json").read_text("utf-8"))
    undocumented = set(summary) - _summary_keys_documented()
    assert not undocumented, f"docs/reference/summary-json*.md lack {sorted(undocumented)}"
    print(f"centre guide: {time.monotonic() - started:.0f} s")


@pytest.mark.slow
@pytest.mark.timeout(TIMEOUT + 120)
def test_the_research_guide_runs_as_written(tmp_path: Path) -> None:
    started = time.monotonic()
    done = _run("recherche.md", tmp_path / "home")
    assert done.returncode == 0, done.stdout[-8000:]
    runs = tmp_path / "home" / "recherche" / "runs"
    summary = json.loads((runs / "petit-eps1" / "summary.json").read_text("utf-8"))
    assert summary["epsilon_target"] == 1.0 and summary["rounds_completed"] == 2
    assert (runs / "balayage" / "sweep.json").is_file()
    assert (runs / "annees" / "years.json").is_file()
    assert (runs / "petit-eps1" / "report.html").is_file()
    print(f"research guide: {time.monotonic() - started:.0f} s")
