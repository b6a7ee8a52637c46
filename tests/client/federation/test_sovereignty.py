"""What the centre guarantees whatever the ministry sends: its privacy floor, refusals in
fixed words, a DP mechanism fixed by public inputs, and the run's budget as its own
ledger books it (issues 12 point 1 and 18)."""

from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, RecordDict

from client.errors import CentreRefusal
from client.federation.app import app as client_app
from client.federation.centre_task import Centre
from client.federation.rounds import centre_plan, open_ledger, train_round
from client.ingest import IngestError, load_policy
from client.ingest.centre_data import CentreData, SitePolicy, load_centre
from client.privacy.run_plan import check_run_budget, plan_for, released_size, run_history
from client.site_policy import PrivacyFloor
from common import protocol
from common.config import RunConfig
from common.model import ModelConfig, build_model
from common.privacy.accounting import composed_epsilon
from common.protocol import Reason, Reply
from simulations.network import generate_network, write_network
from tests.server.messages import instruction

DIGITS = re.compile(r"\d")


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("floor-network")
    write_network(generate_network(centres=2, students=1200, seed=21), folder)
    return folder


def _config(network: Path, run_dir: Path, **values: object) -> RunConfig:
    return RunConfig.from_flat({"rounds": 2, "local_epochs": 1, "training.hidden": "16",
                                "data_dir": str(network), "run_dir": str(run_dir), **values})


def _weights(config: RunConfig) -> OrderedDict[str, torch.Tensor]:
    model = build_model(ModelConfig(hidden=config.training.hidden_sizes), seed=config.seed)
    return OrderedDict(model.state_dict())


def _ask(config: RunConfig, kind: str = "train", server_round: int = 1,
         version: str = "r1-test", node_config: dict[str, object] | None = None) -> Message:
    """What a ministry sends to centre 0, and the ClientApp's reply."""
    message = instruction(version, 1, ArrayRecord(_weights(config)))
    message.metadata.__dict__["_message_type"] = kind
    message.content[protocol.CONFIG] = ConfigRecord(
        protocol.Task("hostile-run", server_round, version).as_config())
    context = Context(run_id=1, node_id=1, state=RecordDict(),
                      node_config=node_config or {"partition-id": 0},
                      run_config=dict(config.to_flat()))
    return client_app(message, context)


# ---------------------------------------------------------------- the privacy floor

@pytest.mark.parametrize(("values", "reason"), [
    ({"privacy.dp": False}, Reason.FLOOR_NO_DP),
    ({"privacy.epsilon": 8.0}, Reason.FLOOR_EPSILON),
    ({"privacy.reproducible_noise": True}, Reason.FLOOR_REPLAYABLE),
    ({"privacy.evaluation_noise": False}, Reason.FLOOR_EVALUATION),
    ({"privacy.accountant": "prv"}, Reason.FLOOR_ACCOUNTANT),
])
def test_a_run_below_the_floor_is_refused_before_any_record_is_read(
        values: dict[str, object], reason: str, tmp_path: Path) -> None:
    # The data file named does not exist: a floor refusal comes before any reading.
    config = _config(tmp_path / "no-data", tmp_path / "run", **values)
    node = {"data-path": str(tmp_path / "css-absent.csv"), "state-dir": str(tmp_path / "s")}

    reply = _ask(config, node_config=node)

    assert reply.has_error() and reply.error.code == Reply.FLOOR
    assert reply.error.reason == f"css-absent: {reason}"
    events = (tmp_path / "s" / "audit.jsonl").read_text()
    assert '"task_refused"' in events and str(int(Reply.FLOOR)) in events
    assert not (tmp_path / "s" / "privacy-ledger.sqlite").exists()  # nothing booked


