"""A research run that asks the simulated centres for less than their privacy floor is
refused by every one of them, as a user sees it: ``perseverance-sim`` ends with exit 3
and one sentence naming the refusals; lowering the floor says so explicitly."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from common.i18n.catalogue import translate
from common.protocol import Reason
from tests.simulations.conftest import SIM
from tests.simulations.test_quiet_terminal import assert_french_and_plain


@pytest.mark.slow
def test_a_run_without_dp_is_refused_by_every_centre_and_ends_in_exit_3(tmp_path: Path) -> None:
    env = {**os.environ, "RAY_TMPDIR": f"/tmp/prs-ray-floor-{os.getpid()}",
           "FLWR_HOME": str(tmp_path / "flwr")}
    out = tmp_path / "run"

    proc = subprocess.run(
        [str(SIM), "run", "--scenario", "tiny", "--set", "rounds=1", "--set", "privacy.dp=false",
         "--set", "baselines.enabled=false", "--out", str(out)],
        env=env, capture_output=True, text=True, timeout=400, check=False)

    assert proc.returncode == 3, proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    summary = json.loads((out / "summary.json").read_text())
    names = sorted(p.stem for p in (out / "data").glob("*.parquet"))
    assert set(summary["centres_refused"]) == set(names)
    # The stop reason is shown in the command's language (French by default), the
    # centres' fixed reason translated inside it.
    assert last.startswith("erreur : La fédération s'est arrêtée après 0 rondes sur 1")
    assert all(name in last for name in names)
    assert translate(Reason.FLOOR_NO_DP, "fr") in last
    assert not list((out / "state").glob("centre-*/privacy-ledger.sqlite"))
    # Nothing English before it (Flower's WARNING lines are in logs/simulation.log), and
    # no colour code in a pipe (issue 28).
    assert_french_and_plain(proc.stdout + proc.stderr)
    assert "WARNING" in (out / "logs" / "simulation.log").read_text(encoding="utf-8")
