"""The model card: built from the run folder, optional parts never invented."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from server.model_card import (
    NOT_MEASURED,
    ModelCardError,
    build_model_card,
    model_id,
    write_model_card,
)
from tests.server.run_fixtures import EQUITY, write_run_folder


def test_the_card_carries_the_sha256_of_the_weights_file(tmp_path: Path) -> None:
    run = write_run_folder(tmp_path / "run")

    card = build_model_card(run)

    expected = hashlib.sha256((run / "model.pt").read_bytes()).hexdigest()
    assert card["version"]["weights_sha256"] == expected
    assert card["model_id"] == f"fixture-{expected[:12]}"


def test_the_model_id_is_a_slug_of_the_scenario_and_the_hash() -> None:
    assert model_id("Québec 72!", "ab" * 32) == "qu-bec-72-abababababab"


def test_summary_figures_are_copied_as_they_are(tmp_path: Path) -> None:
    card = build_model_card(write_run_folder(tmp_path / "run"))

    assert card["performance"]["pooled"]["auc"] == 0.78
    assert card["privacy"]["epsilon_spent_max"] == 2.95
    assert card["privacy"]["delta"] == 1e-6
    assert card["baselines"]["centralized_without_dp"] == 0.8
    assert card["data"]["students"] == 5000
    assert card["performance"]["auc_by_round"] == [0.7, 0.75, 0.78]


def test_the_equity_table_is_the_runs_equity_audit(tmp_path: Path) -> None:
    card = build_model_card(write_run_folder(tmp_path / "run"))

    assert card["equity"] == EQUITY
    assert card["performance"]["by_centre_size_band"] == {"small": 0.74, "medium": None,
                                                           "large": 0.8}


def test_missing_optional_parts_are_said_not_measured(tmp_path: Path) -> None:
    card = build_model_card(write_run_folder(tmp_path / "run", equity=False,
                                             participation=False))

    assert card["equity"] == NOT_MEASURED
    assert card["performance"]["by_centre_size_band"] == NOT_MEASURED
    assert card["membership_inference"] == NOT_MEASURED
    assert card["baselines"]["environment_only"] == NOT_MEASURED
    assert card["baselines"]["local_only"] == NOT_MEASURED
    # Not in the summary of a plain run: the run's configuration says it was off.
    assert card["privacy"]["secure_aggregation"] is False


def test_baselines_and_membership_inference_come_from_the_summary(tmp_path: Path) -> None:
    run = write_run_folder(tmp_path / "run", summary_extra={
        "auc_environment_only": 0.66, "auc_local_only": 0.71,
        "auc_local_only_by_size_band": {"small": 0.6}, "mia_advantage": 0.012,
        "mia_advantage_bound": 0.905})

    card = build_model_card(run)

    assert card["baselines"]["environment_only"] == 0.66
    assert card["baselines"]["local_only"] == 0.71
    assert card["baselines"]["local_only_by_size_band"] == {"small": 0.6}
    assert card["membership_inference"]["advantage"] == 0.012
    assert card["membership_inference"]["dp_bound"] == 0.905


def test_the_card_states_what_the_model_is_not_for(tmp_path: Path) -> None:
    card = build_model_card(write_run_folder(tmp_path / "run"))

    uses = " ".join(card["out_of_scope_uses"]).lower()
    assert "teachers" in uses and "schools" in uses and "automated decision" in uses


def test_local_paths_of_the_run_stay_out_of_the_card(tmp_path: Path) -> None:
    run = write_run_folder(tmp_path / "run")

    write_model_card(run)

    assert str(tmp_path) not in (run / "model_card.json").read_text(encoding="utf-8")
    assert str(tmp_path) not in (run / "model_card.html").read_text(encoding="utf-8")


def test_write_model_card_writes_json_and_html_into_the_run_folder(tmp_path: Path) -> None:
    run = write_run_folder(tmp_path / "run")

    json_path, html_path = write_model_card(run)

    card = json.loads(json_path.read_text(encoding="utf-8"))
    page = html_path.read_text(encoding="utf-8")
    assert card["model_id"] in page
    assert "equal opportunity gap" in page and "indigenous=true" in page
    assert "0.200 [0.110,&nbsp;0.280]" in page and "true − false" in page
    # Each group's figure with its interval under it (EHDAA true: AUC 0.74 [0.68, 0.80]).
    assert '0.740<br><span class="muted">[0.680,&nbsp;0.800]</span>' in page


def test_a_folder_without_weights_is_refused_in_one_sentence(tmp_path: Path) -> None:
    run = write_run_folder(tmp_path / "run")
    (run / "model.pt").unlink()

    with pytest.raises(ModelCardError, match=r"has no model\.pt; give the folder of a finished"):
        build_model_card(run)


def test_noisy_equity_counts_are_said_and_unjudgeable_groups_named(tmp_path: Path) -> None:
    run = write_run_folder(tmp_path / "run")
    equity = json.loads((run / "equity.json").read_text())
    equity["noise_std"] = 7.26
    equity["groups"]["ehdaa"]["true"]["auc_ci"] = [0.2, 1.0]
    (run / "equity.json").write_text(json.dumps(equity))

    limitations = build_model_card(run)["limitations"]

    noisy = [note for note in limitations if "differential-privacy noise" in note]
    assert len(noisy) == 1 and "7.26" in noisy[0]
    assert "ehdaa=true" in noisy[0] and "ehdaa=false" not in noisy[0]
    # Without noise the card says nothing of it.
    plain = build_model_card(write_run_folder(tmp_path / "plain"))["limitations"]
    assert not any("differential-privacy noise" in note for note in plain)
