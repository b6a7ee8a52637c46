"""Poisoning: the attacks do what they say, the simulation runner plants them, and the
ministry's defences hold (validation rejects boosted updates in every mode; a robust
aggregator resists what passes validation, where plain FedAvg does not)."""

from __future__ import annotations

import json
import logging
import os
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.supercore.logger import FLOWER_LOGGER

from client.federation.app import build_client_app
from common.config import RunConfig
from common.schema import LABEL
from simulations.attacks import PoisonMod, attack_mods, malicious_centres, poison
from simulations.direct_grid import run_direct
from simulations.network import generate_network, write_network
from simulations.runner import run_scenario
from simulations.scenario import AttackSpec, load_scenario
from tests.server.messages import instruction

GLOBAL = {"w": torch.tensor([1.0, 1.0]), "b": torch.tensor([0.0])}
HONEST = OrderedDict(w=torch.tensor([1.5, 0.0]), b=torch.tensor([2.0]))  # update (0.5, -1, 2)


def _values(weights: dict[str, torch.Tensor]) -> list[float]:
    return [*weights["w"].tolist(), *weights["b"].tolist()]


@pytest.mark.parametrize(
    ("kind", "scale", "expected"),
    [("sign-flip", 1.0, [0.5, 2.0, -2.0]), ("sign-flip", 10.0, [-4.0, 11.0, -20.0]),
     ("scale", 10.0, [6.0, -9.0, 20.0])],
)
def test_model_poisoning_transforms_the_honest_update(kind, scale, expected) -> None:
    bad = poison(kind, HONEST, GLOBAL, scale, np.random.default_rng(0))

    assert _values(bad) == pytest.approx(expected)


def test_a_random_update_has_the_honest_norm_times_the_scale() -> None:
    bad = poison("random", HONEST, GLOBAL, 2.0, np.random.default_rng(0))

    update = np.array(_values(bad)) - np.array([1.0, 1.0, 0.0])
    assert np.linalg.norm(update) == pytest.approx(2 * np.linalg.norm([0.5, -1.0, 2.0]))


def test_the_malicious_centres_are_a_fixed_share_drawn_from_the_seed() -> None:
    spec = AttackSpec(kind="sign-flip", fraction=0.2)

    chosen = malicious_centres(spec, 12)

    assert len(chosen) == 2 and chosen == malicious_centres(spec, 12)
    assert malicious_centres(AttackSpec(kind="none", fraction=0.5), 12) == []


def test_label_flip_writes_a_flipped_copy_outside_the_data_folder(tmp_path: Path) -> None:
    data = tmp_path / "data"
    files = write_network(generate_network(centres=2, students=400, seed=1), data)

    mods, centres = attack_mods(AttackSpec(kind="label-flip", fraction=0.5), files, tmp_path)

    flipped = mods[0].flipped[centres[0]]
    assert flipped.parent == tmp_path / "attack"
    original, copy = pd.read_parquet(files[centres[0]]), pd.read_parquet(flipped)
    labelled = original[LABEL].notna()
    assert (copy.loc[labelled, LABEL] != original.loc[labelled, LABEL]).all()


def _context(partition: int) -> Context:
    return Context(run_id=1, node_id=partition, node_config={"partition-id": partition},
                   state=RecordDict(), run_config={})


def _train_message() -> Message:
    message = instruction("r1-x", 1, ArrayRecord(OrderedDict(GLOBAL)))
    return message


def _honest_app(msg: Message, context: Context) -> Message:
    content = RecordDict({"arrays": ArrayRecord(HONEST),
                          "metrics": MetricRecord({"num-examples": 10})})
    return Message(content, reply_to=msg)


def test_the_mod_poisons_only_the_chosen_centres_training_replies() -> None:
    mod = PoisonMod(AttackSpec(kind="sign-flip", fraction=0.5, scale=1.0), [1])

    attacked = mod(_train_message(), _context(1), _honest_app)
    honest = mod(_train_message(), _context(0), _honest_app)

    assert _values(attacked.content["arrays"].to_torch_state_dict()) == pytest.approx(
        [0.5, 2.0, -2.0])
    assert _values(honest.content["arrays"].to_torch_state_dict()) == pytest.approx(
        [1.5, 0.0, 2.0])
    assert attacked.metadata.group_id == "r1-x"  # still answers the current version


# ---------------------------------------------------------------- defences, in process

