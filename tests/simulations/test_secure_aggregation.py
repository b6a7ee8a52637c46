"""Secure mode (``privacy.secure_aggregation``): Flower's SecAgg+ through the real apps.

- through the simulation engine (Ray), a centre drops out at the masked-vector stage of
  round 1 and the run still finishes every round with the others;
- in one process (``simulations.direct_grid``), the ministry's aggregate equals the
  weighted average of the surviving centres' unmasked updates within SecAgg+'s
  quantization error, and a centre's masked vector has nothing of its update in it.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, RecordDict
from flwr.app.error import Error
from flwr.common import (
    FitIns,
    bytes_to_ndarray,
    ndarrays_to_parameters,
    parameters_to_ndarrays,
)
from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS, Key, Stage
from flwr.compat.common.recorddict_compat import (
    fitins_to_recorddict,
    recorddict_to_evaluateres,
    recorddict_to_fitres,
)
from scipy.stats import binom

from client.federation.app import build_client_app
from client.federation.secure import build_secure_app, is_secure_message
from common.config import ConfigError, RunConfig
from common.model import ModelConfig, build_model, read_model
from server import run_folder
from server.federation.rounds import FederationStopped
from server.federation.secure import run_secure_federation
from simulations.direct_grid import DirectGrid
from simulations.network import generate_network, write_network
from simulations.runner import run_scenario
from simulations.scenario import load_scenario

QUANTIZATION_RANGE = 2**22  # SecAggPlusWorkflow's default, kept by server.federation.secure
MODULUS = 2**32


def _stage(msg: Message) -> str | None:
    configs = msg.content.config_records.get(RECORD_KEY_CONFIGS)
    return str(configs[Key.STAGE]) if configs is not None and Key.STAGE in configs else None


class DropAtMaskedVectors:
    """A Flower mod: centre ``partition`` dies at the masked-vector stage of round
    ``server_round`` (after the key exchange, before its masked update leaves)."""

    def __init__(self, partition: int = 0, server_round: int = 1) -> None:
        self.partition = partition
        self.server_round = server_round

    def __call__(self, msg: Message, context: Context, call_next: Any) -> Message:
        if (_stage(msg) == Stage.COLLECT_MASKED_VECTORS
                and int(str(context.node_config["partition-id"])) == self.partition
                and msg.metadata.group_id == str(self.server_round)):
            return Message(Error(code=1, reason="planted dropout"), reply_to=msg)
        return call_next(msg, context)


class CaptureUnmasked:
    """Inside ``secaggplus_mod``: each centre's update and weight before masking."""

    def __init__(self) -> None:
        self.updates: dict[tuple[int, int], tuple[list[npt.NDArray[Any]], int]] = {}
        self.evaluations: dict[tuple[int, int], tuple[list[npt.NDArray[Any]], int]] = {}
        self.audits: dict[int, tuple[list[npt.NDArray[Any]], dict[str, Any]]] = {}

    def __call__(self, msg: Message, context: Context, call_next: Any) -> Message:
        reply = call_next(msg, context)
        records = msg.content.config_records
        if "fitins.config" in records and not reply.has_error():
            fitres = recorddict_to_fitres(reply.content, keep_input=True)
            key = (int(msg.metadata.group_id), int(str(context.node_config["partition-id"])))
            found = (parameters_to_ndarrays(fitres.parameters), fitres.num_examples)
            if records["fitins.config"].get("phase") == "audit":
                self.audits[key[1]] = (found[0], dict(records["fitins.config"]))
            elif records["fitins.config"].get("secure.phase") == "evaluate":
                self.evaluations[key] = found
            else:
                self.updates[key] = found
        return reply


