"""Code approval on loopback, with the real SuperLink, nginx, SuperNodes and the centres'
own ClientApp runtime: an app a centre did not approve is refused with a clear log line
and an error reply, and none of its code runs there; once the centre approves it, it
runs there (and still not at the other centre); modified by one line, it is refused
there again. That the app the launcher pre-approves trains is ``test_devfed.py``'s (same
launcher, same runtime), not repeated here."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from client.federation.runtime_task import APP_NOT_APPROVED
from server.deployment import programs as deployment
from simulations.loopback.launcher import _flwr
from simulations.loopback.restart import LoopbackFederation
from simulations.loopback.sides import project_fab_hash
from simulations.network import generate_network, write_network

pytestmark = pytest.mark.slow
STEP_TIMEOUT = 240.0

# A small Flower app that is not the project's: its ClientApp module leaves a file
# behind as soon as it is imported, so the marker says where its code ran.
PROBE_PYPROJECT = """\
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "probe"
version = "1.0.0"
dependencies = []

[tool.flwr.app]
publisher = "tests"

[tool.flwr.app.components]
serverapp = "probe_server:app"
clientapp = "probe_client:app"

[tool.flwr.app.config]
out = ""
"""
PROBE_CLIENT = """\
from pathlib import Path

# Runs at import: the centre's runtime must refuse before this line can.
(Path({markers!r}) / Path.cwd().name).write_text({version!r})

from flwr.app import Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

app = ClientApp()


@app.query()
def query(msg, context):
    return Message(RecordDict({{"probe": MetricRecord({{"ran": 1}})}}), reply_to=msg)
"""
PROBE_SERVER = """\
import json
from pathlib import Path

from flwr.app import ConfigRecord, Message, RecordDict
from flwr.serverapp import Grid, ServerApp

app = ServerApp()


@app.main()
def main(grid: Grid, context) -> None:
    messages = [Message(RecordDict({"ask": ConfigRecord({"x": 1})}), dst_node_id=node,
                        message_type="query") for node in grid.get_node_ids()]
    replies = [{"node": r.metadata.src_node_id,
                "error": [r.error.code, r.error.reason] if r.has_error() else None}
               for r in grid.send_and_receive(messages, timeout=120)]
    Path(context.run_config["out"]).write_text(json.dumps(replies))
"""


def _probe_app(folder: Path, markers: Path, version: str = "original") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pyproject.toml").write_text(PROBE_PYPROJECT)
    (folder / "probe_client.py").write_text(
        PROBE_CLIENT.format(markers=str(markers), version=version))
    (folder / "probe_server.py").write_text(PROBE_SERVER)
    return folder


def _run_probe(federation: LoopbackFederation, app: Path, out: Path) -> list[dict]:
    answer = _flwr(["run", str(app), deployment.OPERATOR_CONNECTION,
                    "--run-config", f"out='{out}'"], federation.env)
    assert answer.get("success") is True, answer
    federation.follow(int(str(answer["run-id"])), timeout=STEP_TIMEOUT)
    return list(json.loads(out.read_text()))


def _approve(app: Path, state: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from client.cli import main; main()", "app", "approve",
         str(app), "--state", str(state), "--note", "reviewed by the test"],
        capture_output=True, text=True, timeout=60, check=False,
    )


def _wait_for_log(path: Path, text: str) -> str:
    deadline = time.monotonic() + 30
    while text not in (log := path.read_text(errors="replace")):
        assert time.monotonic() < deadline, log[-2000:]
        time.sleep(0.5)
    return log


def test_a_centre_runs_only_the_apps_it_approved(nginx: str, tmp_path: Path) -> None:
    run_dir, work, markers = tmp_path / "run", tmp_path / "work", tmp_path / "markers"
    markers.mkdir()
    files = write_network(generate_network(centres=2, students=1200, seed=5), run_dir / "data")
    probe = _probe_app(tmp_path / "probe", markers)
    digest = project_fab_hash(probe)
    with LoopbackFederation(files, run_dir, work, echo=lambda line: None) as federation:
        first, second = federation.centres
        state = {c: work / "state" / "centres" / c for c in federation.centres}

        refused = _run_probe(federation, probe, tmp_path / "refused.json")

        assert len(refused) == 2
        assert all(r["error"][0] == APP_NOT_APPROVED and digest in r["error"][1]
                   for r in refused), refused
        assert list(markers.iterdir()) == []  # its module was never imported
        for centre in federation.centres:
            log = _wait_for_log(run_dir / "logs" / f"clientapp-executor-{centre}.log",
                                "Refused run")
            assert f"the FAB {digest} is not on its list" in log
            assert not list((state[centre] / "flwr-home").glob(f"apps/*{digest}*"))

        approval = _approve(probe, state[first])
        assert approval.returncode == 0 and digest in approval.stdout, approval.stderr
        mixed = _run_probe(federation, probe, tmp_path / "mixed.json")

        inventory = json.loads((work / "inventory.json").read_text())["centres"]
        node = {e["centre"]: int(e["node_id"]) for e in inventory}
        by_node = {r["node"]: r["error"] for r in mixed}
        assert by_node[node[first]] is None, mixed  # a plain reply: it ran
        assert by_node[node[second]][0] == APP_NOT_APPROVED, mixed
        # It ran at the approving centre only.
        assert [p.name for p in markers.iterdir()] == [first]

        _probe_app(probe, markers, version="modified")  # one changed line, a new hash
        modified_digest = project_fab_hash(probe)
        modified = _run_probe(federation, probe, tmp_path / "modified.json")

        assert [r["error"][0] for r in modified] == [APP_NOT_APPROVED] * 2, modified
        assert all(modified_digest in r["error"][1] for r in modified)
        assert (markers / first).read_text() == "original"  # the modified code never ran
        assert [p.name for p in markers.iterdir()] == [first]
