"""A hostile centre's weight in secure mode (issue 27, point 3): SecAgg+ sums each
centre's ``[w, w x update]`` under masks, so a centre claiming a huge weight would be
the aggregate (its update over everyone's, the honest updates divided away). The
ministry cannot clip a weight inside the sum; it checks the declared weights against
the cap and the weight unmasked with the sum against the declared ones, and rejects
the round (model unchanged).

The attacks run the real SecAgg+ (``secaggplus_mod`` at every centre, the ministry's
``SecureFedAvg`` and workflow) in one process (``simulations.direct_grid``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from flwr.app import Context, Message
from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS, Key, Stage

from client.federation.secure import build_secure_app
from common.config import RunConfig
from common.model import ModelConfig, build_model, read_model
from server import run_folder
from server.federation.secure import run_secure_federation
from simulations.direct_grid import DirectGrid
from simulations.network import generate_network, write_network

HOSTILE = 0  # the partition of the hostile centre
CAP = 30_000  # privacy.secagg_max_weight's default
NUM_EXAMPLES = "fitres.num_examples"  # where a legacy fit reply carries its weight


def _training_fit(msg: Message, context: Context) -> bool:
    """A training fit instruction to the hostile centre (not a secure evaluation)."""
    config = msg.content.config_records.get("fitins.config")
    return (config is not None and "secure.phase" not in config and "phase" not in config
            and int(str(context.node_config["partition-id"])) == HOSTILE)


def _set_weight(reply: Message, weight: float) -> None:
    reply.content.metric_records[NUM_EXAMPLES]["num_examples"] = weight


class ClaimWeight:
    """Inside ``secaggplus_mod``: the hostile centre's training reply claims ``weight``
    examples, so SecAgg+ puts that weight into its masked vector (and the clear one)."""

    def __init__(self, weight: float) -> None:
        self.weight = weight

    def __call__(self, msg: Message, context: Context, call_next: Any) -> Message:
        reply = call_next(msg, context)
        if _training_fit(msg, context) and not reply.has_error():
            _set_weight(reply, self.weight)
        return reply


class DeclareWeight:
    """Outside ``secaggplus_mod``: the hostile centre's masked-vector reply tells the
    ministry ``weight`` in the clear, whatever its masked vector holds."""

    def __init__(self, weight: float) -> None:
        self.weight = weight

    def __call__(self, msg: Message, context: Context, call_next: Any) -> Message:
        configs = msg.content.config_records.get(RECORD_KEY_CONFIGS)
        # Read before the call: secaggplus_mod pops the stage from the instruction.
        masked_stage = configs is not None and configs.get(Key.STAGE) == \
            Stage.COLLECT_MASKED_VECTORS
        reply = call_next(msg, context)
        if masked_stage and _training_fit(msg, context) and not reply.has_error():
            _set_weight(reply, self.weight)
        return reply


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("secure-weights-network")
    write_network(generate_network(centres=3, students=3000, seed=5), data)
    # Every centre takes part, the hostile one included (no draw of its noisy size).
    (data / "policy.toml").write_text("min_records = 0\n", encoding="utf-8")
    return data


def _run(network: Path, out: Path, outer: list[Any], inner: list[Any]) -> RunConfig:
    config = RunConfig.from_flat({
        "rounds": 1, "min_centres": 3, "scenario": "tiny", "run_dir": str(out),
        "data_dir": str(network), "privacy.secure_aggregation": True,
        "privacy.reproducible_noise": False})
    app = build_secure_app(outer_mods=outer, inner_mods=inner)
    run_secure_federation(DirectGrid(app, 3, dict(config.to_flat())), config)
    return config


def _moved(config: RunConfig, out: Path) -> float:
    """How far the run moved the model from its start (largest coordinate)."""
    initial = build_model(ModelConfig(hidden=config.training.hidden_sizes), seed=config.seed)
    final = read_model(out / "model.pt")
    return max(float(np.abs((f.double() - i.double()).numpy()).max()) for f, i in
               zip(final.state_dict().values(), initial.state_dict().values(), strict=True))


@pytest.mark.slow
@pytest.mark.parametrize(("outer", "inner", "reason"), [
    # The weight in the masked vector and in the clear: 1,000 times the cap, so that its
    # update (weighted, clipped per coordinate) outweighs the others' a thousand times.
    ([], [ClaimWeight(1000.0 * CAP)], "outside [1, 30000]"),
    # The same weight hidden in the masked vector, an ordinary one declared in the clear.
    ([DeclareWeight(2_000.0)], [ClaimWeight(1000.0 * CAP)], "inside the masked sum"),
], ids=["declared", "hidden"])
def test_a_centre_claiming_a_huge_weight_in_a_secure_run_leaves_the_model(
        network: Path, tmp_path: Path, outer: list[Any], inner: list[Any],
        reason: str) -> None:
    config = _run(network, tmp_path / "run", outer, inner)

    rounds = run_folder.read_rounds(tmp_path / "run")
    assert rounds[0]["updates"] == 0
    assert any(reason in r for r in rounds[0]["rejections"]), rounds[0]["rejections"]
    assert _moved(config, tmp_path / "run") == 0.0


@pytest.mark.slow
def test_an_honest_secure_round_passes_the_weight_checks(network: Path, tmp_path: Path) -> None:
    config = _run(network, tmp_path / "run", [], [])

    rounds = run_folder.read_rounds(tmp_path / "run")
    assert rounds[0]["updates"] == 3 and rounds[0]["rejections"] == []
    assert _moved(config, tmp_path / "run") > 1e-3
