"""The simulations' one door to Flower's (and Ray's) private modules (Flower 1.42.0 and
its Ray 2.55.1, pinned).

The simulations run the centre's and the ministry's apps, which take what they need of
Flower through ``client.flower_compat`` and ``server.flower_compat``; what only the
simulations take is here, so that an upgrade of Flower or Ray is checked in one place
(``tests/common/test_flower_compat.py`` imports every name of :data:`PRIVATE` and checks
the parameters we pass):

- the launch, :func:`run_simulation`, is Flower's public ``flwr.simulation.run_simulation``
  (deprecated in 1.42 in favour of ``flwr run``, which starts a SuperLink and runs the
  simulation in another process, so that no engine can be kept between runs). It hands
  both apps an empty run configuration: the apps are wrapped so that each call sees the
  run's (:class:`ConfiguredClientApp`, :class:`ConfiguredServerApp`), and Flower's log line
  announcing the deprecation is kept out of the terminal (it is known here);
- ``RayBackend``: the simulation engine kept between runs (``simulations.engine``) is
  Flower's Ray backend whose pool outlives a run; Flower builds it by name at each run,
  hence :func:`replace_ray_backend`;
- Ray's dispatcher of the actors' output (``ray._private``), so that what the actors
  print goes to the run's log (:func:`route_actor_output`, :func:`print_actor_output`,
  :func:`autoscaler_events`);
- ``Run``, ``TaskIdentity``, ``SUPERLINK_NODE_ID``, ``ErrorCode``: what a grid in one
  process (``simulations.direct_grid``) needs to make messages as Flower's grids do;
- ``recorddict_to_proto``: a message's size on the wire (``simulations.bench``).

Names load when first used: importing this module imports neither Ray nor Flower's
runtime.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from flwr.app import Context, Message
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp

if TYPE_CHECKING:
    from flwr.common.constant import SUPERLINK_NODE_ID, ErrorCode
    from flwr.common.serde import recorddict_to_proto
    from flwr.server.superlink.fleet.vce.backend.raybackend import RayBackend
    from flwr.supercore.run import Run
    from flwr.supercore.task_identity import TaskIdentity

__all__ = [
    "PRIVATE",
    "SUPERLINK_NODE_ID",
    "ConfiguredClientApp",
    "ConfiguredServerApp",
    "ErrorCode",
    "RayBackend",
    "Run",
    "TaskIdentity",
    "autoscaler_events",
    "print_actor_output",
    "recorddict_to_proto",
    "replace_message_extractor",
    "replace_ray_backend",
    "route_actor_output",
    "run_simulation",
    "stop_routing_actor_output",
]

RAY_BACKEND_MODULE = "flwr.server.superlink.fleet.vce.backend.raybackend"
RAY_LOGGING = "ray._private.ray_logging"
VCE_API_MODULE = "flwr.server.superlink.fleet.vce.vce_api"
LINKSTATE_MODULE = "flwr.server.superlink.linkstate.in_memory_linkstate"
RAY_WORKER = "ray._private.worker"

#: (module, qualified name, the parameters we pass; None: not called) of every private
#: name this door takes from Flower or Ray; the door's test checks each. The public
#: launch is listed too: it is deprecated, and its signature is what we call.
PRIVATE: tuple[tuple[str, str, tuple[str, ...] | None], ...] = (
    ("flwr.common.constant", "SUPERLINK_NODE_ID", None),
    ("flwr.common.constant", "ErrorCode", None),
    ("flwr.common.serde", "recorddict_to_proto", ("recorddict",)),
    (RAY_BACKEND_MODULE, "RayBackend", ("backend_config",)),
    (RAY_BACKEND_MODULE, "RayBackend.build", ("self", "app_fn")),
    (RAY_BACKEND_MODULE, "RayBackend.terminate", ("self",)),
    # How many worker threads Flower's runtime starts (``vce_api.run_api``): the engine
    # lowers it for the bench's run with one worker (``simulations.engine``).
    (RAY_BACKEND_MODULE, "RayBackend.num_workers", None),
    ("flwr.supercore.run", "Run", None),
    # The simulation runtime's extractor, replaced while an engine is open
    # (:func:`replace_message_extractor`), and what the replacement calls.
    (VCE_API_MODULE, "add_messages_to_queue", ("state", "queue", "nodes_mapping", "f_stop")),
    (LINKSTATE_MODULE, "InMemoryLinkState.get_message_ins", ("self", "node_id", "limit")),
    ("flwr.supercore.run", "Run.create_empty", ("run_id",)),
    ("flwr.supercore.task_identity", "TaskIdentity", None),
    ("flwr.simulation", "run_simulation",
     ("server_app", "client_app", "num_supernodes", "backend_name", "backend_config")),
    (RAY_LOGGING, "global_worker_stdstream_dispatcher", None),
    (RAY_LOGGING, "WorkerStandardStreamDispatcher.add_handler", ("self", "name", "handler")),
    (RAY_LOGGING, "WorkerStandardStreamDispatcher.remove_handler", ("self", "name")),
    (RAY_WORKER, "print_to_stdstream", ("data", "ignore_prefix")),
    (RAY_WORKER, "filter_autoscaler_events", ("lines",)),
)

_MODULES = {name: module for module, name, _ in PRIVATE
            if "." not in name and not module.startswith("ray.")
            and name != "run_simulation"}


def __getattr__(name: str) -> Any:
    """A private name of :data:`PRIVATE`, imported when first asked for."""
    if name not in _MODULES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_MODULES[name]), name)
    globals()[name] = value
    return value


# -- the launch ------------------------------------------------------------------------
@contextmanager
def _configured(context: Context, run_config: Mapping[str, Any]) -> Iterator[None]:
    """``context`` with ``run_config`` for the length of one call, then as it was:
    Flower refuses a node's context whose run configuration changed during a call."""
    original = context.run_config
    context.run_config = {**original, **run_config}
    try:
        yield
    finally:
        context.run_config = original


