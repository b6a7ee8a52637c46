from pathlib import Path

import pytest

from common.config import ConfigError
from simulations.sweep import SweepPoint, parse_epsilons, table, write_outputs


def test_parse_epsilons_with_a_run_without_dp():
    assert parse_epsilons("0.5, 1,2,none") == [0.5, 1.0, 2.0, None]


@pytest.mark.parametrize("bad", ["", "1,abc", "-1", "0", "inf"])
def test_bad_epsilons_are_refused(bad):
    with pytest.raises(ConfigError):
        parse_epsilons(bad)


def test_sweep_outputs_table_figure_and_json(tmp_path: Path):
    points = [SweepPoint(1.0, 0.77, 0.78, 0.80, 1.0, "a"),
              SweepPoint(4.0, 0.79, 0.795, 0.80, 4.0, "b"),
              SweepPoint(None, 0.80, 0.80, 0.80, None, "c")]
    write_outputs("demo", points, tmp_path)
    assert (tmp_path / "sweep.png").stat().st_size > 5000
    text = (tmp_path / "sweep.md").read_text()
    assert "| no DP | - | 0.800 |" in text and text == table(points)
    assert (tmp_path / "sweep.json").is_file()