def test_the_floor_is_the_centres_own_in_its_policy_file(tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text("[privacy]\nrequire_dp = false\nmax_epsilon_per_run = 8\n"
                      "delta = 1e-7\n", encoding="utf-8")

    floor = load_policy(policy).privacy

    assert floor == PrivacyFloor(require_dp=False, delta=1e-7, max_epsilon_per_run=8.0)
    floor.check(RunConfig.from_flat({"privacy.dp": False}))  # lowered: accepted
    with pytest.raises(CentreRefusal):
        floor.check(RunConfig.from_flat({"privacy.epsilon": 9.0}))


@pytest.mark.parametrize("table", [
    "[privacy]\nrequire_dp = 1\n", "[privacy]\ndelta = 0.5\n", "[privacy]\nepsilon = 3\n",
    "[privacy]\nmax_epsilon_per_run = -1\n", "privacy = 3\n",
])
def test_a_bad_privacy_table_is_refused_in_one_sentence(table: str, tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(table, encoding="utf-8")

    with pytest.raises(IngestError) as info:
        load_policy(policy)

    assert "privacy" in str(info.value) and "\n" not in str(info.value)


def test_every_release_is_booked_at_the_centres_delta_whatever_the_run_says(
        network: Path, tmp_path: Path) -> None:
    config = _config(network, tmp_path / "run", **{"privacy.delta": 1e-4})

    assert not _ask(config).has_error()
    assert not _ask(config, "evaluate").has_error()

    ledger = open_ledger(config, {"partition-id": 0})
    assert {r.delta for r in ledger.releases()} == {PrivacyFloor().delta}
    # The noise was calibrated at the smaller delta (the centre's): the whole run's
    # plan stays within the target there, and spends less at the run's larger delta.
    plan = centre_plan(config, load_centre(str(sorted(network.glob("*.parquet"))[0])),
                       "hostile-run", open_ledger(config, {"partition-id": 0}).path.parent,
                       None)
    whole_run = [(50.0, 1.0, 1), (plan.noise_multiplier, plan.sample_rate,
                                  plan.steps_per_round * config.rounds)]
    assert plan.delta == PrivacyFloor().delta
    assert composed_epsilon(whole_run, 1e-4) < composed_epsilon(whole_run, 1e-6) <= 3.0


# ---------------------------------------------------------------- refusals in fixed words

def test_refusals_carry_a_code_and_a_fixed_sentence_never_the_centres_numbers(
        network: Path, tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text("min_records = 100000\n", encoding="utf-8")
    data = sorted(network.glob("*.parquet"))[0]
    node = {"data-path": str(data), "policy-path": str(policy), "state-dir": str(tmp_path / "s")}
    config = _config(network, tmp_path / "run")

    reply = _ask(config, node_config=node)
    missing = _ask(config, node_config={**node, "data-path": str(tmp_path / "gone.csv")})

    assert reply.error.code == Reply.REFUSED
    assert reply.error.reason == f"{data.stem}: {Reason.TOO_FEW_RECORDS}"
    assert missing.error.code == Reply.DATA
    assert missing.error.reason == f"gone: {Reason.DATA_UNUSABLE}"
    for sentence in (reply.error.reason, missing.error.reason):
        assert not DIGITS.search(sentence.split(": ", 1)[1])
    # The numbers stay in the centre's own log, for its operators.
    assert "fewer than the 100000" in (tmp_path / "s" / "audit.jsonl").read_text()


def test_participation_counts_the_training_students_only(network: Path) -> None:
    data = load_centre(str(sorted(network.glob("*.parquet"))[0]))
    enough_with_held_out = replace(data, policy=SitePolicy(min_records=data.num_train + 1))
    assert data.num_train + data.num_test > enough_with_held_out.policy.min_records

    with pytest.raises(CentreRefusal) as info:  # without DP: on the exact count
        centre_plan(RunConfig.from_flat({"privacy.dp": False}), enough_with_held_out, "run",
                    None, None)

    assert info.value.reason == Reason.TOO_FEW_RECORDS


# ---------------------------------------------------------------- a public mechanism

def _one_more_student(data: CentreData) -> CentreData:
    return replace(data, x_train=np.concatenate([data.x_train, data.x_train[:1]]),
                   y_train=np.concatenate([data.y_train, data.y_train[:1]]),
                   ids_train=(*data.ids_train, "a-student-who-arrived-mid-run"))


def test_the_mechanism_is_fixed_by_the_released_size_not_the_exact_count(
        network: Path) -> None:
    config = RunConfig.from_flat({"rounds": 3, "local_epochs": 2})
    data = load_centre(str(sorted(network.glob("*.parquet"))[0]))
    bigger = _one_more_student(data)
    size = released_size(data.num_train, np.random.default_rng(5))

    assert released_size(bigger.num_train, np.random.default_rng(5)) in (size, size + 10)
    # Everything the accountant is told is a function of the released size.
    assert plan_for(size, config, data.policy.privacy) == plan_for(size, config,
                                                                    bigger.policy.privacy)
    plan = plan_for(size, config, data.policy.privacy)
    small, large = (train_round(config, d, _weights(config), 1, plan) for d in (data, bigger))
    assert (small.num_examples, small.epsilon) == (large.num_examples, large.epsilon)
    assert small.num_examples == size and size % 10 == 0


def test_a_resumed_run_keeps_its_plan_whatever_the_data_became(
        network: Path, tmp_path: Path) -> None:
    config = _config(network, tmp_path / "run")
    data = load_centre(str(sorted(network.glob("*.parquet"))[0]))
    state = tmp_path / "state"
    ledger = open_ledger(config, {"state-dir": str(state)})

    first = centre_plan(config, data, "run-a", state, ledger)
    again = centre_plan(config, _one_more_student(data), "run-a", state, ledger)

    assert again == first
    sizes = [r for r in ledger.releases() if r.sample_rate == 1.0]
    assert len(sizes) == 1  # the size was released once for the run


# ---------------------------------------------------------------- the run's own budget

def test_a_server_that_asks_again_for_the_final_evaluation_is_refused(
        network: Path, tmp_path: Path) -> None:
    config = _config(network, tmp_path / "run")
    assert not _ask(config, "evaluate", 1, "r1-a").has_error()
    assert not _ask(config, "evaluate", 2, "r2-a").has_error()

    again = _ask(config, "evaluate", 2, "r2-another-model")

    assert again.has_error() and again.error.code == Reply.REFUSED
    assert again.error.reason.endswith(Reason.RUN_BUDGET)
    ledger = open_ledger(config, {"partition-id": 0})
    spent = composed_epsilon(run_history(ledger, "hostile-run", "evaluate"),
                             config.privacy.delta)
    assert spent <= config.privacy.epsilon * 1.001


def test_a_server_that_asks_for_more_rounds_than_planned_is_refused(
        network: Path, tmp_path: Path) -> None:
    config = _config(network, tmp_path / "run")
    for server_round in (1, 2):
        assert not _ask(config, "train", server_round, f"r{server_round}-a").has_error()

    extra = _ask(config, "train", 3, "r3-a")

    assert extra.has_error() and extra.error.reason.endswith(Reason.RUN_BUDGET)
    ledger = open_ledger(config, {"partition-id": 0})
    spent = composed_epsilon(run_history(ledger, "hostile-run", "train"), config.privacy.delta)
    assert spent <= config.privacy.epsilon * 1.001


def test_the_budget_check_prices_each_booked_row_with_its_own_noise(
        network: Path, tmp_path: Path) -> None:
    config = _config(network, tmp_path / "run")
    floor = PrivacyFloor()
    loud, quiet = (50.0, 0.1, 10), (0.5, 0.1, 10)

    assert check_run_budget([loud, loud], config, floor, "x") < 0.5
    with pytest.raises(CentreRefusal):
        check_run_budget([loud, quiet], config, floor, "x")


def test_the_reported_epsilon_is_what_the_ledger_booked_for_the_run(
        network: Path, tmp_path: Path) -> None:
    config = _config(network, tmp_path / "run")

    trained = _ask(config, "train", 1, "r1-a")
    evaluated = _ask(config, "evaluate", 1, "r1-a")

    ledger = open_ledger(config, {"partition-id": 0})
    for reply, kind in ((trained, "train"), (evaluated, "evaluate")):
        reported = reply.content.metric_records[protocol.METRICS][protocol.EPSILON]
        booked = composed_epsilon(run_history(ledger, "hostile-run", kind),
                                  config.privacy.delta)
        assert reported == pytest.approx(booked, rel=1e-12)


def test_the_centre_task_reads_its_name_and_floor_from_its_own_files(
        network: Path, tmp_path: Path) -> None:
    data = sorted(network.glob("*.parquet"))[0]
    centre = Centre.of(_config(network, tmp_path / "run").to_flat(),
                       {"data-path": str(data), "state-dir": str(tmp_path / "s")})

    assert centre.name == data.stem and centre.policy().privacy == PrivacyFloor()
    head = centre.head()
    assert tuple(head) == protocol.HEAD_KEYS and head["ledger_rows"] == 0


def test_the_held_out_share_is_fixed_for_the_run_at_its_first_task(
        network: Path, tmp_path: Path) -> None:
    config = _config(network, tmp_path / "run")
    assert not _ask(config, "train", 1, "r1-a").has_error()
    # A later instruction naming another share would move students between training
    # and evaluation: the centre keeps the run's.
    moved = replace(config, evaluation=replace(config.evaluation, test_fraction=0.5))
    centre = Centre.of(moved.to_flat(), {"partition-id": 0})

    kept = centre.data("hostile-run")
    fresh = centre.data("another-run")

    first = load_centre(str(sorted(network.glob("*.parquet"))[0]))
    assert kept.num_test == first.num_test < fresh.num_test


def test_a_programming_error_leaves_the_centre_as_a_fixed_sentence_only(
        network: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import client.federation.centre_task as task

    def broken(*_: object, **__: object) -> object:
        raise KeyError("student S-123456 has no grade")  # an error that quotes data

    monkeypatch.setattr(task, "train_round", broken)
    reply = _ask(_config(network, tmp_path / "run"))

    assert reply.has_error() and reply.error.code == Reply.INTERNAL
    assert reply.error.reason.endswith(Reason.INTERNAL) and "S-123456" not in reply.error.reason
    log = (tmp_path / "run" / "state" / "centre-0" / "audit.jsonl").read_text()
    assert "S-123456" in log  # the detail stays at the centre, for its operators
