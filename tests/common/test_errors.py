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


# Exceptions that are control flow inside the ServerApp (the run stops cleanly and says
# why in its summary), not errors a command ends with.
NOT_USER_ERRORS = {"server.federation.bookkeeping.FederationStopped",
                   "server.federation.bookkeeping.CentresRefused",
                   "server.federation.rounds.CentresAbsent",
                   "server.federation.regions.RegisterError",
                   # Programming errors and internal signals (they still raise).
                   "common.releases.UndeclaredRelease",  # a reply the table does not declare
                   "common.files.FileExists"}  # an exclusive write; callers say it in words


def test_every_error_a_user_can_cause_is_a_perseverance_error() -> None:
    import importlib
    import inspect
    import pkgutil

    from common.errors import PerseveranceError

    outside = []
    for root in ("common", "client", "server", "simulations"):
        package = importlib.import_module(root)
        for info in pkgutil.walk_packages(package.__path__, f"{root}."):
            module = importlib.import_module(info.name)
            for name, cls in inspect.getmembers(module, inspect.isclass):
                qualified = f"{cls.__module__}.{name}"
                if (cls.__module__ == info.name and issubclass(cls, Exception)
                        and not issubclass(cls, PerseveranceError)
                        and qualified not in NOT_USER_ERRORS):
                    outside.append(qualified)

    assert outside == []
