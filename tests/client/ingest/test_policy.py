"""Site policy: reading it, what it withholds, consent, and what no policy can allow."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from client.ingest import IngestError, ingest_file, load_policy, prepare_extract
from client.ingest.centre_data import (
    SitePolicy,
    centre_policy,
    centres_cache_info,
    forget_centres,
    load_centre,
)
from common.encoding import FEATURE_NAMES
from common.schema import is_forbidden
from tests.client.conftest import POLICIES, harmonised_frame, write_csv, write_text


def test_default_policy_file_documents_the_defaults() -> None:
    assert load_policy(POLICIES / "default.toml") == SitePolicy()


def test_a_policy_is_read_into_the_typed_object(tmp_path: Path) -> None:
    path = write_text(
        tmp_path / "p.toml",
        'refused_predictors = ["home_language"]\nmin_records = 10\nepsilon_cap = 4.5\n'
        "audit_attributes_allowed = false\nmax_invalid_fraction = 0\n",
    )

    assert load_policy(path) == SitePolicy(
        refused_predictors=frozenset({"home_language"}),
        min_records=10,
        epsilon_cap=4.5,
        audit_attributes_allowed=False,
        max_invalid_fraction=0.0,
    )


@pytest.mark.parametrize(
    ("toml", "phrase"),
    [
        ("min_record = 10\n", "unknown key 'min_record'"),
        ('refused_predictors = ["grade_maths"]\n', "'grade_maths', which is not a predictor"),
        ('refused_predictors = ["sex"]\n', "audit attribute"),
        ('refused_predictors = "home_language"\n', "must be a list"),
        ("min_records = -1\n", "min_records must be at least 0"),
        ("min_records = 2.5\n", "min_records must be a whole number"),
        ("epsilon_cap = 0\n", "epsilon_cap must be above 0"),
        ("epsilon_cap = inf\n", "epsilon_cap must be a number"),
        ("max_invalid_fraction = 1.5\n", "at most 1"),
        ('audit_attributes_allowed = "yes"\n', "true or false"),
        ("allow_teacher_columns = true\n", "unknown key 'allow_teacher_columns'"),
        ("min_records = [\n", "not valid TOML"),
    ],
)
def test_invalid_policies_are_refused_in_one_sentence(
    tmp_path: Path, toml: str, phrase: str
) -> None:
    with pytest.raises(IngestError) as caught:
        load_policy(write_text(tmp_path / "p.toml", toml))

    assert phrase in str(caught.value)
    assert str(caught.value).count("\n") == 0


def test_a_missing_policy_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(IngestError, match="does not exist"):
        load_policy(tmp_path / "absent.toml")


def test_refused_predictors_are_dropped_and_encoded_missing(tmp_path: Path) -> None:
    # Invalid values in a refused column do not exclude rows: it is never read.
    frame = harmonised_frame(40).assign(home_language="klingon")
    data = write_csv(tmp_path / "x.csv", frame)
    policy_path = write_text(tmp_path / "p.toml", 'refused_predictors = ["home_language"]\n')
    policy = load_policy(policy_path)

    report = ingest_file(data, None, policy).report
    centre = load_centre(str(data), None, str(policy_path), 0.2)

    assert report.rows_invalid == 0
    assert next(c for c in report.columns if c.name == "home_language").status == (
        "refused by policy"
    )
    assert np.all(centre.x_train[:, FEATURE_NAMES.index("home_language:missing")] == 1.0)


def test_audit_attributes_are_withheld_when_not_allowed(tmp_path: Path) -> None:
    data = write_csv(tmp_path / "x.csv", harmonised_frame(10))

    kept = prepare_extract(data, None, SitePolicy())
    withheld = prepare_extract(data, None, SitePolicy(audit_attributes_allowed=False))

    assert {"sex", "indigenous"} <= set(kept.columns)
    assert not {"sex", "indigenous"} & set(withheld.columns)


TEACHER_AND_CLASS = ["teacher_id", "class_id", "classe", "groupe", "enseignant", "prof_nom"]


@pytest.mark.parametrize(
    "policy",
    [
        SitePolicy(),
        SitePolicy(refused_predictors=frozenset()),
        SitePolicy(max_invalid_fraction=1.0, audit_attributes_allowed=True),
    ],
)
def test_teacher_and_class_columns_are_refused_whatever_the_policy(
    tmp_path: Path, policy: SitePolicy
) -> None:
    assert all(is_forbidden(name) for name in TEACHER_AND_CLASS)
    frame = harmonised_frame(10).assign(**dict.fromkeys(TEACHER_AND_CLASS, "T-42"))
    data = write_csv(tmp_path / "x.csv", frame)

    result = ingest_file(data, None, policy)

    assert not set(TEACHER_AND_CLASS) & set(result.frame.columns)
    assert set(result.report.forbidden_dropped) == set(TEACHER_AND_CLASS)
    assert "T-42" not in result.frame.astype(str).to_numpy()


def test_a_policy_listing_teacher_columns_changes_nothing(tmp_path: Path) -> None:
    path = write_text(tmp_path / "p.toml", 'refused_predictors = ["teacher_id"]\n')

    assert load_policy(path).refused_predictors == frozenset()


def test_records_without_consent_never_reach_centre_data(tmp_path: Path) -> None:
    # Known answer: non-consenting rows are the only ones with grade_math = 0.
    frame = harmonised_frame(60)
    no_consent = frame.index % 4 == 1
    frame.loc[no_consent, "consent"] = False
    frame.loc[no_consent, "grade_math"] = 0.0
    frame.loc[~no_consent, "grade_math"] = 70.0
    data = write_csv(tmp_path / "x.csv", frame)

    centre = load_centre(str(data), None, None, 0.25)
    report = ingest_file(data, None, SitePolicy()).report

    assert centre.num_train + centre.num_test == int((~no_consent).sum()) == 45
    assert report.rows_no_consent == 15
    slot = FEATURE_NAMES.index("grade_math")
    assert np.all(np.vstack([centre.x_train, centre.x_test])[:, slot] == pytest.approx(0.7))


def test_below_min_records_the_centre_only_scores(tmp_path: Path) -> None:
    data = write_csv(tmp_path / "x.csv", harmonised_frame(30))

    assert ingest_file(data, None, SitePolicy(min_records=30)).report.takes_part_in_training
    assert not ingest_file(data, None, SitePolicy(min_records=31)).report.takes_part_in_training


def test_tables_read_by_other_parts_are_kept_for_them(tmp_path: Path) -> None:
    path = write_text(tmp_path / "p.toml", "min_records = 5\n[support]\nhigh = 0.6\n")

    policy = load_policy(path)

    assert policy.min_records == 5
    assert policy.extra == {"support": {"high": 0.6}}
    with pytest.raises(IngestError, match="support must be a table"):
        load_policy(write_text(tmp_path / "q.toml", "support = 3\n"))
    with pytest.raises(IngestError, match="unknown key 'suport'"):
        load_policy(write_text(tmp_path / "r.toml", "[suport]\nhigh = 0.6\n"))


def test_a_centres_file_changed_between_two_tasks_is_read_again(tmp_path: Path) -> None:
    # One process serves many tasks (the engine's actors live across runs): a reading is
    # kept per version of each file, never served once the file has changed.
    data = write_csv(tmp_path / "x.csv", harmonised_frame(40))
    policy_path = write_text(tmp_path / "policy.toml", "refused_predictors = []\n")
    forget_centres()

    first = load_centre(str(data), None, str(policy_path), 0.2)
    again = load_centre(str(data), None, str(policy_path), 0.2)
    write_csv(data, harmonised_frame(60))
    grown = load_centre(str(data), None, str(policy_path), 0.2)
    write_text(policy_path, 'refused_predictors = ["grade_math"]\n')
    refusing = load_centre(str(data), None, str(policy_path), 0.2)

    assert again is first and centres_cache_info() == (1, 3)
    assert len(first.y_train) + len(first.y_test) == 40
    assert len(grown.y_train) + len(grown.y_test) == 60
    assert refusing.policy.refused_predictors == {"grade_math"}
    assert centre_policy(str(policy_path)).refused_predictors == {"grade_math"}