@pytest.fixture(scope="module")
def ten_centres(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("ten-centres")
    write_network(generate_network(centres=10, students=8000, seed=3), folder)
    # Research runs without DP and with batches drawn from the run's seed: the simulated
    # centres lower their floor, explicitly.
    (folder / "policy.toml").write_text(
        "[privacy]\nrequire_dp = false\nallow_replayable_noise = true\n", encoding="utf-8")
    return folder


def _federate(data: Path, out: Path, aggregation: str, attack: AttackSpec,
              bound: float = 12.0) -> dict[str, object]:
    """Five rounds over ten centres, in process (no DP: the comparison is about the
    aggregators, and it is deterministic enough without the noise)."""
    FLOWER_LOGGER.setLevel(logging.ERROR)
    config = RunConfig.from_flat({
        "scenario": "attack-test", "rounds": 5, "local_epochs": 1, "min_centres": 2,
        "run_dir": str(out), "data_dir": str(data), "privacy.dp": False,
        "training.hidden": "32", "strategy.aggregation": aggregation,
        "training.max_update_norm": bound,
        # Batches drawn from the run's seed: the AUC comparisons must not depend on a draw.
        "privacy.reproducible_noise": True,
    })
    files = sorted(data.glob("*.parquet"))
    mods, _ = attack_mods(attack, files, out)
    run_direct(config, len(files), build_client_app(mods))
    return dict(json.loads((out / "summary.json").read_text()))


SIGN_FLIP_X10 = AttackSpec(kind="sign-flip", fraction=0.2, scale=10.0)
UNBOUNDED = 1e6  # a federation whose centres do not bound their updates


@pytest.fixture(scope="module")
def clean_auc(ten_centres: Path, tmp_path_factory: pytest.TempPathFactory) -> float:
    summary = _federate(ten_centres, tmp_path_factory.mktemp("clean"), "fedavg", AttackSpec())
    return float(summary["auc_pooled"])  # type: ignore[arg-type]


@pytest.mark.slow
def test_unbounded_fedavg_collapses_under_20_percent_sign_flip_x10(
    ten_centres, clean_auc, tmp_path
) -> None:
    summary = _federate(ten_centres, tmp_path, "fedavg", SIGN_FLIP_X10, UNBOUNDED)

    assert float(summary["auc_pooled"]) < clean_auc - 0.1  # type: ignore[arg-type]


@pytest.mark.slow
def test_multi_krum_keeps_the_clean_auc_under_the_same_attack(
    ten_centres, clean_auc, tmp_path
) -> None:
    summary = _federate(ten_centres, tmp_path, "multi-krum", SIGN_FLIP_X10, UNBOUNDED)

    assert abs(float(summary["auc_pooled"]) - clean_auc) <= 0.03  # type: ignore[arg-type]


@pytest.mark.slow
def test_the_update_bound_protects_even_plain_fedavg(ten_centres, clean_auc, tmp_path) -> None:
    summary = _federate(ten_centres, tmp_path, "fedavg", SIGN_FLIP_X10)

    assert summary["updates_rejected"] >= 1
    assert abs(float(summary["auc_pooled"]) - clean_auc) <= 0.03  # type: ignore[arg-type]


# ---------------------------------------------------------------- the runner plants it

@pytest.mark.slow
def test_the_simulation_runner_plants_the_attack_and_the_ministry_rejects_it(
    tmp_path: Path,
) -> None:
    os.environ.setdefault("RAY_TMPDIR", f"/tmp/prs-ray-atk-{os.getpid()}")
    scenario = load_scenario("tiny", ["baselines.enabled=false", "attack.kind=scale",
                                      "attack.fraction=0.34", "attack.scale=10",
                                      "min_centres=2"])

    run_dir = run_scenario(scenario, tmp_path / "run")

    summary = json.loads((run_dir / "summary.json").read_text())
    chosen = malicious_centres(scenario.attack, 3)
    assert summary["attack"] == {"kind": "scale", "fraction": 0.34, "malicious_centres": chosen}
    rounds = [json.loads(line) for line in (run_dir / "rounds.jsonl").open()]
    assert [len(r["rejections"]) for r in rounds] == [1, 1]  # the boosted centre, each round
    assert all("beyond the bound" in r["rejections"][0] for r in rounds)
    assert summary["rounds_completed"] == 2 and [r["updates"] for r in rounds] == [2, 2]
