"""The ministry's one door to Flower's private modules (Flower 1.42.0, pinned).

Everything the ministry's code takes from Flower beyond its documented API (``flwr.app``,
``flwr.serverapp``, ``flwr.server``, ``flwr.server.strategy``, ``flwr.server.workflow``,
the names ``flwr.common`` exports) comes through here, so that an upgrade of Flower is
checked in one place: ``tests/common/test_flower_compat.py`` imports every name listed
in :data:`PRIVATE` from its module and compares its signature with the one we call.

What we take, and why Flower's public API does not give it:
- ``SUPERLINK_NODE_ID``: the sender id of the SuperLink's own error replies (a centre
  gone), told from a centre's error reply (``server.federation.rounds``);
- ``Run`` and ``HttpGrid``: the types of ``Grid.run`` and of the deployed grid, which
  polls every 3 s (``GridView`` polls faster against it);
- ``ClientProxy``, ``MAIN_CONFIGS_RECORD``, ``WorkflowKey``,
  ``default_init_params_workflow`` and ``start_update_client_manager_thread``: the
  pieces of Flower's legacy ``DefaultWorkflow`` that secure mode's own round loop
  (``server.federation.secure.SecureWorkflow``) reuses, since SecAgg+ exists only on the
  legacy path in 1.42;
- :class:`WeighedSecAggPlusWorkflow`: SecAgg+ that also keeps the summed weight factor
  of the unmasked sum (Flower reads it in ``unmask_stage`` and drops it), so that the
  ministry can check the weights inside the masked sum;
- :func:`build_fab`: Flower's ``flwr build``, so that a FAB's hash is the one a run ships.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flwr.common.constant import SUPERLINK_NODE_ID
from flwr.server.client_proxy import ClientProxy
from flwr.server.compat.app_utils import start_update_client_manager_thread
from flwr.server.workflow import SecAggPlusWorkflow
from flwr.server.workflow.constant import MAIN_CONFIGS_RECORD
from flwr.server.workflow.constant import Key as WorkflowKey
from flwr.server.workflow.default_workflows import default_init_params_workflow
from flwr.server.workflow.secure_aggregation import secaggplus_workflow as _secaggplus
from flwr.supercore.run import Run
from flwr.superlink.grid.http_grid import HttpGrid

__all__ = [
    "MAIN_CONFIGS_RECORD",
    "PRIVATE",
    "SUPERLINK_NODE_ID",
    "ClientProxy",
    "HttpGrid",
    "Run",
    "SummedWeight",
    "WeighedSecAggPlusWorkflow",
    "WorkflowKey",
    "build_fab",
    "default_init_params_workflow",
    "start_update_client_manager_thread",
    "summed_weight",
]

#: (module, qualified name, the parameters we pass, in order; None: not called) of
#: every private name this door takes from Flower; the door's test checks each.
PRIVATE: tuple[tuple[str, str, tuple[str, ...] | None], ...] = (
    ("flwr.common.constant", "SUPERLINK_NODE_ID", None),
    ("flwr.server.client_proxy", "ClientProxy", None),
    ("flwr.server.compat.app_utils", "start_update_client_manager_thread",
     ("grid", "client_manager")),
    ("flwr.server.workflow.constant", "MAIN_CONFIGS_RECORD", None),
    ("flwr.server.workflow.constant", "Key", None),
    ("flwr.server.workflow.default_workflows", "default_init_params_workflow",
     ("grid", "context")),
    ("flwr.server.workflow.secure_aggregation.secaggplus_workflow", "factor_extract",
     ("parameters",)),
    ("flwr.server.workflow.secure_aggregation.secaggplus_workflow",
     "SecAggPlusWorkflow.unmask_stage", ("self", "grid", "context", "state")),
    ("flwr.supercore.run", "Run", None),
    ("flwr.superlink.grid.http_grid", "HttpGrid", None),
    ("flwr.cli.build", "build_fab_from_disk", ("app",)),
)


def build_fab(app_dir: Path) -> bytes:
    """The FAB of ``app_dir`` as ``flwr build`` and ``flwr run`` make it (Flower's own
    function, imported here when called: it loads Flower's command-line tools)."""
    from flwr.cli.build import build_fab_from_disk

    return build_fab_from_disk(app_dir)


@dataclass(frozen=True)
class SummedWeight:
    """The weight factor inside a SecAgg+ sum: the sum over the centres whose masked
    vectors were summed of ``round(weight / max_weight * levels)`` (each honest term at
    most ``levels``), as the ministry unmasked it (modulo SecAgg+'s modulus)."""

    factor: int
    levels: int
    max_weight: float


_summed = threading.local()
#: Looked up by name: Flower's module imports it (it does not export it).
_flower_factor_extract = getattr(_secaggplus, "factor_extract")  # noqa: B009


def _recording_factor_extract(parameters: Any) -> tuple[Any, Any]:
    """Flower's ``factor_extract`` (what it returns is unchanged), remembering the
    factor for :func:`summed_weight` in this thread."""
    factor, rest = _flower_factor_extract(parameters)
    _summed.factor = int(factor)
    return factor, rest


class WeighedSecAggPlusWorkflow(SecAggPlusWorkflow):
    """Flower's SecAgg+ workflow; in its unmask stage, the summed weight factor is kept
    (:func:`summed_weight`) for the strategy's ``aggregate_fit``, which Flower calls from
    that stage, in the same thread."""

    def unmask_stage(self, grid: Any, context: Any, state: Any) -> bool:
        setattr(_secaggplus, "factor_extract", _recording_factor_extract)  # noqa: B010
        _summed.factor = None
        _summed.levels = int(state.quantization_range)
        _summed.max_weight = float(state.max_weight)
        try:
            return bool(super().unmask_stage(grid, context, state))
        finally:
            _summed.factor = None


def summed_weight() -> SummedWeight | None:
    """The weight factor of the SecAgg+ sum being aggregated in this thread (None:
    outside a :class:`WeighedSecAggPlusWorkflow`'s unmask stage)."""
    factor = getattr(_summed, "factor", None)
    if factor is None:
        return None
    return SummedWeight(factor, _summed.levels, _summed.max_weight)
