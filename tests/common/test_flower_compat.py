"""The doors to Flower's private modules (``client.flower_compat``, ``server.flower_compat``,
``simulations.flower_compat``), checked against the pinned Flower (issue 29, point 2).

After an upgrade of Flower (or of the Ray it pins), these tests name what moved: a name
a door takes that is gone, a signature that no longer takes what we pass, a hook of
Flower's that no longer works as the door assumes, and any import of Flower's private
modules that bypasses the doors.
"""

from __future__ import annotations

import ast
import importlib
import importlib.metadata
import inspect
import re
import tomllib
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from flwr.app import Context, RecordDict

import client.flower_compat as client_door
import server.flower_compat as server_door
import simulations.flower_compat as simulations_door

REPO = Path(__file__).resolve().parents[2]
DOORS: list[ModuleType] = [client_door, server_door, simulations_door]
#: What Flower documents as its API (flwr.app, flwr.clientapp, ..., the names
#: ``flwr.common`` exports): any other flwr module is private.
PUBLIC = {"flwr.app", "flwr.clientapp", "flwr.clientapp.mod", "flwr.serverapp",
          "flwr.serverapp.strategy", "flwr.client", "flwr.client.mod", "flwr.server",
          "flwr.server.strategy", "flwr.server.workflow", "flwr.common", "flwr.simulation"}
ENTRIES = [(door.__name__, *entry) for door in DOORS for entry in door.PRIVATE]


def _resolve(module: str, qualname: str) -> Any:
    found: Any = importlib.import_module(module)
    for part in qualname.split("."):
        found = getattr(found, part)
    return found


def test_the_pinned_flower_and_ray_are_installed() -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    pins = [d for d in pyproject["project"]["dependencies"] if d.startswith("flwr")]

    assert pins == ["flwr[simulation]==1.42.0"]
    assert importlib.metadata.version("flwr") == "1.42.0"
    assert importlib.metadata.version("ray") == "2.55.1"  # what flwr 1.42.0 pins


@pytest.mark.parametrize(("door", "module", "qualname", "params"), ENTRIES,
                         ids=[f"{e[0].split('.')[0]}:{e[1]}.{e[2]}" for e in ENTRIES])
def test_each_private_name_exists_with_the_parameters_we_pass(
        door: str, module: str, qualname: str, params: tuple[str, ...] | None) -> None:
    found = _resolve(module, qualname)
    if params is None:
        return
    signature = inspect.signature(found)
    names = set(signature.parameters)
    takes_any = any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values())
    required = {name for name, p in signature.parameters.items()
                if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}

    assert takes_any or set(params) <= names, (door, qualname, signature)
    assert required <= set(params), (door, qualname, signature)


@pytest.mark.parametrize("door", DOORS, ids=[d.__name__ for d in DOORS])
def test_each_name_a_door_exports_is_there(door: ModuleType) -> None:
    for name in door.__all__:
        assert getattr(door, name) is not None, name


def test_a_door_hands_over_flowers_own_objects() -> None:
    from flwr.supercore.run import Run
    from flwr.supercore.runtime import RuntimeHttpClient

    assert client_door.RuntimeHttpClient is RuntimeHttpClient
    assert server_door.Run is Run and simulations_door.Run is Run
    with pytest.raises(AttributeError):
        client_door.not_a_name  # noqa: B018


def test_flowers_hooks_still_work_as_the_doors_assume() -> None:
    """The summed weight is read where Flower's unmask stage extracts it by its
    module-level name; the kept engine's backend is the one Flower's runtime builds by
    its module-level name at each run."""
    from flwr.server.superlink.fleet.vce import vce_api
    from flwr.server.workflow import SecAggPlusWorkflow

    unmask = inspect.getsource(SecAggPlusWorkflow.unmask_stage)
    assert re.search(r"= factor_extract\(", unmask)
    assert re.search(r"from \.backend\.raybackend import RayBackend", inspect.getsource(vce_api))
    assert issubclass(server_door.WeighedSecAggPlusWorkflow, SecAggPlusWorkflow)


def test_the_configured_apps_see_the_runs_configuration() -> None:
    """Flower's public launch gives both apps an empty run configuration; the door's
    wrappers give each call the run's."""
    seen: dict[str, Any] = {}

    def client_app(message: Any, context: Context) -> Any:
        seen["client"] = dict(context.run_config)
        return message

    def server_app(grid: Any, context: Context) -> None:
        seen["server"] = dict(context.run_config)

    contexts = [Context(run_id=1, node_id=node, node_config={}, state=RecordDict(),
                        run_config={}) for node in (2, 0)]
    simulations_door.ConfiguredClientApp(client_app, {"rounds": 3})(  # type: ignore[arg-type]
        message="m", context=contexts[0])  # type: ignore[arg-type]
    simulations_door.ConfiguredServerApp(server_app, {"rounds": 3})(  # type: ignore[arg-type]
        grid="g", context=contexts[1])  # type: ignore[arg-type]

    assert seen == {"client": {"rounds": 3}, "server": {"rounds": 3}}
    # Left as Flower gave them: it refuses a node's context whose configuration changed.
    assert [c.run_config for c in contexts] == [{}, {}]


def _private_imports(path: Path) -> list[str]:
    """The private Flower (or Ray) modules ``path`` imports, at any depth."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
            [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
        for name in names:
            private_flower = name.split(".")[0] == "flwr" and name not in PUBLIC
            if private_flower or name.startswith("ray._private"):
                found.append(f"{path.relative_to(REPO)}: {name}")
    return found


def test_no_code_reaches_flowers_private_modules_but_through_a_door() -> None:
    doors = {REPO / f"{door.__name__.replace('.', '/')}.py" for door in DOORS}
    found = [hit for package in ("common", "client", "server", "simulations")
             for path in sorted((REPO / package).rglob("*.py")) if path not in doors
             for hit in _private_imports(path)]

    assert found == []


def test_an_open_engine_hands_instructions_over_with_the_light_extractor() -> None:
    """Flower's runtime starts its extractor thread by the module-level name (issue 32:
    Flower's own took a quarter of a core at quebec-72); an open engine replaces it and
    its close gives Flower's back. Opening an engine starts nothing (no Ray)."""
    from flwr.server.superlink.fleet.vce import vce_api

    from simulations.engine import SimulationEngine

    assert re.search(r"target=add_messages_to_queue\b", inspect.getsource(vce_api.run_api))
    original = vce_api.add_messages_to_queue
    with SimulationEngine({}):
        assert vce_api.add_messages_to_queue is simulations_door._light_extractor
    assert vce_api.add_messages_to_queue is original
