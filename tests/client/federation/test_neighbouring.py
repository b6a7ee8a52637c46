"""The neighbouring-data-sets test (issue 26): a centre run on D and on D plus or minus
one student, with the same noise seeds, sends the same bytes in every PUBLIC and MAC
field of the release table (``common.releases``), and its NOISED fields differ only as
their mechanism lets one student move them.

The centre runs through the ClientApp itself (plain mode: ``client.federation.app``;
secure mode: the SecAgg+ client's ``fit``, what ``secaggplus_mod`` masks), as a
ministry's instruction reaches it. MAC fields (the HMACs of the records head) cannot be
byte-identical: each centre's key is its own and the rows they cover carry the time of
booking; the test requires their form (64 hex digits), and the head's PUBLIC lengths;
the last test recomputes them from the centre's key and the records they name.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import shutil
import sqlite3
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, RecordDict
from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_STATE

from client.errors import CentreRefusal
from client.federation.app import app as client_app
from client.federation.secure import SecureCentre
from client.privacy.ledger import PrivacyLedger
from client.privacy.run_plan import SIZE_GRID
from client.privacy.trust import declared_setup
from common import protocol, releases
from common.config import RunConfig
from common.equity.audit import AUDIT_GROUPS, GROUP_BINS, cell_key
from common.model import ModelConfig, build_model
from common.records.chain import LEDGER_FIELDS, LEDGER_FILE
from common.releases import Class
from common.split import held_out_mask
from server.federation.bookkeeping import next_edges
from tests.client.conftest import harmonised_frame
from tests.server.messages import instruction

CENTRE = "css-voisine"  # the same declared name on both sides
TEST_FRACTION = 0.3
POLICY = ("min_records = {min_records}\n{top}[privacy]\nallow_replayable_noise = true\n"
          "{floor}")
HEX = re.compile(r"[0-9a-f]{64}")


def _flat(**values: object) -> dict[str, object]:
    return dict(RunConfig.from_flat({
        "rounds": 1, "local_epochs": 1, "training.hidden": "8", "seed": 7,
        "privacy.reproducible_noise": True, "evaluation.test_fraction": TEST_FRACTION,
        **values}).to_flat())


def _students(count: int, start: int = 0) -> pd.DataFrame:
    return harmonised_frame(start + count).iloc[start:].reset_index(drop=True)


def _one(held_out: bool, after: int = 400) -> pd.DataFrame:
    """One student beyond the first ``after``, held out or training as asked."""
    frame = harmonised_frame(after + 200).iloc[after:].reset_index(drop=True)
    mask = held_out_mask(frame["student_id"], TEST_FRACTION)
    return frame[mask == held_out].head(1).reset_index(drop=True)


def _centre(folder: Path, frame: pd.DataFrame, min_records: int = 50,
            state: Path | None = None, top: str = "", floor: str = "") -> dict[str, object]:
    """A centre's files (the same names on both sides) and its node configuration;
    ``top`` and ``floor``: more lines of its site policy (top level, ``[privacy]``)."""
    folder.mkdir(parents=True, exist_ok=True)
    data = folder / f"{CENTRE}.csv"
    frame.to_csv(data, index=False)
    (folder / "policy.toml").write_text(POLICY.format(min_records=min_records, top=top,
                                                      floor=floor))
    target = folder / "state"
    if state is not None:
        shutil.copytree(state, target)
    return {"data-path": str(data), "policy-path": str(folder / "policy.toml"),
            "state-dir": str(target)}


def _weights(flat: dict[str, object]) -> OrderedDict[str, torch.Tensor]:
    config = RunConfig.from_flat(flat)
    model = build_model(ModelConfig(hidden=config.training.hidden_sizes), seed=config.seed)
    return OrderedDict(model.state_dict())


def _ask(flat: dict[str, object], node: dict[str, object], kind: str, run: str,
         server_round: int = 1, audit: protocol.AuditRequest | None = None,
         extra: dict[str, str] | None = None) -> Message:
    """The ClientApp's reply to one plain instruction (``extra``: more of its keys)."""
    message = instruction(f"r{server_round}", 1, ArrayRecord(_weights(flat)))
    message.metadata.__dict__["_message_type"] = kind
    config = ConfigRecord({**protocol.Task(run, server_round, f"r{server_round}").as_config(),
                           **(audit.as_config() if audit else {}), **(extra or {})})
    message.content[protocol.CONFIG] = config
    context = Context(run_id=1, node_id=1, state=RecordDict(), node_config=node,
                      run_config=flat)
    return client_app(message, context)


