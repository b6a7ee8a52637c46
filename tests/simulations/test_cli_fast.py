"""The commands answer ``--help`` and a wrong option at once: they import what they run
inside their functions, so that a user reading the help does not wait 9-31 s for torch,
Opacus, scikit-learn, pandas or Flower (issue 28). Checked without a clock: each command
runs in a fresh interpreter that reports, when it exits, which heavy packages it loaded.
Timings: docs/BENCHMARKS.md, "Command start-up"."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("torch", "opacus", "sklearn", "scipy", "pandas", "numpy", "flwr", "ray")
COMMANDS = {
    "perseverance-sim": "simulations.cli",
    "perseverance-client": "client.cli",
    "perseverance-server": "server.cli",
}
# Runs the command's main() as its console script does, then prints the heavy packages
# in sys.modules, whatever the command's exit.
WRAPPER = """
import atexit, json, sys
heavy, module, args = json.loads(sys.argv[1])
def report():
    print("HEAVY=" + json.dumps(sorted(h for h in heavy if h in sys.modules)), file=sys.stderr)
atexit.register(report)
sys.argv = [module, *args]
__import__(module, fromlist=["main"]).main()
"""


def _heavy_loaded(module: str, args: list[str]) -> tuple[int, list[str]]:
    done = subprocess.run(
        [sys.executable, "-c", WRAPPER, json.dumps([HEAVY, module, args])],
        capture_output=True, text=True, timeout=120, check=False,
    )
    line = next(x for x in done.stderr.splitlines() if x.startswith("HEAVY="))
    return done.returncode, json.loads(line.removeprefix("HEAVY="))


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_help_loads_no_heavy_package(command: str) -> None:
    code, heavy = _heavy_loaded(COMMANDS[command], ["--help"])

    assert (code, heavy) == (0, [])


@pytest.mark.parametrize(("command", "args"), [
    ("perseverance-sim", ["run", "--help"]),
    ("perseverance-sim", ["run", "--no-such-option"]),
    ("perseverance-sim", ["dev-federation", "--rounds", "many"]),
    ("perseverance-client", ["score", "--help"]),
    ("perseverance-client", ["validate"]),
    ("perseverance-client", ["ledger", "--no-such-option"]),
    ("perseverance-server", ["audit", "--help"]),
])
def test_a_subcommand_help_or_usage_error_loads_no_heavy_package(
    command: str, args: list[str],
) -> None:
    code, heavy = _heavy_loaded(COMMANDS[command], args)

    assert code in (0, 2)
    assert heavy == []
