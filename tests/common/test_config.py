import tomllib
from pathlib import Path

import pytest

from common.config import ConfigError, RunConfig, parse_assignment

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def _flatten(table, prefix=""):
    out = {}
    for key, value in table.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def test_pyproject_app_config_matches_the_typed_defaults():
    app_config = tomllib.loads(PYPROJECT.read_text())["tool"]["flwr"]["app"]["config"]
    assert _flatten(app_config) == RunConfig().to_flat()


def test_flat_round_trip():
    config = RunConfig.from_flat({"rounds": "3", "privacy.epsilon": "1.5", "privacy.dp": "false"})
    assert config.rounds == 3
    assert config.privacy.epsilon == 1.5
    assert config.privacy.dp is False
    assert RunConfig.from_flat(config.to_flat()) == config


@pytest.mark.parametrize(
    ("key", "value"),
    [("rounds", "0"), ("rounds", "two"), ("privacy.epsilon", "-1"), ("privacy.delta", "0.5"),
     ("training.hidden", "64,abc"), ("fraction_train", "1.5"), ("privacy.accountant", "gdp")],
)
def test_bad_values_are_refused_with_one_sentence(key, value):
    with pytest.raises(ConfigError) as info:
        RunConfig.from_flat({key: value})
    message = str(info.value)
    assert message.endswith(".") and "\n" not in message


def test_unknown_key_is_refused():
    with pytest.raises(ConfigError, match=r"Unknown configuration key 'privacy\.epsilonn'"):
        RunConfig.from_flat({"privacy.epsilonn": 1})


def test_parse_assignment():
    assert parse_assignment("privacy.epsilon=1") == ("privacy.epsilon", "1")
    with pytest.raises(ConfigError):
        parse_assignment("rounds")