class CaptureReplies:
    """Inside ``secaggplus_mod``: the metric keys of every fit and evaluate reply (the
    scalars that travel beside the masked vectors, and the evaluation release)."""

    def __init__(self) -> None:
        self.metrics: dict[str, list[dict[str, Any]]] = {"fit": [], "evaluate": []}

    def __call__(self, msg: Message, context: Context, call_next: Any) -> Message:
        reply = call_next(msg, context)
        records = msg.content.config_records
        if reply.has_error():
            return reply
        if "fitins.config" in records:
            self.metrics["fit"].append(dict(recorddict_to_fitres(reply.content, True).metrics))
        elif "evaluateins.config" in records:
            self.metrics["evaluate"].append(dict(recorddict_to_evaluateres(reply.content).metrics))
        return reply


class CaptureMasked:
    """Outside ``secaggplus_mod``: what the ministry receives at the masked stage."""

    def __init__(self) -> None:
        self.vectors: dict[tuple[int, int], list[npt.NDArray[Any]]] = {}
        self.evaluations: dict[tuple[int, int], list[npt.NDArray[Any]]] = {}

    def __call__(self, msg: Message, context: Context, call_next: Any) -> Message:
        masked_stage = _stage(msg) == Stage.COLLECT_MASKED_VECTORS
        reply = call_next(msg, context)
        if masked_stage and not reply.has_error():
            configs = reply.content.config_records[RECORD_KEY_CONFIGS]
            key = (int(msg.metadata.group_id), int(str(context.node_config["partition-id"])))
            vector = [bytes_to_ndarray(b)
                      for b in configs[Key.MASKED_PARAMETERS]]  # type: ignore[union-attr]
            phase = msg.content.config_records["fitins.config"].get("secure.phase")
            (self.evaluations if phase == "evaluate" else self.vectors)[key] = vector
        return reply


def test_robust_aggregators_are_refused_in_secure_mode() -> None:
    with pytest.raises(ConfigError) as info:
        RunConfig.from_flat({"privacy.secure_aggregation": True, "strategy.aggregation": "median"})
    assert str(info.value).endswith(".") and str(info.value).count(".") <= 6
    with pytest.raises(ConfigError):
        RunConfig.from_flat({"privacy.secagg_threshold": 0.5})


def test_legacy_messages_are_told_from_message_api_ones() -> None:
    def message(content: RecordDict) -> Message:
        return SimpleNamespace(content=content)  # type: ignore[return-value]

    plain = RecordDict({"arrays": ArrayRecord(), "config": ConfigRecord()})
    legacy = fitins_to_recorddict(FitIns(ndarrays_to_parameters([]), {}), True)
    setup = RecordDict({RECORD_KEY_CONFIGS: ConfigRecord({Key.STAGE: Stage.SETUP})})
    assert not is_secure_message(message(plain))
    assert is_secure_message(message(legacy)) and is_secure_message(message(setup))


@pytest.fixture(scope="module")
def dropout_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("secure") / "run"
    scenario = load_scenario("tiny", ["privacy.secure_aggregation=true",
                                      "privacy.distributed_noise=true",
                                      "centre_policy.allow_distributed_noise=true",
                                      "centre_policy.max_epsilon_per_run=5",
                                      "baselines.enabled=false",
                                      "privacy.reproducible_noise=true",
                                      "centre_policy.allow_replayable_noise=true"])
    os.environ.setdefault("RAY_TMPDIR", f"/tmp/prs-ray-sec-{os.getpid()}")
    return run_scenario(scenario, out, client_app=build_client_app([DropAtMaskedVectors(0, 1)]))


