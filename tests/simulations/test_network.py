"""The synthetic Québec network: schema, determinism, sizes, rates and signal."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from common import split
from common.encoding import FEATURE_NAMES, encode, encode_labels
from common.schema import COLUMN_BY_NAME, COLUMNS, LABEL, PREDICTORS, Kind
from simulations.centres import MONTREAL_CENTRE_ID, allocate_students, select_centres
from simulations.network import Network, generate_network, read_manifest, write_network
from simulations.students import DROPOUT_LOG_ODDS, observed_from_reference, solve_intercept


@pytest.fixture(scope="module")
def full() -> Network:
    return generate_network()


@pytest.fixture(scope="module")
def demo() -> Network:
    return generate_network(centres=12, students=45_000)


def _records(network: Network) -> pd.DataFrame:
    return pd.concat(network.frames.values(), ignore_index=True)


def _rate(frame: pd.DataFrame) -> float:
    return float(frame[LABEL].astype(bool).mean())


# ------------------------------------------------------------------ schema


def test_frames_have_the_schema_columns_in_order(demo: Network) -> None:
    expected = [column.name for column in COLUMNS]
    for frame in demo.frames.values():
        assert list(frame.columns) == expected


def test_every_value_is_valid_for_its_column(demo: Network) -> None:
    records = _records(demo)
    for column in COLUMNS:
        values = records[column.name].dropna()
        if not column.nullable:
            assert values.size == len(records), column.name
        if column.kind is Kind.NUMERIC:
            low, high = column.low, column.high
            assert low is not None and high is not None, column.name
            assert values.between(low, high).all(), column.name
            if column.integer:
                assert (values == np.round(values)).all(), column.name
        elif column.kind is Kind.CATEGORICAL:
            assert set(values.unique()) <= set(column.vocabulary), column.name
        elif column.kind is Kind.BOOLEAN:
            assert set(values.unique()) <= {True, False}, column.name


def test_identifiers_are_unique_and_follow_the_centre(demo: Network) -> None:
    for centre_id, frame in demo.frames.items():
        assert frame["student_id"].is_unique
        assert frame["student_id"].str.fullmatch(rf"{centre_id}-\d{{6}}").all()
        assert frame["school_id"].str.fullmatch(rf"{centre_id}-s\d{{2}}").all()
        assert (frame["school_year"] == "2024-2025").all()


def test_every_centre_has_several_schools(demo: Network) -> None:
    assert all(frame["school_id"].nunique() >= 2 for frame in demo.frames.values())


def test_some_predictors_are_partly_missing(demo: Network) -> None:
    records = _records(demo)
    for name in ("grade_trend", "extracurricular", "grade_math"):
        assert 0.01 < records[name].isna().mean() < 0.15, name


def test_consent_and_label_are_withheld_at_the_requested_rates() -> None:
    network = generate_network(centres=4, students=20_000, consent_refusal_rate=0.1,
                               unlabelled_rate=0.25)
    records = _records(network)
    assert (~records["consent"]).mean() == pytest.approx(0.1, abs=0.01)
    assert records[LABEL].isna().mean() == pytest.approx(0.25, abs=0.01)


# ------------------------------------------------------------------ determinism


def test_same_seed_gives_identical_frames() -> None:
    first = generate_network(centres=5, students=5_000, seed=11)
    second = generate_network(centres=5, students=5_000, seed=11)
    assert first.centres == second.centres
    for centre_id, frame in first.frames.items():
        pd.testing.assert_frame_equal(frame, second.frames[centre_id])


def test_different_seeds_give_different_frames() -> None:
    first = generate_network(centres=5, students=5_000, seed=11)
    second = generate_network(centres=5, students=5_000, seed=12)
    centre_id = first.centres[0].centre_id
    assert not first.frames[centre_id].equals(second.frames[centre_id])


# ------------------------------------------------------------------ sizes and centres


def test_full_network_has_the_documented_sizes(full: Network) -> None:
    sizes = [centre.students for centre in full.centres]
    by_id = {centre.centre_id: centre.students for centre in full.centres}
    assert len(sizes) == 72
    assert sum(len(frame) for frame in full.frames.values()) == sum(sizes) == 369_000
    assert 3_000 <= np.median(sizes) <= 4_000
    assert 100 <= min(sizes) <= 250
    assert max(sizes) == by_id[MONTREAL_CENTRE_ID] == pytest.approx(29_000, rel=0.05)


def test_full_network_has_nine_anglophone_and_two_indigenous_boards(full: Network) -> None:
    sectors = [centre.sector for centre in full.centres]
    governed = [c.centre_id for c in full.centres if c.indigenous_governed]
    assert sectors.count("en") == 9
    assert governed == ["cree", "kativik"]


def test_demo_is_a_representative_subset_of_the_requested_size(demo: Network) -> None:
    centres = {centre.centre_id: centre for centre in demo.centres}
    assert len(centres) == 12
    assert sum(len(frame) for frame in demo.frames.values()) == 45_000
    assert MONTREAL_CENTRE_ID in centres
    assert {"cree", "kativik"} <= set(centres)
    assert any(centre.sector == "en" for centre in centres.values())
    assert any(c.students < 1_000 and c.sector == "fr" for c in centres.values())


def test_indigenous_boards_are_absent_unless_they_opt_in() -> None:
    without = select_centres(12, include_indigenous_boards=False)
    with_boards = select_centres(12, include_indigenous_boards=True)
    assert len(without) == 12
    assert not any(profile.indigenous_governed for profile in without)
    assert set(with_boards) - {p for p in with_boards if p.indigenous_governed} <= set(without)
    assert len(select_centres(72, include_indigenous_boards=False)) == 70


def test_allocation_keeps_the_exact_total_and_a_minimum_size() -> None:
    profiles = select_centres(72, include_indigenous_boards=True)
    sizes = allocate_students(profiles, 2_000)
    assert sum(sizes) == 2_000
    assert min(sizes) == 20


# ------------------------------------------------------------------ rates


def test_base_rates_span_the_documented_ranges(full: Network) -> None:
    public = [c.base_rate for c in full.centres if not c.indigenous_governed]
    boards = [c.base_rate for c in full.centres if c.indigenous_governed]
    assert min(public) == pytest.approx(0.08, abs=0.01)
    assert max(public) == pytest.approx(0.27, abs=0.01)
    assert all(0.70 <= rate <= 0.80 for rate in boards)


def test_large_centres_match_their_base_rate(full: Network) -> None:
    for centre in full.centres:
        if centre.students >= 3_000:
            # Four binomial standard errors: the intercept fixes the expected rate exactly.
            tolerance = 4 * math.sqrt(centre.base_rate * (1 - centre.base_rate) / centre.students)
            assert abs(_rate(full.frames[centre.centre_id]) - centre.base_rate) < tolerance


def test_solve_intercept_gives_the_logit_when_every_student_is_alike() -> None:
    intercept = solve_intercept(np.zeros(10), 0.2)
    assert intercept == pytest.approx(math.log(0.2 / 0.8), abs=1e-9)


def _reference_student(**values: object) -> dict[str, np.ndarray]:
    student = {p: COLUMN_BY_NAME[p].reference for p in PREDICTORS} | values
    return {name: np.array([value]) for name, value in student.items()}


def test_every_dropout_weight_names_a_predictor_or_an_encoded_value() -> None:
    assert [f for f in DROPOUT_LOG_ODDS if f not in PREDICTORS and f not in FEATURE_NAMES] == []


def test_dropout_log_odds_are_measured_from_the_schemas_reference_student() -> None:
    student = _reference_student()

    observed = {f: observed_from_reference(f, student)[0] for f in DROPOUT_LOG_ODDS}

    assert observed == dict.fromkeys(DROPOUT_LOG_ODDS, 0.0)


def test_dropout_log_odds_read_values_as_the_encoding_clips_them() -> None:
    student = _reference_student(suspensions=40, grade_average=84.0, ehdaa=True,
                                 immigrant_generation="1")

    def observed(feature: str) -> float:
        return float(observed_from_reference(feature, student)[0])

    assert observed("suspensions") == 10.0  # the encoding's fixed bound, not 40
    assert observed("grade_average") == pytest.approx(10.0)
    assert (observed("ehdaa"), observed("immigrant_generation=1")) == (1.0, 1.0)
    assert observed("immigrant_generation=2") == 0.0


def test_boys_leave_about_1_6_times_as_often_as_girls(full: Network) -> None:
    records = _records(full)
    ratio = _rate(records[records["sex"] == "M"]) / _rate(records[records["sex"] == "F"])
    assert ratio == pytest.approx(1.6, abs=0.12)


def test_ehdaa_students_are_a_third_and_leave_about_2_4_times_as_often(full: Network) -> None:
    records = _records(full)
    ehdaa = records["ehdaa"]
    assert ehdaa.mean() == pytest.approx(0.33, abs=0.03)
    assert _rate(records[ehdaa]) / _rate(records[~ehdaa]) == pytest.approx(2.4, abs=0.2)


def test_age_grade_lag_and_disadvantaged_schools_have_documented_shares(full: Network) -> None:
    records = _records(full)
    assert (records["age_grade_lag"] > 0).mean() == pytest.approx(0.10, abs=0.02)
    assert (records["imse_decile"] >= 8).mean() == pytest.approx(0.30, abs=0.04)


# ------------------------------------------------------------------ heterogeneity


def test_home_language_follows_the_sector_and_the_city(full: Network) -> None:
    language = {c.centre_id: full.frames[c.centre_id]["home_language"] for c in full.centres}
    english = [c.centre_id for c in full.centres if c.sector == "en"]
    assert all((language[centre] == "en").mean() > 0.4 for centre in english)
    assert (language["css-01"] == "fr").mean() > 0.9
    assert (language[MONTREAL_CENTRE_ID] == "other").mean() > 0.2
    newcomers = (full.frames[MONTREAL_CENTRE_ID]["immigrant_generation"] != "0").mean()
    assert newcomers > 10 * (full.frames["css-01"]["immigrant_generation"] != "0").mean()


def test_indigenous_students_are_most_at_the_indigenous_boards(full: Network) -> None:
    for centre in full.centres:
        share = full.frames[centre.centre_id]["indigenous"].mean()
        assert (share > 0.9) if centre.indigenous_governed else (share < 0.15)


# ------------------------------------------------------------------ signal


def test_centralised_logistic_auc_is_realistic(demo: Network) -> None:
    records = _records(demo)
    held_out = split.held_out_mask(records["student_id"], 0.2)
    features, labels = encode(records), encode_labels(records)
    model = LogisticRegression(max_iter=1_000).fit(features[~held_out], labels[~held_out])
    auc = roc_auc_score(labels[held_out], model.predict_proba(features[held_out])[:, 1])
    assert 0.75 <= auc <= 0.90


# ------------------------------------------------------------------ files


def test_parquet_files_and_manifest_round_trip(tmp_path: Path) -> None:
    network = generate_network(centres=4, students=4_000)
    files = write_network(network, tmp_path)
    assert files == [tmp_path / f"{c.centre_id}.parquet" for c in network.centres]
    assert read_manifest(tmp_path) == list(network.centres)
    for centre, path in zip(network.centres, files, strict=True):
        pd.testing.assert_frame_equal(pd.read_parquet(path), network.frames[centre.centre_id])


def test_csv_files_hold_every_record(tmp_path: Path) -> None:
    network = generate_network(centres=3, students=3_000)
    files = write_network(network, tmp_path, fmt="csv")
    assert [path.name for path in files] == [f"{c.centre_id}.csv" for c in network.centres]
    assert sum(len(pd.read_csv(path)) for path in files) == 3_000


@pytest.mark.parametrize(
    "arguments",
    [{"centres": 0}, {"centres": 73}, {"consent_refusal_rate": 1.0}, {"unlabelled_rate": -0.1},
     {"centres": 10, "students": 100}],
)
def test_impossible_networks_are_refused(arguments: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        generate_network(**arguments)  # type: ignore[arg-type]