def _plain(reply: Message) -> tuple[dict[str, dict[str, Any]], dict[str, np.ndarray]]:
    """(record -> key -> value, name -> array) of a plain reply."""
    assert not reply.has_error(), reply.error.reason
    content = reply.content
    records = {name: dict(record) for name, record in content.config_records.items()}
    records.update({name: dict(record) for name, record in content.metric_records.items()})
    arrays = {name: array.numpy() for record in content.array_records.values()
              for name, array in record.items()}
    return records, arrays


def _check_counts(a: Any, b: Any) -> float:
    """The total change one student made to noisy counts with the same noise: the
    noise cancels, what is left is an integer per count."""
    diff = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    assert np.allclose(diff, np.round(diff), atol=1e-6), "the noise did not cancel"
    return float(np.abs(np.round(diff)).sum())


def _compare(mode: str, phase: str, left: dict[str, dict[str, Any]],
             right: dict[str, dict[str, Any]]) -> None:
    """Every key declared; PUBLIC equal; MAC of the form of a MAC; NOISED counts moved
    by one student at most (histograms: one count; equity cells: one per attribute)."""
    assert {r: set(k) for r, k in left.items()} == {r: set(k) for r, k in right.items()}
    releases.check_reply(mode, phase, {r: list(k) for r, k in left.items()})
    cells = 0.0
    for record, values in left.items():
        for key, value in values.items():
            declared = releases.key_of(releases.REPLIES[(mode, phase)][record], key)
            assert declared is not None
            other = right[record][key]
            if declared.cls is Class.PUBLIC:
                assert json.dumps(value) == json.dumps(other), (record, key, value, other)
            elif declared.cls is Class.MAC:
                assert HEX.fullmatch(str(value)) and HEX.fullmatch(str(other)), (record, key)
            elif key in (protocol.HIST_POS, protocol.HIST_NEG):
                cells += _check_counts(value, other)
    assert cells <= 1, "one student moved the histogram by more than one count"
    for group in AUDIT_GROUPS:  # each student is one count in one cell per attribute
        moved = sum(_check_counts(left[protocol.METRICS][k][:2 * GROUP_BINS],
                                  right[protocol.METRICS][k][:2 * GROUP_BINS])
                    for k in (cell_key(group.name, v) for v in group.cells)
                    if k in left[protocol.METRICS])
        assert moved <= 1, group.name


def _plain_run(flat: dict[str, object], node: dict[str, object], run: str
               ) -> dict[str, tuple[dict[str, dict[str, Any]], dict[str, np.ndarray]]]:
    """A run of one round as a ministry drives it: train, evaluate, the audit."""
    train = _plain(_ask(flat, node, "train", run))
    evaluation = _plain(_ask(flat, node, "evaluate", run))
    audit = _plain(_ask(flat, node, "evaluate", run,
                        audit=protocol.AuditRequest(0.3, 1.0, 0.0)))
    return {"train": train, "evaluate": evaluation, "audit": audit}


def _compare_runs(left: dict[str, Any], right: dict[str, Any]) -> None:
    for phase in ("train", "evaluate", "audit"):
        _compare("plain", phase, left[phase][0], right[phase][0])
    shapes = {k: v.shape for k, v in left["train"][1].items()}
    assert shapes == {k: v.shape for k, v in right["train"][1].items()}


@pytest.mark.parametrize("held_out", [False, True], ids=["training", "held-out"])
def test_a_first_run_is_the_same_with_one_student_more(held_out: bool, tmp_path: Path
                                                       ) -> None:
    flat = _flat()
    base = _students(400)
    runs = [_plain_run(flat, _centre(tmp_path / name, frame), "run-1")
            for name, frame in (("d", base), ("d1", pd.concat([base, _one(held_out)])))]

    _compare_runs(*runs)


def test_a_second_run_is_the_same_with_or_without_a_returning_student(tmp_path: Path
                                                                      ) -> None:
    """The issue's case: run 1 over A and a student s; run 2 over new students B, with s
    back or not. The old head's ``epsilon_lifetime`` told them apart (s spent twice)."""
    flat = _flat()
    returning = _one(held_out=False, after=1000)
    first = _centre(tmp_path / "year-1", pd.concat([_students(300), returning]))
    _plain_run(flat, first, "run-1")
    state = Path(str(first["state-dir"]))
    new = _students(300, start=400)
    runs = [_plain_run(flat, _centre(tmp_path / name, frame, state=state), "run-2")
            for name, frame in (("without", new), ("with", pd.concat([new, returning])))]

    _compare_runs(*runs)


