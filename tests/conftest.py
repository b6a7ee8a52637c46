"""What every test starts from.

The commands choose their language from ``--lang``, else the locale, else French
(``common.i18n.choose``). A test that reads a command's words asks for its language with
``--lang``, or expects the default, French: so the locale of the machine running the
tests must not choose for them. Every test process, and the processes it starts, see a
locale that names no language of ours.
"""

from __future__ import annotations

import os

import pytest

for _name in ("PERSEVERANCE_LANG", "LC_ALL", "LC_MESSAGES"):
    os.environ.pop(_name, None)
os.environ["LANG"] = "C.UTF-8"


def pytest_itemcollected(item: pytest.Item) -> None:
    """Every test marked ``slow`` (the federations, real servers and Ray) runs on one
    xdist worker, one after another, as without xdist: their timeouts were set for a
    machine that runs one federation at a time. The other tests, nearly a thousand
    short ones, run beside them on the other worker (``make pytest``: ``-n 2 --dist
    loadgroup``; xdist reads the groups when the collection is modified, after this)."""
    if item.get_closest_marker("slow") is not None:
        item.add_marker(pytest.mark.xdist_group("federations"))
