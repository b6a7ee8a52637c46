"""The centre's one door to Flower's private modules (Flower 1.42.0, pinned).

Everything the centre's code takes from Flower beyond its documented API (``flwr.app``,
``flwr.clientapp``, ``flwr.client``, ``flwr.client.mod``, the names ``flwr.common``
exports) comes through here, so that an upgrade of Flower is checked in one place:
``tests/common/test_flower_compat.py`` imports every name of :data:`PRIVATE` from its
module and checks that the parameters we pass are in its signature.

What we take, and why the public API does not give it:
- the pieces of Flower's ``flwr-clientapp`` process (``client.federation.runtime`` and
  ``runtime_task``: the SuperNode's runtime client, its interceptors, heartbeat, task
  input and output, signal handling and exit): our executor runs them around the one
  check Flower lacks, that the task's app is one the centre approved;
- ``install_from_fab``, ``get_load_client_app_fn``, ``LoadClientAppError``: how Flower
  installs and loads a FAB's ClientApp, so that an approved app loads as Flower would;
- ``RECORD_KEY_CONFIGS``, ``RECORD_KEY_STATE``: where ``secaggplus_mod`` keeps its
  stage and state in a message and a context (``client.federation.secure``);
- :func:`build_fab`: Flower's ``flwr build``, so that a FAB's hash is the one a run ships.

``Mod`` and ``ClientAppCallable`` are defined here from public types, as Flower defines
them. The names load when first used: importing this module (every ClientApp does)
costs nothing of the runtime's imports.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flwr.app import Context, Message

if TYPE_CHECKING:
    from flwr.cli.install import install_from_fab
    from flwr.clientapp.client_app import LoadClientAppError
    from flwr.clientapp.utils import get_load_client_app_fn
    from flwr.common.constant import ErrorCode, SubStatus
    from flwr.common.secure_aggregation.secaggplus_constants import (
        RECORD_KEY_CONFIGS,
        RECORD_KEY_STATE,
    )
    from flwr.proto.runtime_pb2 import AcquireTaskRequest
    from flwr.supercore.app_utils import start_parent_process_monitor
    from flwr.supercore.auth import load_superexec_auth_secret
    from flwr.supercore.constant import TaskType
    from flwr.supercore.exit import ExitCode as FlowerExitCode
    from flwr.supercore.exit import flwr_exit, register_signal_handlers
    from flwr.supercore.fab import Fab
    from flwr.supercore.heartbeat import HeartbeatSender, make_task_heartbeat_fn_http
    from flwr.supercore.interceptors import (
        RuntimeTokenHttpInterceptor,
        RuntimeVersionHttpInterceptor,
    )
    from flwr.supercore.interceptors.http.superexec_auth import SuperExecAuthHttpInterceptor
    from flwr.supercore.protobuf.client import ProtobufClientInterceptor
    from flwr.supercore.retry import make_simple_http_retry_invoker
    from flwr.supercore.runtime import RuntimeHttpClient
    from flwr.supercore.tls import validate_and_resolve_root_certificates
    from flwr.supernode.runtime.run_clientapp import (
        pull_task_input,
        push_message,
        push_task_output,
    )

__all__ = [
    "PRIVATE",
    "RECORD_KEY_CONFIGS",
    "RECORD_KEY_STATE",
    "AcquireTaskRequest",
    "ClientAppCallable",
    "ErrorCode",
    "Fab",
    "FlowerExitCode",
    "HeartbeatSender",
    "LoadClientAppError",
    "Mod",
    "ProtobufClientInterceptor",
    "RuntimeHttpClient",
    "RuntimeTokenHttpInterceptor",
    "RuntimeVersionHttpInterceptor",
    "SubStatus",
    "SuperExecAuthHttpInterceptor",
    "TaskType",
    "build_fab",
    "flwr_exit",
    "get_load_client_app_fn",
    "install_from_fab",
    "load_superexec_auth_secret",
    "make_simple_http_retry_invoker",
    "make_task_heartbeat_fn_http",
    "pull_task_input",
    "push_message",
    "push_task_output",
    "register_signal_handlers",
    "start_parent_process_monitor",
    "validate_and_resolve_root_certificates",
]

#: Flower's ``flwr.clientapp.typing`` aliases, from public types.
ClientAppCallable = Callable[[Message, Context], Message]
Mod = Callable[[Message, Context, ClientAppCallable], Message]

#: (module, qualified name, the parameters we pass; None: not called) of every private
#: name this door takes from Flower; the door's test checks each.
PRIVATE: tuple[tuple[str, str, tuple[str, ...] | None], ...] = (
    ("flwr.cli.build", "build_fab_from_disk", ("app",)),
    ("flwr.cli.install", "install_from_fab", ("fab_file", "skip_prompt")),
    ("flwr.clientapp.client_app", "LoadClientAppError", None),
    ("flwr.clientapp.utils", "get_load_client_app_fn",
     ("default_app_ref", "app_path", "multi_app")),
    ("flwr.common.constant", "ErrorCode", None),
    ("flwr.common.constant", "SubStatus", None),
    ("flwr.common.secure_aggregation.secaggplus_constants", "RECORD_KEY_CONFIGS", None),
    ("flwr.common.secure_aggregation.secaggplus_constants", "RECORD_KEY_STATE", None),
    ("flwr.proto.runtime_pb2", "AcquireTaskRequest", None),
    ("flwr.supercore.app_utils", "start_parent_process_monitor", ("parent_pid",)),
    ("flwr.supercore.auth", "load_superexec_auth_secret", ("secret_file",)),
    ("flwr.supercore.constant", "TaskType", None),
    ("flwr.supercore.exit", "ExitCode", None),
    ("flwr.supercore.exit", "flwr_exit", ("code", "event_type")),
    ("flwr.supercore.exit", "register_signal_handlers",
     ("event_type", "exit_message", "exit_handlers")),
    ("flwr.supercore.fab", "Fab", None),
    ("flwr.supercore.heartbeat", "HeartbeatSender", ("heartbeat_fn",)),
    ("flwr.supercore.heartbeat", "make_task_heartbeat_fn_http", ("client",)),
    ("flwr.supercore.interceptors", "RuntimeTokenHttpInterceptor", ("token",)),
    ("flwr.supercore.interceptors", "RuntimeVersionHttpInterceptor", ("component_name",)),
    ("flwr.supercore.interceptors.http.superexec_auth", "SuperExecAuthHttpInterceptor",
     ("master_secret", "protected_methods")),
    ("flwr.supercore.protobuf.client", "ProtobufClientInterceptor", None),
    ("flwr.supercore.retry", "make_simple_http_retry_invoker", ()),
    ("flwr.supercore.runtime", "RuntimeHttpClient", None),
    ("flwr.supercore.runtime", "RuntimeHttpClient.from_server_address",
     ("server_address", "insecure", "root_certificates", "interceptors", "retry_invoker")),
    ("flwr.supercore.tls", "validate_and_resolve_root_certificates",
     ("root_cert_path", "insecure")),
    ("flwr.supernode.runtime.run_clientapp", "pull_task_input", ("client",)),
    ("flwr.supernode.runtime.run_clientapp", "push_message", ("client", "message", "context")),
    ("flwr.supernode.runtime.run_clientapp", "push_task_output",
     ("client", "context", "sub_status", "details")),
)

#: Our name of a Flower name, where it differs.
_RENAMED = {"FlowerExitCode": "ExitCode"}
_MODULES = {name: module for module, name, _ in PRIVATE
            if "." not in name and name != "build_fab_from_disk"}  # that one: build_fab


def __getattr__(name: str) -> Any:
    """A private name of :data:`PRIVATE`, imported from Flower when first asked for."""
    flower_name = _RENAMED.get(name, name)
    if flower_name not in _MODULES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_MODULES[flower_name]), flower_name)
    globals()[name] = value
    return value


def build_fab(app_dir: Path) -> bytes:
    """The FAB of ``app_dir`` as ``flwr build`` and ``flwr run`` make it (Flower's own
    function, so its SHA-256 is the one a run of this folder ships)."""
    from flwr.cli.build import build_fab_from_disk

    return build_fab_from_disk(app_dir)