def test_taking_part_is_decided_on_the_released_size(tmp_path: Path) -> None:
    """A centre at ``min_records`` and one student below it: the same released size
    (same noise), hence the same decision, whichever it is."""
    flat = _flat()
    at = _students(200)
    at = at[~held_out_mask(at["student_id"], TEST_FRACTION)].head(50)
    replies = [_ask(flat, _centre(tmp_path / name, frame), "train", "run-1")
               for name, frame in (("at", at), ("below", at.head(49)))]

    assert [r.has_error() for r in replies] == [replies[0].has_error()] * 2
    if replies[0].has_error():
        assert replies[0].error.reason == replies[1].error.reason
    else:
        _compare("plain", "train", _plain(replies[0])[0], _plain(replies[1])[0])


def _secagg_state(flat: dict[str, object], sampled: int) -> ConfigRecord:
    """What ``secaggplus_mod`` keeps in the node's state after a setup stage for
    ``sampled`` centres, with the settings the run declares (Flower's arithmetic)."""
    shares, threshold = declared_setup(RunConfig.from_flat(flat), sampled)
    return ConfigRecord({"sample_num": sampled, "share_num": shares,
                         "threshold": threshold})


def _secure_context(flat: dict[str, object], node: dict[str, object],
                    sampled: int | None) -> Context:
    state = RecordDict()
    if sampled is not None:
        state[RECORD_KEY_STATE] = _secagg_state(flat, sampled)
    return Context(run_id=1, node_id=1, state=state, node_config=node, run_config=flat)


def _secure(flat: dict[str, object], node: dict[str, object], run: str,
            phase: str | None, sampled: int | None = None
            ) -> tuple[dict[str, Any], np.ndarray, int]:
    """The SecAgg+ client's vector, weight and metrics; ``sampled``: the centres of the
    SecAgg+ round whose settings ``secaggplus_mod`` keeps in the node's state."""
    context = _secure_context(flat, node, sampled)
    parameters = [w.numpy() for w in _weights(flat).values()]
    config: dict[str, Any] = protocol.Task(run, 1, "r1").as_config()
    if phase is not None:
        config[protocol.SECURE_PHASE] = phase
    vectors, weight, metrics = SecureCentre(context).fit(parameters, config)
    return metrics, vectors[0], weight


@pytest.mark.parametrize("held_out", [False, True], ids=["training", "held-out"])
def test_a_secure_release_is_the_same_with_one_student_more(held_out: bool,
                                                            tmp_path: Path) -> None:
    flat = _flat(**{"privacy.secure_aggregation": True})
    base = _students(400)
    sides = []
    for name, frame in (("d", base), ("d1", pd.concat([base, _one(held_out)]))):
        node = _centre(tmp_path / name, frame)
        sides.append((_secure(flat, node, "run-1", None),
                      _secure(flat, node, "run-1", protocol.SECURE_EVALUATE)))
    (train, evaluation), (train1, evaluation1) = sides

    # The weight is the released size: the same noise, one student moves it one grid
    # step at most (rounding), never more.
    assert abs(train[2] - train1[2]) <= SIZE_GRID
    _compare("secure", "train", {protocol.METRICS: train[0]}, {protocol.METRICS: train1[0]})
    _compare("secure", "evaluate", {protocol.METRICS: evaluation[0]},
             {protocol.METRICS: evaluation1[0]})
    # The counts under the mask: one count moved at most, by the student held out.
    moved = _check_counts(evaluation[1], evaluation1[1])
    assert moved <= (1 if held_out else 0)


def test_a_secure_release_with_distributed_noise_is_the_same_with_one_student_more(
        tmp_path: Path) -> None:
    """A share of the noise (1/t of its variance, t the round's threshold), booked for
    what it costs alone: its std, the flag, the threshold and the epsilon are PUBLIC."""
    flat = _flat(**{"privacy.secure_aggregation": True, "privacy.distributed_noise": True})
    floor = "allow_distributed_noise = true\nmax_epsilon_per_run = 10.0\n"
    base = _students(400)
    sides = []
    for name, frame in (("d", base), ("d1", pd.concat([base, _one(held_out=True)]))):
        node = _centre(tmp_path / name, frame, floor=floor)
        sides.append(_secure(flat, node, "run-1", protocol.SECURE_EVALUATE, sampled=6))
    (metrics, vector, _), (metrics1, vector1, _) = sides

    assert metrics[protocol.NOISE_DISTRIBUTED] == 1 and metrics[protocol.NOISE_THRESHOLD] == 4
    assert metrics[protocol.NOISE_TRUST] == 0  # the default trust model: alone
    _compare("secure", "evaluate", {protocol.METRICS: metrics}, {protocol.METRICS: metrics1})
    assert _check_counts(vector, vector1) <= 1


