"""What every test starts from.

The commands choose their language from ``--lang``, else the locale, else French
(``common.i18n.catalogue.choose``). A test that reads a command's words asks for its language with
``--lang``, or expects the default, French: so the locale of the machine running the
tests must not choose for them. Every test process, and the processes it starts, see a
locale that names no language of ours.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from hypothesis import settings

# Hypothesis draws the same examples in every run of `make test` and `make test-fast`
# (a failure is a change of the code, never a draw); `make fuzz` (PERSEVERANCE_FUZZ=1)
# explores fresh random examples, many more of them. A test's own @settings may ask for
# more or fewer examples; it does not choose the randomness (none sets derandomize).
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("fuzz", derandomize=False, deadline=None, max_examples=300,
                          print_blob=True)
FUZZ = os.environ.get("PERSEVERANCE_FUZZ", "") not in ("", "0")
settings.load_profile("fuzz" if FUZZ else "ci")

if TYPE_CHECKING:
    from tests.simulations.conftest import TinyRun

for _name in ("PERSEVERANCE_LANG", "LC_ALL", "LC_MESSAGES"):
    os.environ.pop(_name, None)
os.environ["LANG"] = "C.UTF-8"


def pytest_itemcollected(item: pytest.Item) -> None:
    """The tests marked ``slow`` (the federations, real servers and Ray) run in two
    xdist groups, each on one worker, one test after another: the real deployments on
    loopback (``tests/deploy``) and the simulated federations (the rest), so that at
    most two federations run at once, one per core, each using about one core (their
    timeouts hold so). The other tests, nearly a thousand short ones, fill the workers
    around them (``make pytest``: ``-n 2 --dist loadgroup``; xdist reads the groups when
    the collection is modified, after this). One group for all of them left one worker
    idle for the second half of the run (19 of 23 minutes on a slow day)."""
    if item.get_closest_marker("slow") is not None:
        deploy = Path(str(item.path)).is_relative_to(Path(__file__).parent / "deploy")
        item.add_marker(pytest.mark.xdist_group("deploy" if deploy else "federations"))


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The container tests (marker ``containers``) last, after the rest of their group:
    under ``make test`` their images are built beside the suite, and the loopback
    deployments run meanwhile (tests/deploy/compose_podman.py waits for the build)."""
    items.sort(key=lambda item: item.get_closest_marker("containers") is not None)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> TinyRun:
    """``perseverance-sim run --scenario tiny``, made once per test process for the tests of
    tests/simulations and the console's real runs (tests/server), which run in the same
    xdist group (``federations``), so in the same process: one engine start and one tiny
    federation fewer in ``make test``."""
    from tests.simulations.conftest import make_tiny_run

    return make_tiny_run(tmp_path_factory)
