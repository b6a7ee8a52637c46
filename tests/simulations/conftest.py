"""One tiny federation, run as a user runs it (``perseverance-sim run --scenario tiny``),
shared by the tests that check its outcome (test_end_to_end), the test that compares it
with the same run on a Ray cluster (test_ray_cluster) and the console's real runs
(tests/server; the fixture ``tiny_run`` is tests/conftest.py's), its output in French (the
default): the noise is drawn from the run's
seed (``privacy.reproducible_noise``) so that a second run gives the same result."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

SIM = Path(sys.executable).with_name("perseverance-sim")
TINY_RUN = ["--scenario", "tiny", "--set", "privacy.reproducible_noise=true",
            "--set", "centre_policy.allow_replayable_noise=true"]


@dataclass(frozen=True)
class TinyRun:
    out: Path
    proc: subprocess.CompletedProcess[str]
    ray_tmp: Path


def make_tiny_run(tmp_path_factory: pytest.TempPathFactory) -> TinyRun:
    """The run of the session fixture ``tiny_run`` (tests/conftest.py: also the console's
    real runs' tiny run, tests/server/test_console_real_runs.py)."""
    base = tmp_path_factory.mktemp("sim")
    ray_tmp = Path(f"/tmp/prs-ray-{os.getpid()}")
    env = {**os.environ, "RAY_TMPDIR": str(ray_tmp), "FLWR_HOME": str(base / "flwr")}
    out = base / "run"
    proc = subprocess.run([str(SIM), "run", *TINY_RUN, "--out", str(out)], env=env,
                          capture_output=True, text=True, timeout=400, check=False)
    return TinyRun(out, proc, ray_tmp)


def assert_every_region_placed(run_dir: Path) -> None:
    """The equity audit placed each centre in its region (the centres name themselves in
    their evaluation replies; the generated centres.json places them): each region is
    shown (three centres or more) or suppressed, never both."""
    equity = json.loads((run_dir / "equity.json").read_text(encoding="utf-8"))
    manifest = json.loads((run_dir / "data" / "centres.json").read_text(encoding="utf-8"))
    shown = set(equity["groups"]["region"])
    hidden = {cell.split("=", 1)[1] for cell in equity["suppressed"]
              if cell.startswith("region=")}
    assert shown | hidden == {centre["region"] for centre in manifest}
    assert not shown & hidden
    for metrics in equity["groups"]["region"].values():
        assert metrics["centres"] >= 3 and metrics["n"] >= 10