SECURE_AGGREGATION = ('allow_distributed_noise = true\nmax_epsilon_per_run = 10.0\n'
                      'distributed_noise_trust = "secure-aggregation"\n'
                      'max_colluding_centres = {c}\n')


def test_a_share_booked_under_secure_aggregation_is_the_same_with_one_student_more(
        tmp_path: Path) -> None:
    """The 'secure-aggregation' trust model (t = 4 of 6, c = 1): the same share, booked
    as the sum of t - c = 3 honest shares; the model and c are PUBLIC (the policy)."""
    flat = _flat(**{"privacy.secure_aggregation": True, "privacy.distributed_noise": True})
    base = _students(400)
    sides = []
    for name, frame in (("d", base), ("d1", pd.concat([base, _one(held_out=True)]))):
        node = _centre(tmp_path / name, frame, floor=SECURE_AGGREGATION.format(c=1))
        sides.append(_secure(flat, node, "run-1", protocol.SECURE_EVALUATE, sampled=6))
    (metrics, vector, _), (metrics1, vector1, _) = sides

    assert (metrics[protocol.NOISE_TRUST], metrics[protocol.NOISE_COLLUDING]) == (1, 1)
    _compare("secure", "evaluate", {protocol.METRICS: metrics}, {protocol.METRICS: metrics1})
    assert _check_counts(vector, vector1) <= 1


@pytest.mark.parametrize("colluding", [4, 3], ids=["c-at-t", "t-minus-c-too-small"])
def test_a_refusal_by_the_trust_model_is_the_same_with_one_student_more(
        colluding: int, tmp_path: Path) -> None:
    """t = 4: c = 4 leaves no honest share; c = 3 leaves one, whose sum's cost (the
    share alone, about 9) passes a floor of 5. The same refusal on D and D', before any
    record is read: a function of the configuration, the threshold and the policy."""
    flat = _flat(**{"privacy.secure_aggregation": True, "privacy.distributed_noise": True})
    floor = SECURE_AGGREGATION.format(c=colluding).replace("10.0", "5.0")
    base = _students(400)
    reasons = []
    for name, frame in (("d", base), ("d1", pd.concat([base, _one(held_out=True)]))):
        node = _centre(tmp_path / name, frame, floor=floor)
        with pytest.raises(CentreRefusal) as refused:
            _secure(flat, node, "run-1", protocol.SECURE_EVALUATE, sampled=6)
        reasons.append((refused.value.code, refused.value.reason))
        state = tmp_path / name / "state"
        if (state / LEDGER_FILE).exists():  # nothing booked, no cohort chosen
            ledger = PrivacyLedger(state)
            assert not ledger.booked() and not ledger.cohorts()

    assert reasons == [(protocol.Reply.FLOOR, protocol.Reason.SECAGG_TRUST)] * 2


def test_a_student_at_the_lifetime_cap_changes_nothing(tmp_path: Path) -> None:
    """Run 1 spends a student's budget (cap 4.2; a run at 3 costs a student about 3.6
    as the filter counts it, and another would pass the cap);
    run 2, with him back or not, sends the same bytes, its noisy releases included: the
    student at the cap is left out of every release (the per-student filter), and his
    presence changes no other student's inclusion."""
    flat = _flat()
    cap = "epsilon_cap = 4.2\n"
    returning = _one(held_out=False, after=1000)
    first = _centre(tmp_path / "year-1", pd.concat([_students(300), returning]), top=cap)
    assert not _ask(flat, first, "train", "run-1").has_error()  # he trains: one round
    state = Path(str(first["state-dir"]))
    new = _students(300, start=400)
    runs = [_plain_run(flat, _centre(tmp_path / name, frame, state=state, top=cap), "run-2")
            for name, frame in (("without", new), ("with", pd.concat([new, returning])))]

    _compare_runs(*runs)
    _same_release(*runs)
    # Not vacuous: he trained in run 1, and run 2 left him out of its training.
    retired = {name: {(c.run_id, c.label): c.retired for c in
                      PrivacyLedger(tmp_path / name / "state").cohorts()}
               for name in ("year-1", "without", "with")}
    assert retired["year-1"][("run-1", "train")] == 0
    assert (retired["without"][("run-2", "train")], retired["with"][("run-2", "train")]) \
        == (0, 1)


