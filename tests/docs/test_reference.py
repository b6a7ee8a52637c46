"""The reference pages (docs/reference/) say what the code does: the command reference is
the one the three typer apps write today, in both languages, and the configuration
reference names every key of common/config.py with its default, and every table of a
scenario with its keys."""

from __future__ import annotations

import dataclasses
import re
import tomllib
from pathlib import Path

import pytest

from common.config import RunConfig
from tests.docs.cli_reference import FILES, render

REFERENCE = Path(__file__).resolve().parents[2] / "docs" / "reference"
CONFIG_PAGES = ("configuration.md", "configuration.en.md")
#: Filled by the command itself, never given by a person.
INTERNAL = {"scenario", "run_dir", "data_dir"}


@pytest.mark.parametrize("lang", sorted(FILES))
def test_the_command_reference_is_the_one_the_code_writes(lang: str) -> None:
    written = FILES[lang].read_text(encoding="utf-8")
    assert written == render(lang), (
        f"{FILES[lang].name} no longer matches the commands: "
        "run `.venv/bin/python -m tests.docs.cli_reference` and read the diff")


def test_the_command_reference_names_every_command_and_option() -> None:
    text = FILES["en"].read_text(encoding="utf-8")
    for heading in ("`perseverance-client validate`", "`perseverance-sim years`",
                    "`perseverance-server pki revoke-centre`", "`perseverance-client app approve`"):
        assert heading in text
    assert "| `--mapping`, `-m` |" in text and "(required)" in text


def _table(page: str) -> dict[str, object]:
    rows = {}
    for line in (REFERENCE / page).read_text(encoding="utf-8").splitlines():
        match = re.match(r"\| `([a-z_.]+)` \| (.+?) \|", line)
        if match:
            rows[match.group(1)] = tomllib.loads(f"value = {match.group(2)}")["value"]
    return rows


@pytest.mark.parametrize("page", CONFIG_PAGES)
def test_every_configuration_key_and_its_default(page: str) -> None:
    flat = {k: v for k, v in RunConfig().to_flat().items() if k not in INTERNAL}
    documented = _table(page)

    assert sorted(documented) == sorted(flat), (
        f"{page}: missing {sorted(set(flat) - set(documented))}, "
        f"not keys {sorted(set(documented) - set(flat))}")
    wrong = {k: (documented[k], v) for k, v in flat.items() if documented[k] != v}
    assert not wrong, f"{page}: defaults differ (page, code): {wrong}"


@pytest.mark.parametrize("page", CONFIG_PAGES)
def test_every_scenario_table_and_its_keys(page: str) -> None:
    from simulations.scenario import SECTIONS

    text = (REFERENCE / page).read_text(encoding="utf-8")
    for section, spec in SECTIONS.items():
        bullet = re.search(rf"^- `\[{section}\]`(.*?)(?=^- |\Z)", text, re.M | re.S)
        assert bullet, f"{page}: no [{section}]"
        for field in dataclasses.fields(spec):
            assert f"`{field.name}`" in bullet.group(1), f"{page}: [{section}] {field.name}"
