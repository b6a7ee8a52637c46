"""The run's evaluation schedule (``evaluation.progress_every``) through the real
ServerApp logic and the real ClientApp over ``simulations.direct_grid``: the ministry
asks for the scheduled rounds only, then the audit; a round without evaluation is a
line of ``rounds.jsonl`` without evaluation figures; the centres book what the schedule
priced and nothing else."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from flwr.supercore.logger import FLOWER_LOGGER

from client.federation.app import app as client_app
from client.privacy.ledger import PrivacyLedger
from client.privacy.run_plan import run_history
from common.config import RunConfig
from common.privacy.accounting import composed_epsilon
from server.federation.run import run_federation
from simulations.direct_grid import DirectGrid
from tests.server.conftest import small_network

pytestmark = pytest.mark.federation  # an in-process federation: make test, not test-fast

CENTRES = 3
FLOWER_LOGGER.setLevel(logging.WARNING)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return small_network(tmp_path_factory.mktemp("centres"), CENTRES, 1800, 5)


@pytest.mark.parametrize(("every", "evaluated"), [(2, [2, 4, 5]), (0, [5])])
def test_only_the_scheduled_rounds_are_evaluated_and_booked(tmp_path, data_dir, every,
                                                            evaluated) -> None:
    run_dir = tmp_path / "run"
    config = RunConfig.from_flat({
        "scenario": "schedule-test", "rounds": 5, "local_epochs": 1, "min_centres": 2,
        "training.hidden": "16", "run_dir": str(run_dir), "data_dir": str(data_dir),
        "min_centres_wait": 0.3, "evaluation.progress_every": every})
    run_federation(DirectGrid(client_app, CENTRES, dict(config.to_flat()), 1), config)
    rounds = [json.loads(line) for line in (run_dir / "rounds.jsonl").open()]
    assert [r["round"] for r in rounds] == [1, 2, 3, 4, 5]
    assert [r["round"] for r in rounds if "eval_auc" in r] == evaluated
    assert all(r["train_centres"] == CENTRES for r in rounds)  # every round trains
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["stopped"] is None and summary["auc_pooled"] == rounds[-1]["eval_auc"]
    equity = json.loads((run_dir / "equity.json").read_text())
    assert equity["threshold"] == pytest.approx(config.evaluation.threshold, abs=1e-9)
    for centre in range(CENTRES):
        ledger = PrivacyLedger(run_dir / "state" / f"centre-{centre}")
        booked = [r.server_round for r in ledger.releases() if r.kind == "evaluate"]
        assert booked == [*evaluated, 6]  # the audit after the final round
        spent = composed_epsilon(run_history(ledger, summary["run_name"], "evaluate"), 1e-6)
        assert 0.97 * config.privacy.epsilon <= spent <= config.privacy.epsilon * 1.001
    # The console's live table and charts read a round without evaluation as a gap.
    from starlette.testclient import TestClient

    from server.console.app import ConsoleSettings, create_app

    page = TestClient(create_app(ConsoleSettings(runs=tmp_path))).get("/runs/run/live")
    assert page.status_code == 200
    first = page.text.split('<tr data-round="1">', 1)[1].split("</tr>", 1)[0]
    assert first.count("—") == (0 if 1 in evaluated else 3)  # AUC, PR AUC, Brier
