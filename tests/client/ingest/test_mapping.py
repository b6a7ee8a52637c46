"""Mappings: renames, recodes, units, constants, derived fields, and refused mappings."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from client.ingest import IngestError, ingest_file, load_mapping, prepare_extract
from client.ingest.centre_data import SitePolicy
from tests.client.conftest import write_text

SOURCE = """\
eleve;ecole;sexe;langue;note_fr_20;absences_j;consentement;statut;classe;ignored
A1;E1;M;Français;15;18;oui;diplômé;501;x
A2;E1;F;anglais;8,5;0;non;décrochage;502;y
A3;E2;F;autre;-;9;oui;en cours;503;z
"""

MAPPING = """\
name = "sis-example"
centre_column = "ecole"

[source]
delimiter = ";"

[columns]
student_id = "eleve"
school_id = "ecole"

[columns.school_year]
value = "2023-2024"

[columns.consent]
from = "consentement"
recode = { oui = true, non = false }

[columns.sex]
from = "sexe"

[columns.home_language]
from = "langue"
recode = { "Français" = "fr", anglais = "en", autre = "other" }

[columns.grade_french]
from = "note_fr_20"
missing = ["-"]
scale = 5

[columns.absence_rate]
expr = "absences_j / 180"

[columns.left_without_diploma]
expr = "where(statut == 'en cours', missing, statut == 'décrochage')"
"""


@pytest.fixture
def sis(tmp_path: Path) -> tuple[Path, Path]:
    return write_text(tmp_path / "sis.csv", SOURCE), write_text(tmp_path / "m.toml", MAPPING)


def test_mapping_builds_the_harmonised_record(sis: tuple[Path, Path]) -> None:
    data, mapping = sis

    frame = prepare_extract(data, mapping, SitePolicy(max_invalid_fraction=0.0))

    assert frame["student_id"].tolist() == ["A1", "A2", "A3"]
    assert frame["consent"].tolist() == [True, False, True]
    assert frame["home_language"].tolist() == ["fr", "en", "other"]
    assert frame["grade_french"].tolist()[:2] == [75.0, 42.5]  # 0-20 to 0-100, 8,5 read
    assert pd.isna(frame["grade_french"].iloc[2])  # "-" declared missing
    assert frame["absence_rate"].tolist() == [0.1, 0.0, 0.05]
    assert frame["left_without_diploma"].tolist()[:2] == [False, True]
    assert pd.isna(frame["left_without_diploma"].iloc[2])
    assert set(frame["school_year"]) == {"2023-2024"}


def test_report_counts_exclusions_centres_and_unused_columns(sis: tuple[Path, Path]) -> None:
    data, mapping = sis

    report = ingest_file(data, mapping, SitePolicy()).report

    assert (report.rows_read, report.rows_invalid) == (3, 0)
    assert (report.rows_no_consent, report.rows_missing_label, report.rows_usable) == (1, 1, 1)
    assert [(c.centre, c.rows_read) for c in report.centres] == [("E1", 2), ("E2", 1)]
    assert report.forbidden_dropped == ("classe",)
    assert report.ignored_columns == ("ignored",)


def test_passthrough_takes_harmonised_names_unless_turned_off(tmp_path: Path) -> None:
    data = write_text(
        tmp_path / "x.csv", "id,school_id,consent,grade_math\n1,E,true,55\n2,E,true,60\n"
    )
    base = '[columns]\nstudent_id = "id"\nschool_year = { value = "2024-2025" }\n'
    on = write_text(tmp_path / "on.toml", base)
    off = write_text(tmp_path / "off.toml", "passthrough = false\n" + base)

    assert prepare_extract(data, on, SitePolicy())["grade_math"].tolist() == [55.0, 60.0]
    with pytest.raises(IngestError, match="lacks the required columns school_id, consent"):
        prepare_extract(data, off, SitePolicy())


@pytest.mark.parametrize(
    ("toml", "phrase"),
    [
        ('[columns]\ngrade_maths = "x"\n', "did you mean grade_math"),
        ('[columns]\nteacher_id = "prof"\n', "refused whatever the policy says"),
        ('[columns]\ngrade_math = "prof_math"\nschool_id = "classe"\n', "teacher or class"),
        ('[columns]\ngrade_math = { from = "a", value = 3 }\n', "exactly one of"),
        ('[columns]\nsex = { from = "s", scale = 2 }\n', "numeric columns only"),
        ('[columns]\ngrade_math = { expr = "G1 **" }\n', "is not a valid expression"),
        ('[columns]\ngrade_math = { from = "G", colour = 1 }\n', "unknown key 'colour'"),
        ('[source]\ndelimiter = ":"\n', "delimiter must be"),
        ('[source]\nencoding = "klingon"\n', "not a known encoding"),
        ('flavour = "x"\n', "unknown key 'flavour'"),
        ("not toml at all [", "not valid TOML"),
    ],
)
def test_invalid_mappings_are_refused_in_one_sentence(
    tmp_path: Path, toml: str, phrase: str
) -> None:
    path = write_text(tmp_path / "m.toml", toml)

    with pytest.raises(IngestError) as caught:
        load_mapping(path)

    assert phrase in str(caught.value) + " ".join(caught.value.details)
    assert str(caught.value).count("\n") == 0


def test_a_predictor_may_not_read_the_labels_source(tmp_path: Path) -> None:
    toml = """\
[columns]
left_without_diploma = { expr = "G3 < 10" }
grade_math = { expr = "G3 * 5" }
"""

    with pytest.raises(IngestError, match="grade_math reads 'G3', which also defines the label"):
        load_mapping(write_text(tmp_path / "m.toml", toml))


def test_a_source_column_the_file_lacks_is_named(sis: tuple[Path, Path], tmp_path: Path) -> None:
    data, _ = sis
    mapping = write_text(tmp_path / "m.toml", '[columns]\ngrade_math = "note_math"\n')

    with pytest.raises(IngestError, match="no column 'note_math'"):
        ingest_file(data, mapping, SitePolicy())


def test_wrong_delimiter_is_pointed_out(tmp_path: Path) -> None:
    data = write_text(tmp_path / "sis.csv", SOURCE.replace("8,5", "8.5"))
    mapping = write_text(tmp_path / "m.toml", MAPPING.replace('delimiter = ";"', 'delimiter = ","'))

    with pytest.raises(IngestError, match="read as a single column"):
        ingest_file(data, mapping, SitePolicy())


def test_delimiter_by_name(tmp_path: Path) -> None:
    mapping = load_mapping(write_text(tmp_path / "m.toml", '[source]\ndelimiter = "tab"\n'))

    assert mapping.hints.delimiter == "\t"