def _same_release(left: dict[str, Any], right: dict[str, Any]) -> None:
    """Every field but the MACs byte-identical, the model's arrays included."""
    for phase in ("train", "evaluate", "audit"):
        for record, values in left[phase][0].items():
            table = releases.REPLIES[("plain", phase)][record]
            for key, value in values.items():
                declared = releases.key_of(table, key)
                if declared is not None and declared.cls is not Class.MAC:
                    assert json.dumps(value) == json.dumps(right[phase][0][record][key]), \
                        (phase, record, key)
        for name, array in left[phase][1].items():
            assert np.array_equal(array, right[phase][1][name]), (phase, name)


FLOOR_CASES = {"no-dp": ({"privacy.dp": False}, protocol.Reason.FLOOR_NO_DP),
               "epsilon": ({"privacy.epsilon": 5.0}, protocol.Reason.FLOOR_EPSILON),
               "prv": ({"privacy.accountant": "prv"}, protocol.Reason.FLOOR_ACCOUNTANT)}


@pytest.mark.parametrize("what", sorted(FLOOR_CASES))
def test_a_refusal_by_the_floor_is_the_same_with_one_student_more(what: str,
                                                                  tmp_path: Path) -> None:
    """The floor refuses on the run's configuration and the centre's policy alone:
    the same code and sentence on D and D', before any record is read."""
    values, expected = FLOOR_CASES[what]
    flat = _flat(**values)
    base = _students(400)
    replies = [_ask(flat, _centre(tmp_path / name, frame), kind, "run-1")
               for name, frame in (("d", base), ("d1", pd.concat([base, _one(False)])))
               for kind in ("train", "evaluate")]

    assert all(r.has_error() for r in replies)
    for reply, other in zip(replies[:2], replies[2:], strict=True):
        assert (reply.error.code, reply.error.reason) == (other.error.code,
                                                          other.error.reason)
    assert all(str(expected) in r.error.reason for r in replies)


def test_an_invalid_row_more_changes_nothing(tmp_path: Path) -> None:
    """One student more whose row is invalid: the centre trains and evaluates on the
    valid rows, the same on both sides, whatever the policy's ``max_invalid_fraction``
    (0 here: ``validate`` would refuse the file; the ClientApp no longer refuses on a
    count of rows, which was DATA_UNUSABLE on the exact share)."""
    flat = _flat()
    base = _students(400)
    invalid = _one(held_out=False).assign(grade_level=99)  # out of the schema's range
    top = "max_invalid_fraction = 0.0\n"
    runs = [_plain_run(flat, _centre(tmp_path / name, frame, top=top), "run-1")
            for name, frame in (("d", base), ("d1", pd.concat([base, invalid])))]

    _compare_runs(*runs)
    _same_release(*runs)


def test_every_refusal_a_centre_can_send_is_declared() -> None:
    sentences = {value for name, value in vars(protocol.Reason).items()
                 if not name.startswith("_")}

    assert sentences - releases.NOT_SENT == set(releases.REFUSALS)
    assert all(key.cls is not Class.MAC for key in releases.REFUSALS.values())