class ConfiguredClientApp(ClientApp):
    """``app`` (a ClientApp), whose every call sees ``run_config`` as the run's
    configuration (Flower's public launch gives the centres an empty one)."""

    def __init__(self, app: ClientApp, run_config: Mapping[str, Any]) -> None:
        super().__init__()
        self.app = app
        self.run_config = dict(run_config)

    def __call__(self, message: Message, context: Context) -> Message:
        with _configured(context, self.run_config):
            return self.app(message=message, context=context)


class ConfiguredServerApp(ServerApp):
    """``app`` (a ServerApp), run with ``run_config`` as the run's configuration."""

    def __init__(self, app: ServerApp, run_config: Mapping[str, Any]) -> None:
        super().__init__()
        self.app = app
        self.run_config = dict(run_config)

    def __call__(self, grid: Grid, context: Context) -> None:
        with _configured(context, self.run_config):
            self.app(grid=grid, context=context)


class _KnownDeprecation(logging.Filter):
    """Flower's log line announcing that ``run_simulation`` is deprecated: known here
    (module docstring), not the user's concern."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "`run_simulation` function is deprecated" not in record.getMessage()


@contextmanager
def _without_known_deprecation() -> Iterator[None]:
    logger, known = logging.getLogger("flwr"), _KnownDeprecation()
    logger.addFilter(known)
    try:
        yield
    finally:
        logger.removeFilter(known)


def run_simulation(*, server_app: ServerApp, client_app: ClientApp, num_supernodes: int,
                   backend_config: dict[str, Any], run_config: Mapping[str, Any]) -> None:
    """Run ``server_app`` and ``client_app`` on Flower's simulation engine (Ray), both
    seeing ``run_config`` (flat keys) as the run's configuration."""
    from flwr.simulation import run_simulation as flower_run_simulation

    with _without_known_deprecation():
        flower_run_simulation(
            server_app=ConfiguredServerApp(server_app, run_config),
            client_app=ConfiguredClientApp(client_app, run_config),
            num_supernodes=num_supernodes,
            backend_name="ray",
            backend_config=backend_config,
        )