@pytest.mark.slow
def test_secure_mode_completes_with_a_centre_dropped_mid_round(dropout_run: Path) -> None:
    """Training and evaluation both go through SecAgg+ with distributed noise: centre 0
    drops out of both in round 1; the two survivors (the threshold) carry the run's
    noise between them, each centre books what its own share costs (more than the
    target, within its floor), and the sums cost a student at most the target."""
    summary = run_folder.read_json(dropout_run / run_folder.SUMMARY)
    assert summary["secure_aggregation"] is True
    assert summary["rounds_completed"] == summary["rounds"] == 2
    assert summary["epsilon_train_max"] <= summary["epsilon_target"] + 1e-9
    assert summary["epsilon_target"] < summary["epsilon_evaluation"] <= 5.0 + 1e-9
    assert summary["auc_pooled_exact"] > 0.65
    rounds = run_folder.read_rounds(dropout_run)
    assert [r["updates"] for r in rounds] == [2, 3]  # one centre dropped in round 1 only
    assert len(rounds[0]["absent"]) == 1 and rounds[1]["absent"] == []
    assert [r["eval_centres"] for r in rounds] == [2, 3]
    for name in ("model.pt", "evaluation.json", "equity.json", "checkpoint.pt"):
        assert (dropout_run / name).is_file(), name
    equity = json.loads((dropout_run / "equity.json").read_text(encoding="utf-8"))
    shared = equity["distributed_noise"]
    assert shared["shares"] == shared["centres"] == 3 and shared["threshold"] == 2
    assert shared["epsilon_sum"] <= summary["epsilon_target"] + 1e-6
    # summary.json: the central epsilon the sums met (the audit's sum included), beside
    # what each centre booked for its own shares.
    assert summary["epsilon_evaluation_sum"] == pytest.approx(shared["epsilon_sum"])
    assert summary["epsilon_evaluation_sum"] < summary["epsilon_evaluation"]
    assert summary["equity_audit_done"] is True
    # Each centre's trust model of distributed noise, public: the default, alone.
    assert list(summary["centres_trust"].values()) == [{"model": "alone"}] * 3
    assert "region" not in equity["groups"]  # a region's sum would carry too little noise
    # Each centre's releases were made over its per-student cohorts, evaluation included.
    from client.privacy.student_budget import run_cohorts

    for centre in sorted((dropout_run / "state").iterdir()):
        kinds = {c.kind for c in run_cohorts(centre, summary["run_name"])}
        assert {"size", "train", "evaluate"} <= kinds, centre


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny scenario's centres, shared by the in-process runs: with the same data
    and rounds, each centre's noise calibration (seconds) is computed once."""
    data = tmp_path_factory.mktemp("secure-network")
    write_network(generate_network(centres=3, students=6000, seed=11), data)
    # Every centre takes part: a small one's participation is decided on its noisy
    # released size (issue 26), a draw these tests are not about.
    (data / "policy.toml").write_text("min_records = 0\n", encoding="utf-8")
    return data


def _flat(network: Path, run_dir: Path, **extra: object) -> dict[str, object]:
    return {"rounds": 2, "min_centres": 3, "scenario": "tiny", "privacy.secure_aggregation": True,
            "run_dir": str(run_dir), "data_dir": str(network), **extra}


