"""The run's privacy figures as the centres' own ledgers give them, and centres that
refuse a run: the real ServerApp logic and ClientApp over ``simulations.direct_grid``
(no Ray, no SuperLink), plain and secure."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from flwr.app import Context, Message
from flwr.supercore.logger import FLOWER_LOGGER

from client.federation.app import build_client_app
from client.federation.secure import build_secure_app
from client.privacy.ledger import PrivacyLedger
from client.privacy.run_plan import run_history
from common.config import RunConfig
from common.privacy.accounting import composed_epsilon
from common.protocol import Reason
from server.federation.rounds import CentresRefused
from server.federation.run import run_federation
from server.federation.secure import run_secure_federation
from simulations.direct_grid import DirectGrid
from tests.server.conftest import small_network

pytestmark = pytest.mark.federation  # an in-process federation: make test, not test-fast

CENTRES = 4
FLOWER_LOGGER.setLevel(logging.WARNING)


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return small_network(tmp_path_factory.mktemp("run-privacy"), CENTRES, 2400, 13)


class OwnPolicy:
    """Centre ``partition`` configured as in a deployment, with its own data file, state
    folder and policy file (in a simulation the centres share the data folder's)."""

    def __init__(self, partition: int, data: Path, state: Path, policy: Path) -> None:
        self.partition = partition
        self.node = {"data-path": str(data), "state-dir": str(state),
                     "policy-path": str(policy)}

    def __call__(self, msg: Message, context: Context, call_next: Any) -> Message:
        if int(str(context.node_config["partition-id"])) == self.partition:
            context.node_config.update(self.node)
        return call_next(msg, context)


def _config(network: Path, run_dir: Path, **values: object) -> RunConfig:
    return RunConfig.from_flat({"scenario": "privacy-test", "rounds": 2, "local_epochs": 1,
                                "min_centres": 2, "training.hidden": "16",
                                "run_dir": str(run_dir), "data_dir": str(network),
                                "min_centres_wait": 0.3, **values})


def _ledger_epsilons(run_dir: Path, run_name: str, delta: float) -> list[float]:
    """Each centre's per-run epsilon (the larger of training and evaluation, which
    compose in parallel), composed from what its own ledger booked."""
    found = []
    for state in sorted((run_dir / "state").glob("centre-*")):
        ledger = PrivacyLedger(state)
        found.append(max(composed_epsilon(run_history(ledger, run_name, kind), delta)
                         for kind in ("train", "evaluate")))
    return found


@pytest.mark.parametrize(("secure", "distributed"), [(False, False), (True, False), (True, True)],
                         ids=["plain", "secure", "secure-distributed-default-floor"])
def test_epsilon_max_is_the_largest_per_run_epsilon_of_any_centres_ledger(
        network: Path, tmp_path: Path, secure: bool, distributed: bool) -> None:
    """Also when the ministry asks for distributed noise: the centres' default floor
    does not allow it, so each adds the whole noise and its own release stays within
    the target."""
    config = _config(network, tmp_path / "run", **{"privacy.secure_aggregation": secure,
                                                    "privacy.distributed_noise": distributed})
    app = build_secure_app() if secure else build_client_app()
    grid = DirectGrid(app, CENTRES, dict(config.to_flat()))

    (run_secure_federation if secure else run_federation)(grid, config)

    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    epsilons = _ledger_epsilons(tmp_path / "run", summary["run_name"], config.privacy.delta)
    assert len(epsilons) == CENTRES
    assert summary["epsilon_max"] == pytest.approx(max(epsilons), rel=1e-9)
    assert summary["epsilon_max"] <= config.privacy.epsilon * 1.001
    assert summary["centres_refused"] == {}


def test_a_centre_that_refuses_is_named_and_the_run_goes_on_without_it(
        network: Path, tmp_path: Path) -> None:
    strict = tmp_path / "strict.toml"
    strict.write_text("min_records = 20\n[privacy]\nmax_epsilon_per_run = 1.0\n",
                      encoding="utf-8")
    config = _config(network, tmp_path / "run")
    first = sorted(network.glob("*.parquet"))[0]
    state = tmp_path / "run" / "state" / "centre-0"
    app = build_client_app([OwnPolicy(0, first, state, strict)])

    run_federation(DirectGrid(app, CENTRES, dict(config.to_flat())), config)

    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["centres_refused"] == {first.stem: Reason.FLOOR_EPSILON}
    assert summary["rounds_completed"] == 2 and summary["stopped"] is None
    assert not (state / "privacy-ledger.sqlite").exists()  # it released nothing


def test_a_run_every_centre_refuses_stops_in_one_sentence_naming_them(
        network: Path, tmp_path: Path) -> None:
    config = _config(network, tmp_path / "run", **{"privacy.dp": False})

    with pytest.raises(CentresRefused) as info:
        run_federation(DirectGrid(build_client_app(), CENTRES, dict(config.to_flat())), config)

    message = str(info.value)
    names = sorted(p.stem for p in network.glob("*.parquet"))
    assert all(name in message for name in names) and Reason.FLOOR_NO_DP in message
    assert "\n" not in message
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["stopped"] == message and summary["rounds_completed"] == 0
    assert set(summary["centres_refused"]) == set(names)