# -- the engine kept between runs ----------------------------------------------------------
def replace_ray_backend(factory: Callable[[dict[str, Any]], Any]) -> Callable[[], None]:
    """Make Flower's simulation runtime, which builds its backend with
    ``RayBackend(backend_config)`` looked up at each run, call ``factory`` instead;
    returns what gives Flower its own class back."""
    return _replace(RAY_BACKEND_MODULE, "RayBackend", factory)


def _replace(module_name: str, name: str, replacement: object) -> Callable[[], None]:
    """Set ``name`` of Flower's module ``module_name`` to ``replacement``; returns what
    puts Flower's own back."""
    module = importlib.import_module(module_name)
    original = getattr(module, name)
    setattr(module, name, replacement)

    def restore() -> None:
        setattr(module, name, original)

    return restore


#: Between two sweeps of the light extractor (Flower's waits 0.1 s): a sweep with nothing
#: to hand over costs one look at each stored instruction.
EXTRACT_SECONDS = 0.02


def _light_extractor(state: Any, queue: Any, nodes_mapping: Mapping[int, int],
                     f_stop: Any) -> None:
    """Flower's ``vce_api.add_messages_to_queue``, without its cost.

    Flower's extractor asks the link state, every 0.1 s and for every node, for that
    node's next undelivered instruction; each ask looks at (and checks the expiry of)
    every stored instruction, delivered or not. With N centres and a round's N
    instructions stored, that is N x N checks ten times a second for the whole run:
    12.8 CPU seconds of the driver in one quebec-72 round (72 centres) in which the two
    actors used 26.8 (issue 32), taken from the cores the actors train on. This one
    asks only for the nodes that have an undelivered instruction (one look at the
    stored instructions per sweep), in Flower's node order, through the same
    ``get_message_ins`` (its checks included); the grid's own pulls check expiry too."""
    store = getattr(state, "message_ins_store", None)
    lock = getattr(state, "lock", None)
    while not f_stop.is_set():
        if store is None or lock is None:  # not the in-memory state: Flower's sweep
            waiting: set[int] | None = None
        else:
            with lock:
                waiting = {message.metadata.dst_node_id for message in list(store.values())
                           if message.metadata.delivered_at == ""}
        for node_id in nodes_mapping:
            if waiting is None or node_id in waiting:
                for message in state.get_message_ins(node_id=node_id, limit=1):
                    queue.put(message)
        f_stop.wait(EXTRACT_SECONDS)


def replace_message_extractor() -> Callable[[], None]:
    """Make Flower's simulation runtime (``vce_api.run_api``, which starts its extractor
    thread with the module-level ``add_messages_to_queue``) use :func:`_light_extractor`;
    returns what gives Flower its own back."""
    return _replace(VCE_API_MODULE, "add_messages_to_queue", _light_extractor)


# -- what Ray's actors print ---------------------------------------------------------------
def route_actor_output(handler: Callable[[dict[str, Any]], None]) -> None:
    """Give what Ray's actors print to ``handler`` instead of Ray's printer (Ray's
    dispatcher of the workers' output, its one hook for it)."""
    dispatcher = importlib.import_module(RAY_LOGGING).global_worker_stdstream_dispatcher
    dispatcher.remove_handler("ray_print_logs")
    dispatcher.remove_handler("perseverance")
    dispatcher.add_handler("perseverance", handler)


def stop_routing_actor_output() -> None:
    """Undo :func:`route_actor_output` (Ray's printer is not given back: Ray adds it
    again when it next starts)."""
    importlib.import_module(RAY_LOGGING).global_worker_stdstream_dispatcher.remove_handler(
        "perseverance")


def print_actor_output(data: dict[str, Any]) -> None:
    """Print an actor's output record as Ray prints it."""
    importlib.import_module(RAY_WORKER).print_to_stdstream(data, ignore_prefix=False)


def autoscaler_events(lines: Iterable[str]) -> list[str]:
    """The events among the autoscaler's output lines, as Ray prints them."""
    return list(importlib.import_module(RAY_WORKER).filter_autoscaler_events(list(lines)))