@pytest.fixture(scope="module")
def inprocess(network: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("secure-direct")
    config = RunConfig.from_flat(_flat(network, out))
    unmasked, masked, replies = CaptureUnmasked(), CaptureMasked(), CaptureReplies()
    app = build_secure_app(outer_mods=[masked, DropAtMaskedVectors(0, 1)],
                           inner_mods=[unmasked, replies])
    run_secure_federation(DirectGrid(app, 3, dict(config.to_flat())), config)
    return {"out": out, "config": config, "updates": unmasked.updates,
            "evaluations": unmasked.evaluations, "audits": unmasked.audits,
            "masked": masked.vectors, "masked_evaluations": masked.evaluations,
            "replies": replies.metrics}


HEAD = {f"head.{key}" for key in ("actor", "audit_head", "audit_lines", "ledger_head",
                                  "ledger_rows")}


@pytest.mark.slow
def test_secure_replies_carry_only_the_allowed_keys(inprocess) -> None:
    fits, evaluations = inprocess["replies"]["fit"], inprocess["replies"]["evaluate"]
    assert evaluations == []  # evaluation goes through SecAgg+ too
    train = [m for m in fits if "noise.audit" not in m]
    secure_evaluations = [m for m in fits if "noise.audit" in m]
    # One centre dropped in round 1; the audit's exchange after round 2 asks all three.
    assert len(train) == 5 and len(secure_evaluations) == 5 + 3
    for metrics in train:  # beside the masked update: no training loss, nothing unnoised
        assert set(metrics) == {"epsilon", "centre", *HEAD}
    for metrics in secure_evaluations:  # beside the masked counts: the noise, no count
        assert set(metrics) == {"epsilon", "centre", *HEAD, "noise.histogram", "noise.audit",
                                "noise.distributed", "noise.threshold", "audit.sensitive",
                                "noise.trust", "noise.colluding"}
        assert metrics["noise.distributed"] == 0
        assert (metrics["noise.histogram"] > 1) != (metrics["noise.audit"] > 1)


def _round_average(updates: dict[tuple[int, int], Any], server_round: int,
                   step: float, config: RunConfig) -> tuple[list[npt.NDArray[Any]], float]:
    """The weighted average of a round's unmasked updates, and how far SecAgg+'s
    aggregate may be from it: stochastic rounding errs by less than one step per centre
    on each weighted coordinate, each weight factor by half a level, and the average
    divides by the sum of the weight factors."""
    centres = [key for key in sorted(updates) if key[0] == server_round]
    weights = np.array([float(updates[key][1]) for key in centres])
    average = [sum(w * updates[key][0][i] for w, key in zip(weights, centres, strict=True))
               / weights.sum() for i in range(len(updates[centres[0]][0]))]
    spread = max(float(np.abs(u - a).max()) for key in centres
                 for u, a in zip(updates[key][0], average, strict=True))
    factors = weights / config.privacy.secagg_max_weight
    return average, len(centres) * (step + spread / 2 / QUANTIZATION_RANGE) / factors.sum()


@pytest.mark.slow
def test_aggregate_is_the_weighted_average_of_the_survivors_updates(inprocess) -> None:
    config: RunConfig = inprocess["config"]
    updates = inprocess["updates"]
    assert sorted(updates) == [(1, 1), (1, 2), (2, 0), (2, 1), (2, 2)]  # 0 dropped in round 1
    step = 2 * config.training.max_update_norm / QUANTIZATION_RANGE
    (first, bound1), (second, bound2) = (_round_average(updates, r, step, config) for r in (1, 2))
    expected = [a + b for a, b in zip(first, second, strict=True)]
    initial = build_model(ModelConfig(hidden=config.training.hidden_sizes), seed=config.seed)
    final = read_model(inprocess["out"] / "model.pt")
    got = [(f.double() - i.double()).numpy() for f, i in
           zip(final.state_dict().values(), initial.state_dict().values(), strict=True)]
    error = max(float(np.abs(g - e).max()) for g, e in zip(got, expected, strict=True))
    bound = bound1 + bound2 + 2e-6  # + float32 rounding of the global weights
    assert error <= bound, (error, bound)
    assert max(float(np.abs(e).max()) for e in first) > 100 * bound  # not trivially met
    summary = json.loads((inprocess["out"] / "summary.json").read_text())
    assert summary["secure_aggregation"] is True and summary["replies_missing"] == 1


@pytest.mark.slow
def test_the_ministry_pools_the_exact_sum_of_the_evaluation_vectors(inprocess) -> None:
    """SecAgg+'s quantization is exact for the integer counts: the final pooled histogram
    is the sum of the surviving centres' noisy vectors to the unit (then clipped at 0),
    and the audit's intervals carry the noise."""
    evaluations = inprocess["evaluations"]
    assert sorted(evaluations) == [(1, 1), (1, 2), (2, 0), (2, 1), (2, 2)]
    bins = inprocess["config"].evaluation.bins
    final = [evaluations[key][0][0] for key in sorted(evaluations) if key[0] == 2]
    assert all(np.array_equal(v, np.rint(v)) and evaluations[(2, 0)][1] == 1 for v in final)
    expected = np.clip(np.sum(final, axis=0), 0, None)  # counts clipped at 0: post-processing
    pooled = json.loads((inprocess["out"] / "evaluation.json").read_text(encoding="utf-8"))
    # The final round counts over the bins placed from round 1's pooled histogram (issue
    # 30): the vectors' other bins are exact zeros, the ministry keeps the bins used.
    used = len(pooled["edges"]) + 1
    assert used < bins
    assert not expected[used:bins].any() and not expected[bins + used:2 * bins].any()
    assert np.array_equal(np.asarray(pooled["hist_pos"]), expected[:used])
    assert np.array_equal(np.asarray(pooled["hist_neg"]), expected[bins: bins + used])
    equity = json.loads((inprocess["out"] / "equity.json").read_text(encoding="utf-8"))
    stds = [m["noise.audit"] for m in inprocess["replies"]["fit"] if m.get("noise.audit")]
    assert len(stds) == 3 and equity["noise_std"] == max(stds) > 1  # final round only
    rows = [row for groups in equity["groups"].values() for row in groups.values()]
    assert rows or equity["suppressed"]
    assert all(row["noise_sd"]["tpr"] > 0 for row in rows)
    assert "distributed_noise" not in equity


@pytest.mark.slow
def test_the_secure_audit_is_counted_at_the_calibrated_threshold(inprocess) -> None:
    """The audit's SecAgg+ round after the final round: every centre was sent the raw
    threshold the recalibration maps to evaluation.threshold, released no histogram,
    and equity.json states the calibrated threshold."""
    config: RunConfig = inprocess["config"]
    audits = inprocess["audits"]
    assert sorted(audits) == [0, 1, 2]
    bins = config.evaluation.bins
    equity = json.loads((inprocess["out"] / "equity.json").read_text(encoding="utf-8"))
    assert equity["threshold"] == pytest.approx(config.evaluation.threshold, abs=1e-9)
    for vector, sent in audits.values():
        assert not vector[0][: 2 * bins].any()  # no histogram in the audit's vector
        assert sent["audit-threshold"] == pytest.approx(equity["threshold_raw"])
        assert sent["calibration-slope"] == pytest.approx(equity["calibration"]["slope"])


@pytest.mark.slow
def test_a_masked_vector_tells_nothing_of_its_update(inprocess) -> None:
    config: RunConfig = inprocess["config"]
    step = 2 * config.training.max_update_norm / QUANTIZATION_RANGE
    assert sorted(inprocess["masked"]) == sorted(inprocess["updates"])
    for key, vector in inprocess["masked"].items():
        update = np.concatenate([a.ravel() for a in inprocess["updates"][key][0]])
        masked = np.concatenate([a.ravel() for a in vector[1:]]).astype(np.float64)
        assert masked.size == update.size
        # A quantized update lies in [0, 2**22); masked values are spread over 2**32.
        assert _spread_over_the_modulus(masked, QUANTIZATION_RANGE)
        assert abs(np.corrcoef(masked, update)[0, 1]) < 0.1
        # Read as if unmasked, it is off by far more than the quantization step.
        as_if = masked * step - config.training.max_update_norm
        assert np.median(np.abs(as_if - update)) > 1e6 * step
        assert masked.max() < MODULUS
    # The evaluation counts too: quantized, they lie in [0, 2**21); masked, over 2**32.
    assert sorted(inprocess["masked_evaluations"]) == sorted(inprocess["evaluations"])
    for vector in inprocess["masked_evaluations"].values():
        masked = np.concatenate([a.ravel() for a in vector[1:]]).astype(np.float64)
        assert _spread_over_the_modulus(masked, 2**21) and masked.max() < MODULUS


def _spread_over_the_modulus(masked: npt.NDArray[np.float64], bound: int) -> bool:
    """Whether no more values lie under ``bound`` (where every unmasked value lies) than
    values drawn uniformly over the modulus would put there, but once in a billion runs.

    Unmasked, all of them would; a fixed share (say 1 %) would fail now and then on a short
    vector, where one value of 88 under 2**21 is an ordinary draw."""
    below = int(np.count_nonzero(masked < bound))
    return below <= binom.isf(1e-9, masked.size, bound / MODULUS)


class DisconnectAfter:
    """A Flower mod: once centre ``partition`` has evaluated round ``server_round`` (its
    second SecAgg+ unmasking of the round), it
    leaves the in-process grid (the ministry then waits for it in vain)."""

    def __init__(self, grid: DirectGrid, partition: int, server_round: int) -> None:
        self.grid, self.partition, self.server_round = grid, partition, server_round

    def __call__(self, msg: Message, context: Context, call_next: Any) -> Message:
        unmask = _stage(msg) == Stage.UNMASK  # before secaggplus_mod pops the stage
        reply = call_next(msg, context)
        if (unmask and int(str(context.node_config["partition-id"])) == self.partition
                and msg.metadata.group_id == str(self.server_round)):
            # The node's state outlives the messages (the mod may be copied): count there.
            records = context.state.config_records
            done = int(str(records["test"]["n"])) + 1 if "test" in records else 1
            records["test"] = ConfigRecord({"n": done})
            if done == 2:  # the round's training, then its evaluation
                self.grid.disconnect(self.partition)
        return reply


def _stopped_after_round_one(network: Path,
                             tmp_path: Path) -> tuple[dict[str, object], dict[str, Any]]:
    """A secure run whose third centre disconnects in round 2: stopped after round 1
    (its configuration and its summary then)."""
    flat = _flat(network, tmp_path, min_centres_wait=0.0)
    config = RunConfig.from_flat(flat)
    grid = DirectGrid(build_secure_app(), 3, dict(config.to_flat()))
    grid.client_app = build_secure_app(outer_mods=[DisconnectAfter(grid, 2, 1)])
    with pytest.raises(FederationStopped):
        run_secure_federation(grid, config)
    return flat, run_folder.read_json(tmp_path / run_folder.SUMMARY)


@pytest.mark.slow
def test_a_stopped_secure_run_resumes_from_its_checkpoint(network: Path, tmp_path: Path) -> None:
    flat, stopped = _stopped_after_round_one(network, tmp_path)
    assert stopped["rounds_completed"] == 1 and stopped["stopped"]
    resumed = RunConfig.from_flat({**flat, "resume": True})
    run_secure_federation(DirectGrid(build_secure_app(), 3, dict(resumed.to_flat()), run_id=2),
                          resumed)
    summary = run_folder.read_json(tmp_path / run_folder.SUMMARY)
    assert summary["rounds_completed"] == 2 and summary["stopped"] is None
    assert summary["run_name"] == stopped["run_name"]
    assert summary["epsilon_max"] <= summary["epsilon_target"] + 1e-9
    assert [r["round"] for r in run_folder.read_rounds(tmp_path)] == [1, 2]


@pytest.mark.slow
def test_an_evaluation_no_student_can_pay_for_releases_nothing(network: Path,
                                                               tmp_path: Path) -> None:
    """Each centre's share of distributed noise costs it more than its held-out students'
    lifetime cap allows (cap 4, a share about 4.5 alone): no student can pay, so each
    centre releases noise over no student (it no longer refuses on that exact count:
    issue 26) and books nothing; the ministry sees that the pooled count does not stand
    above its noise and publishes no pooled figure and asks for no audit, rather than
    pooling noise as if it were an evaluation (0.68 against an exact 0.82 at quebec-72
    before; 0.56 on this network before the ministry's check)."""
    data = tmp_path / "data"
    shutil.copytree(network, data)
    (data / "policy.toml").write_text(
        "epsilon_cap = 4.0\n[privacy]\nallow_distributed_noise = true\n"
        "max_epsilon_per_run = 5.0\n", encoding="utf-8")
    flat = {**_flat(data, tmp_path / "run", min_centres_wait=0.0),
            "privacy.distributed_noise": True}
    config = RunConfig.from_flat(flat)
    run_secure_federation(DirectGrid(build_secure_app(), 3, dict(config.to_flat())), config)
    summary = run_folder.read_json(tmp_path / "run" / run_folder.SUMMARY)
    assert summary["rounds_completed"] == 2  # training went on: its students had budget
    assert summary["auc_pooled"] is None and summary["equity_audit_done"] is False
    assert all(r.get("auc_pooled") is None for r in run_folder.read_rounds(tmp_path / "run"))
    from client.privacy.student_budget import run_cohorts

    for centre in sorted((tmp_path / "run" / "state").iterdir()):
        evaluated = [c for c in run_cohorts(centre, summary["run_name"])
                     if c.kind == "evaluate"]
        # No student could pay: the evaluation's cohort holds none, every one retired.
        assert evaluated and all(c.records == 0 and c.retired > 0 for c in evaluated), centre


class ServerCrash(Exception):
    """The ServerApp process dies."""


class AuditCrashGrid(DirectGrid):
    """Dies as it sends the audit's SecAgg+ round (its setup stage's instructions)."""

    def push_messages(self, messages: Any) -> Any:
        messages = list(messages)
        for message in messages:
            fitins = message.content.config_records.get("fitins.config")
            if fitins is not None and fitins.get("phase") == "audit":
                raise ServerCrash
        return super().push_messages(messages)


@pytest.mark.slow
def test_a_secure_run_that_died_before_its_audit_resumes_into_it(network: Path,
                                                                 tmp_path: Path) -> None:
    """Checkpointed after its final round with the audit pending, the resumed secure run
    trains no more and runs the audit's SecAgg+ round only."""
    from server.federation import checkpoint

    flat = _flat(network, tmp_path)
    config = RunConfig.from_flat(flat)
    with pytest.raises(ServerCrash):
        run_secure_federation(AuditCrashGrid(build_secure_app(), 3, dict(config.to_flat())),
                              config)
    state = checkpoint.load(tmp_path)
    assert state is not None and state.round == 2 and not state.audited
    resumed = RunConfig.from_flat({**flat, "resume": True})
    run_secure_federation(DirectGrid(build_secure_app(), 3, dict(resumed.to_flat()), run_id=2),
                          resumed)
    summary = run_folder.read_json(tmp_path / run_folder.SUMMARY)
    assert summary["equity_audit_done"] is True and summary["rounds_completed"] == 2
    equity = json.loads((tmp_path / "equity.json").read_text(encoding="utf-8"))
    assert equity["threshold"] == pytest.approx(0.3, abs=1e-9)
    assert [r["round"] for r in run_folder.read_rounds(tmp_path)] == [1, 2]


@pytest.mark.slow
def test_a_resumed_secure_run_still_names_each_centres_trust_model(network: Path,
                                                                   tmp_path: Path) -> None:
    """``centres_trust`` is in the checkpoint: a centre that evaluated before the run
    stopped and is gone when it resumes (the quorum lowered to 2) is still named, with
    the trust model it booked under (before, only later rounds refilled it)."""
    from server.federation import checkpoint

    flat, stopped = _stopped_after_round_one(network, tmp_path)
    state = checkpoint.load(tmp_path)
    assert state is not None and state.round == 1
    assert len(stopped["centres_trust"]) == 3 and state.trust == stopped["centres_trust"]

    resumed = RunConfig.from_flat({**flat, "resume": True, "min_centres": 2})
    grid = DirectGrid(build_secure_app(), 3, dict(resumed.to_flat()), run_id=2)
    grid.disconnect(2)
    run_secure_federation(grid, resumed)

    summary = run_folder.read_json(tmp_path / run_folder.SUMMARY)
    assert summary["rounds_completed"] == 2 and summary["stopped"] is None
    assert summary["centres_trust"] == stopped["centres_trust"]
