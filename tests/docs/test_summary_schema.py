"""``summary.json`` has one definition (``server.summary.Summary``): the committed JSON
Schema is the type's, both reference pages name exactly its keys, the pages that read a
summary by key name only its keys, a real run's summary validates, and the writer
refuses a key the type does not know while the reader tolerates an older run's."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import jsonschema
import pytest
from pydantic import ValidationError

from common.config import RunConfig
from server import run_folder
from server.console.words import BASELINES
from server.summary import KEYS, Summary, json_schema, schema_text, summary_of
from simulations.report import SUMMARY_ROWS
from tests.docs.guides import ROOT
from tests.server.conftest import small_network
from tests.server.run_fixtures import write_run_folder

REFERENCE = ROOT / "docs" / "reference"
SCHEMA = REFERENCE / "summary.schema.json"
PAGES = ("summary-json.md", "summary-json.en.md")


def _validator() -> jsonschema.protocols.Validator:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    return validator_class(schema)  # type: ignore[no-any-return]


def _documented(page: str) -> set[str]:
    text = (REFERENCE / page).read_text(encoding="utf-8")
    rows = [row.split("|")[1] for row in text.splitlines() if row.startswith("| `")]
    return {key for row in rows for key in re.findall(r"`([a-z_]+)`", row)}


def test_the_committed_schema_is_the_types() -> None:
    assert SCHEMA.read_text(encoding="utf-8") == schema_text(), (
        "docs/reference/summary.schema.json is stale: "
        "python -m server.summary > docs/reference/summary.schema.json")
    assert set(json_schema()["properties"]) == set(KEYS)  # type: ignore[call-overload]


@pytest.mark.parametrize("page", PAGES)
def test_each_reference_page_names_exactly_the_types_keys(page: str) -> None:
    documented = _documented(page)
    assert not set(KEYS) - documented, f"{page} lacks {sorted(set(KEYS) - documented)}"
    assert not documented - set(KEYS), f"{page} names {sorted(documented - set(KEYS))}, " \
        "not in server/summary.py"


def test_the_pages_read_only_keys_the_type_has() -> None:
    assert set(BASELINES) <= set(KEYS)
    assert {key for key, _ in SUMMARY_ROWS} <= set(KEYS)


def test_the_writer_refuses_an_unknown_key_and_a_wrong_type(tmp_path: Path) -> None:
    with pytest.raises(ValidationError):
        Summary.model_validate({"auc_pooled": 0.7, "auc_polled": 0.7})
    with pytest.raises(ValidationError):
        Summary.model_validate({"rounds": "three"})
    run_folder.update_summary(tmp_path, Summary(rounds=3))
    with pytest.raises(ValidationError):
        run_folder.update_summary(tmp_path, Summary.model_validate({"round": 3}))
    assert json.loads((tmp_path / run_folder.SUMMARY).read_text()) == {"rounds": 3}


def test_the_writer_merges_keeps_null_and_writes_nan_as_null(tmp_path: Path) -> None:
    run_folder.update_summary(tmp_path, Summary(secure_aggregation=False))
    written = run_folder.update_summary(
        tmp_path, Summary(rounds=2, stopped=None), Summary(auc_pooled=float("nan")))
    assert written.secure_aggregation is False and written.rounds == 2
    on_disk = json.loads((tmp_path / run_folder.SUMMARY).read_text())
    assert on_disk == {"secure_aggregation": False, "rounds": 2, "stopped": None,
                       "auc_pooled": None}
    _validator().validate(on_disk)


def test_the_reader_tolerates_an_older_run_folder(tmp_path: Path) -> None:
    older = {"rounds": 3, "rounds_completed": 2, "evaluation_epsilon": 1.0,
             "num_centres": "four", "auc_pooled": 0.71}
    (tmp_path / run_folder.SUMMARY).write_text(json.dumps(older), encoding="utf-8")
    summary = run_folder.read_summary(tmp_path)
    assert (summary.rounds, summary.rounds_completed, summary.auc_pooled) == (3, 2, 0.71)
    assert summary.num_centres is None and summary.deployment is None
    assert summary_of({}) == Summary()
    assert run_folder.summary_or_empty(tmp_path / "none") == Summary()


def test_the_fixture_run_validates_against_the_schema(tmp_path: Path) -> None:
    run = write_run_folder(tmp_path / "run")
    _validator().validate(json.loads((run / run_folder.SUMMARY).read_text()))


@pytest.mark.slow
def test_a_real_runs_summary_validates_against_the_schema(tmp_path: Path) -> None:
    """A real federation (the ServerApp and three ClientApps, in process, DP on): its
    summary validates and the model card reads it through the type."""
    from server.publication.model_card import build_model_card
    from simulations.direct_grid import run_direct

    logging.getLogger("flwr").setLevel(logging.ERROR)
    data = small_network(tmp_path / "data", centres=3, students=1500, seed=29)
    run_dir = tmp_path / "run"
    config = RunConfig.from_flat({
        "scenario": "summary-schema", "rounds": 1, "local_epochs": 1, "min_centres": 2,
        "run_dir": str(run_dir), "data_dir": str(data), "state_root": str(tmp_path / "state"),
        "training.hidden": "8"})
    run_direct(config, 3)
    written = json.loads((run_dir / run_folder.SUMMARY).read_text())
    _validator().validate(written)
    summary = run_folder.read_summary(run_dir)
    assert summary.rounds_completed == 1 and summary.dp is True
    assert summary.model_fields_set == set(written)
    assert build_model_card(run_dir)["training"]["rounds_completed"] == 1
