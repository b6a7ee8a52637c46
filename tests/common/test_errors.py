"""One meaning per exit code, whatever the command."""

from __future__ import annotations

from pathlib import Path

from common.errors import ExitCode

DOCS = Path(__file__).resolve().parents[2] / "docs" / "DEPLOYMENT.md"


def test_no_two_exit_codes_share_a_value() -> None:
    values = [code.value for code in ExitCode.__members__.values()]

    assert len(values) == len(set(values)), ExitCode.__members__


def test_the_documented_table_lists_every_code() -> None:
    table = DOCS.read_text(encoding="utf-8").split("### Exit codes", 1)[1]
    rows = {line.split("|")[1].strip() for line in table.splitlines() if line.startswith("| ")}

    assert {str(code.value) for code in ExitCode} <= rows