@pytest.mark.parametrize("held_out", [False, True], ids=["training", "held-out"])
def test_an_evaluation_over_placed_bins_is_the_same_with_one_student_more(
        held_out: bool, tmp_path: Path) -> None:
    """Issue 30: the bins the ministry places from the pooled histogram released before
    (``server.federation.bookkeeping.next_edges``, post-processing) reach the centre as
    public input; counted over them, the release still moves by one count for one
    student, the bins it does not use are exact zeros, and a malformed request is
    refused the same way on both sides, nothing booked."""
    flat = _flat(**{"rounds": 2})
    released = {protocol.HIST_POS: [0.0] * 8 + [40.0, 60.0, 30.0] + [0.0] * 9,
                protocol.HIST_NEG: [0.0] * 7 + [90.0, 250.0, 120.0, 20.0] + [0.0] * 9}
    edges = next_edges(RunConfig.from_flat(flat), released)
    assert edges is not None
    base = _students(400)
    replies, refusals, audits = [], [], []
    for name, frame in (("d", base), ("d1", pd.concat([base, _one(held_out)]))):
        node = _centre(tmp_path / name, frame)
        _ask(flat, node, "train", "run-1")
        replies.append(_plain(_ask(flat, node, "evaluate", "run-1",
                                   extra=protocol.edges_config(edges)))[0])
        refusals.append(_ask(flat, node, "evaluate", "run-1", server_round=2,
                             extra={protocol.EVALUATION_EDGES: "3,2,1"}))
        # The audit over bands placed on both sides of its threshold (logit -0.85;
        # public input too, issue 30 point 3).
        audits.append(_plain(_ask(flat, node, "evaluate", "run-1", server_round=2, audit=(
            protocol.AuditRequest(0.3, 1.0, 0.0, (-2.2, -1.5, 0.5)))))[0])
    _compare("plain", "evaluate", *replies)
    _compare("plain", "audit", *audits)
    for reply in replies:
        for key in (protocol.HIST_POS, protocol.HIST_NEG, protocol.PROB_SUM):
            assert reply[protocol.METRICS][key][len(edges) + 1:] == [0.0] * (19 - len(edges))
    assert refusals[0].has_error() and refusals[1].has_error()
    assert refusals[0].error.reason == refusals[1].error.reason
    assert protocol.Reason.EDGES_INVALID in refusals[0].error.reason


def _hmac(key: bytes, previous: str, content: str) -> str:
    """HMAC-SHA256 over the previous record's MAC and this record's text, recomputed
    here with the standard library (not ``common.records.key``)."""
    return hmac.new(key, f"{previous}\n{content}".encode(), hashlib.sha256).hexdigest()


def _recomputed_heads(state: Path, head: dict[str, Any], key: bytes) -> tuple[str, str]:
    """The head's two MACs recomputed with ``key`` from the records they name: the audit
    log's line number ``audit_lines`` (its fields but its MAC) and the ledger's row
    number ``ledger_rows`` (its fields), each chained to the one before."""
    lines = [json.loads(line) for line in (state / "audit.jsonl").read_text().splitlines()]
    line = lines[int(head["audit_lines"]) - 1]
    fields = {k: v for k, v in line.items() if k != "mac"}
    audit = _hmac(key, line["prev"], json.dumps(fields, sort_keys=True, allow_nan=False))
    db = sqlite3.connect(state / LEDGER_FILE)
    try:
        rows = db.execute(f"SELECT {LEDGER_FIELDS}, mac FROM releases ORDER BY id").fetchall()
    finally:
        db.close()
    row = rows[int(head["ledger_rows"]) - 1]
    previous = rows[int(head["ledger_rows"]) - 2][-1] if int(head["ledger_rows"]) > 1 \
        else "0" * 64
    ledger = _hmac(key, previous, json.dumps(list(row[:-1]), allow_nan=False))
    return audit, ledger


def test_the_heads_macs_are_the_centres_hmacs_of_its_records(tmp_path: Path) -> None:
    """The MAC fields of the release table are what they are declared to be: the HMAC,
    under the centre's own key, of the audit line and ledger row the head names, so
    pseudorandom to whoever lacks the key. Recomputed from the key and the records, they
    match; under another key they do not; two centres that differ by one student send
    the same public lengths and different MACs (each its own key)."""
    flat = _flat()
    base = _students(400)
    nodes = [_centre(tmp_path / name, frame)
             for name, frame in (("d", base), ("d1", pd.concat([base, _one(False)])))]
    heads = [_plain(_ask(flat, node, "train", "run-1"))[0][protocol.RECORDS_HEAD]
             for node in nodes]

    for node, head in zip(nodes, heads, strict=True):
        state = Path(str(node["state-dir"]))
        key = bytes.fromhex((state / "records.key").read_text(encoding="ascii").strip())
        assert int(head["ledger_rows"]) >= 2 and int(head["audit_lines"]) >= 2
        assert _recomputed_heads(state, head, key) == (head["audit_head"], head["ledger_head"])
        other = _recomputed_heads(state, head, bytes(reversed(key)))
        assert other[0] != head["audit_head"] and other[1] != head["ledger_head"]
    assert [(h["audit_lines"], h["ledger_rows"]) for h in heads] == \
        [(heads[0]["audit_lines"], heads[0]["ledger_rows"])] * 2
    assert heads[0]["audit_head"] != heads[1]["audit_head"]
    assert heads[0]["ledger_head"] != heads[1]["ledger_head"]
