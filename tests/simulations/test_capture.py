"""Nothing per-student leaves a centre: capture every reply the ClientApps send in a
simulated federation and check what is in them."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import pandas as pd
import pytest
from flwr.app import Context, Message

from client.federation.app import build_client_app
from common.config import RunConfig
from common.equity.audit import CELL_LENGTH, all_cell_keys
from common.model import ModelConfig, build_model
from common.protocol import CENTRE as CENTRE_RECORD
from simulations.runner import run_scenario
from simulations.scenario import load_scenario

# Every key a centre may send, written out here (not read from the protocol module): a
# new metric must be added on purpose, with its place in docs/PRIVACY.md.
TRAIN_METRICS = {"num-examples", "epsilon"}
EVALUATION_METRICS = {"num-examples", "epsilon", "hist_pos", "hist_neg", "prob_sum",
                      "sq_err_sum", *all_cell_keys()}
CONFIG_RECORDS = {CENTRE_RECORD: {"name"},
                  "records-head": {"actor", "audit_head", "audit_lines", "ledger_head",
                                   "ledger_rows"}}


class CaptureReplies:
    """A Flower mod that writes down every reply leaving the ClientApp."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def __call__(self, msg: Message, context: Context, call_next):  # type: ignore[no-untyped-def]
        reply = call_next(msg, context)
        record: dict[str, object] = {"type": msg.metadata.message_type,
                                     "error": reply.error.reason if reply.has_error() else None}
        if not reply.has_error():
            content = reply.content
            record["arrays"] = {name: list(arr.shape) for rec in content.array_records.values()
                                for name, arr in rec.items()}
            record["metrics"] = {k: v for rec in content.metric_records.values()
                                 for k, v in rec.items()}
            record["configs"] = {name: dict(rec) for name, rec in content.config_records.items()}
        path = self.folder / f"{uuid.uuid4().hex}.json"
        path.write_text(json.dumps(record))
        return reply


@pytest.fixture(scope="module")
def captured(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[dict], Path]:
    folder = tmp_path_factory.mktemp("capture")
    out = tmp_path_factory.mktemp("run") / "run"
    scenario = load_scenario("tiny", ["baselines.enabled=false"])
    os.environ.setdefault("RAY_TMPDIR", f"/tmp/prs-ray-cap-{os.getpid()}")
    run_scenario(scenario, out, client_app=build_client_app([CaptureReplies(folder)]))
    return [json.loads(p.read_text()) for p in folder.glob("*.json")], out


@pytest.mark.slow
def test_every_reply_carries_only_model_arrays_and_allowed_aggregates(captured) -> None:
    replies, out = captured
    # 3 centres x 2 rounds x (train + evaluate), then the audit's exchange: 3 replies.
    assert len(replies) == 3 * 2 * 2 + 3
    centres = {path.stem for path in (out / "data").glob("*.parquet")}
    model_shapes = {k: list(v.shape) for k, v in
                    build_model(ModelConfig(), seed=RunConfig().seed).state_dict().items()}
    for reply in replies:
        assert reply["error"] is None
        if reply["type"] == "train":
            assert set(reply["metrics"]) == TRAIN_METRICS  # no training loss: unnoised
            assert reply["arrays"] == model_shapes
        else:
            assert set(reply["metrics"]) == EVALUATION_METRICS
            assert reply["arrays"] == {}
        # The centre's own name (its data file's) and the head of its records.
        assert {k: set(v) for k, v in reply["configs"].items()} == CONFIG_RECORDS
        assert reply["configs"][CENTRE_RECORD]["name"] in centres


@pytest.mark.slow
def test_no_reply_holds_a_per_student_vector_or_an_identifier(captured) -> None:
    replies, out = captured
    bins = RunConfig().evaluation.bins
    frames = [pd.read_parquet(p) for p in sorted((out / "data").glob("*.parquet"))]
    text = json.dumps(replies)
    for reply in replies:
        for key, value in reply["metrics"].items():
            if isinstance(value, list):
                # Fixed lengths set by the protocol, never by the number of students.
                assert len(value) == (CELL_LENGTH if key.startswith("eq.") else bins), key
            else:
                assert isinstance(value, int | float), key
    for frame in frames:
        assert not any(student_id in text for student_id in frame["student_id"].head(200))
        assert not any(school in text for school in frame["school_id"].unique())
