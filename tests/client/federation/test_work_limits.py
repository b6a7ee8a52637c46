"""A hostile ServerApp asks for more work than the centre allows: the centre's limits
(``[limits]`` of its site policy) refuse the run before any record is read, any release
booked or any model built (issue 27, point 1)."""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, RecordDict

from client.errors import CentreRefusal
from client.federation import runtime
from client.federation.app import app as client_app
from client.federation.secure import SecureCentre
from client.ingest import IngestError, load_policy
from client.site_policy import WorkLimits
from common import protocol
from common.config import RunConfig
from common.model import ModelConfig, RiskModel, build_model
from common.protocol import Reason, Reply
from simulations.network import generate_network, write_network
from tests.server.messages import instruction

HOSTILE = [
    {"training.hidden": "100000,100000"},  # 10^10 weights: about 40 GB
    {"training.hidden": "16,16,16,16,16"},  # more layers than allowed
    {"training.hidden": "512,512,512"},  # each width allowed, 540,000 weights in all
    {"local_epochs": 10**9},
    {"rounds": 10**9},
    {"training.batch_size": 10**12},
    {"evaluation.bins": 10_000},
]


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("limits-network")
    write_network(generate_network(centres=2, students=600, seed=27), folder)
    return folder


def _trap(*_: object, **__: object) -> None:
    """Building any model fails the test: a refusal must come before."""
    raise AssertionError("a model was built for a run beyond the centre's limits")


def _config(network: Path, state: Path, **values: object) -> RunConfig:
    return RunConfig.from_flat({"rounds": 2, "local_epochs": 1, "training.hidden": "16",
                                "data_dir": str(network), "state_root": str(state),
                                **values})


def _small_weights() -> OrderedDict[str, torch.Tensor]:
    with torch.no_grad():
        return OrderedDict(RiskModel(ModelConfig(hidden=(16,))).state_dict())


def _ask(config: RunConfig, arrays: ArrayRecord, kind: str = "train") -> Message:
    message = instruction("r1-test", 1, arrays)
    message.metadata.__dict__["_message_type"] = kind
    message.content[protocol.CONFIG] = ConfigRecord(
        protocol.Task("hostile-run", 1, "r1-test").as_config())
    context = Context(run_id=1, node_id=1, state=RecordDict(),
                      node_config={"partition-id": 0}, run_config=dict(config.to_flat()))
    return client_app(message, context)


def _assert_refused_and_nothing_booked(reply: Message, state: Path) -> None:
    assert reply.has_error() and reply.error.code == Reply.CONFIG
    assert reply.error.reason.endswith(Reason.OUT_OF_LIMITS)
    folder = state / "centre-0"
    assert not (folder / "privacy-ledger.sqlite").exists()  # nothing booked
    assert not list(folder.glob("run-plan*"))  # no plan fixed either
    events = (folder / "audit.jsonl").read_text()
    assert '"task_refused"' in events and "at most" in events  # the numbers stay here


@pytest.mark.parametrize("values", HOSTILE, ids=lambda v: next(iter(v)))
@pytest.mark.parametrize("kind", ["train", "evaluate"])
def test_a_run_beyond_the_centres_limits_is_refused_before_anything_is_used(
        values: dict[str, object], kind: str, network: Path, tmp_path: Path) -> None:
    weights = ArrayRecord(_small_weights())  # built before the trap: the ministry's model
    config = _config(network, tmp_path, **values)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(RiskModel, "__init__", _trap)
        reply = _ask(config, weights, kind)

    _assert_refused_and_nothing_booked(reply, tmp_path)


def test_an_instruction_carrying_too_many_array_elements_is_refused(
        network: Path, tmp_path: Path) -> None:
    config = _config(network, tmp_path)
    arrays = {name: Array(value.numpy()) for name, value in _small_weights().items()}
    arrays["padding"] = Array(np.zeros(WorkLimits().max_parameters, dtype=np.float32))

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(RiskModel, "__init__", _trap)
        reply = _ask(config, ArrayRecord(arrays))

    _assert_refused_and_nothing_booked(reply, tmp_path)


