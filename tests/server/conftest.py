"""Shared set-up of the server tests: a small generated network whose centres may take part."""

from __future__ import annotations

from pathlib import Path

from simulations.network import generate_network, write_network


def small_network(folder: Path, centres: int, students: int, seed: int) -> Path:
    """A generated network of ``centres`` in ``folder``, with a site policy that lets its
    smallest centres (a few dozen training students) take part: no minimum, as their
    released size (noise std 50) would often fall below one."""
    write_network(generate_network(centres=centres, students=students, seed=seed), folder)
    (folder / "policy.toml").write_text("min_records = 0\n", encoding="utf-8")
    return folder