def test_a_secure_evaluation_asking_for_a_billion_regions_is_refused(
        network: Path, tmp_path: Path) -> None:
    config = _config(network, tmp_path, **{"privacy.secure_aggregation": True})
    parameters = [w.numpy() for w in build_model(ModelConfig(hidden=(16,)), 7)
                  .state_dict().values()]
    context = Context(run_id=1, node_id=1, state=RecordDict(),
                      node_config={"partition-id": 0}, run_config=dict(config.to_flat()))
    centre = SecureCentre(context)
    asked: dict[str, Any] = {protocol.SECURE_PHASE: protocol.SECURE_EVALUATE,
                             protocol.SECURE_REGIONS: 10**9,
                             **protocol.Task("hostile-run", 2, "r2-test").as_config()}

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(RiskModel, "__init__", _trap)
        with pytest.raises(CentreRefusal) as refusal:
            centre.fit(parameters, asked)

    assert refusal.value.code == Reply.CONFIG and refusal.value.reason == Reason.OUT_OF_LIMITS
    assert not (tmp_path / "centre-0" / "privacy-ledger.sqlite").exists()


def test_the_limits_are_the_centres_own_in_its_policy_file(tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text("[limits]\nmax_rounds = 500\nmax_layer_width = 64\n", encoding="utf-8")

    limits = load_policy(policy).limits

    assert limits == WorkLimits(max_rounds=500, max_layer_width=64)
    limits.check(RunConfig.from_flat({"rounds": 400, "training.hidden": "64,32"}))
    with pytest.raises(CentreRefusal):
        limits.check(RunConfig.from_flat({"training.hidden": "128"}))


@pytest.mark.parametrize("table", ["[limits]\nmax_rounds = 0\n", "[limits]\nrounds = 3\n",
                                   "[limits]\nmax_bins = 2.5\n", "limits = 3\n"])
def test_a_bad_limits_table_is_refused_in_one_sentence(table: str, tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(table, encoding="utf-8")

    with pytest.raises(IngestError) as info:
        load_policy(policy)

    assert "limits" in str(info.value) and "\n" not in str(info.value)


def test_the_default_run_is_within_the_default_limits() -> None:
    assert WorkLimits().problems(RunConfig()) == []


class _Stop(Exception):
    pass


def test_the_runtime_runs_at_most_max_tasks_at_once(monkeypatch: pytest.MonkeyPatch,
                                                     tmp_path: Path) -> None:
    class Answer:
        token = "t"

        class task:
            task_id, run_id = 1, 1

        @staticmethod
        def HasField(_: str) -> bool:
            return True

    class Client:
        acquired = 0

        def AcquireTask(self, _: object) -> Answer:
            Client.acquired += 1
            return Answer()

        def close(self) -> None:
            pass

    class Task:  # a task process that never ends
        def __init__(self, *_: object, **__: object) -> None:
            self.stdin = _Sink()

        def poll(self) -> None:
            return None

    sleeps = []

    def sleep(_: float) -> None:
        sleeps.append(1)
        if len(sleeps) > 20:
            raise _Stop

    monkeypatch.setattr(runtime.RuntimeHttpClient, "from_server_address",
                        staticmethod(lambda **_: Client()))
    monkeypatch.setattr(runtime, "register_signal_handlers", lambda **_: None)
    monkeypatch.setattr(runtime.subprocess, "Popen", Task)
    monkeypatch.setattr(runtime.time, "sleep", sleep)

    with pytest.raises(_Stop):
        runtime.serve("127.0.0.1:1", tmp_path, True, None, max_tasks=2)

    assert Client.acquired == 2  # 21 polls, two tasks: the others wait with the SuperNode


class _Sink:
    def write(self, _: bytes) -> None:
        pass

    def close(self) -> None:
        pass
