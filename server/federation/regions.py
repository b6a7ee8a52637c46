"""The ministry's centre register: the administrative region of each centre and whether
it is an Indigenous-governed board, for the region rows of the equity audit
(``common.equity.pooling.region_cells``).

Two files serve as a register (``evaluation.centre_register`` in the run configuration):

- the ministry's inventory of enrolled centres (``server.deployment.enrolment``, written by
  ``perseverance-server enrol --region R [--indigenous-governed]``): centres are found by
  their SuperNode's node id, which their enrolled key authenticates (the inventory's
  centres are also the replies' identities, ``server.federation.identity``). Entries without a
  region are in no region;
- a simulated network's ``centres.json`` (``perseverance-sim generate``): centres are
  found by the name they declare in their evaluation reply, their data file's name,
  which only the simulation can trust (it wrote the files).

A centre the register does not place is counted in every other audit row, never in a
region row.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from common.equity.audit import Placement
from common.i18n.catalogue import N_


class RegisterError(ValueError):
    """The centre register cannot be read (message is one sentence)."""


@dataclass(frozen=True)
class CentreRegister:
    """Placements by node id (the inventory) and by declared name (a simulated network)."""

    by_node: Mapping[int, Placement] = field(default_factory=dict)
    by_name: Mapping[str, Placement] = field(default_factory=dict)
    #: The inventory's enrolled centre of each node id (keys not revoked): who sent a
    #: reply (``server.federation.identity``). Empty for a simulated network.
    enrolled: Mapping[int, str] = field(default_factory=dict)

    def place(self, node: int, name: str) -> Placement | None:
        """Where the centre of ``node``, which calls itself ``name``, is (None: unknown)."""
        return self.by_node.get(node) or (self.by_name.get(name) if name else None)

    def __len__(self) -> int:
        return len(self.by_node) + len(self.by_name)


def _placement(entry: Mapping[str, object], path: Path) -> Placement | None:
    region = entry.get("region", "")
    governed = entry.get("indigenous_governed", False)
    if not isinstance(region, str) or not isinstance(governed, bool):
        raise RegisterError(N_("The centre register %(path)s has an entry whose region is not "
                               "text or whose indigenous_governed is not true/false.",
                               path=str(path)))
    return Placement(region.strip(), governed) if region.strip() else None


def read_register(path: Path) -> CentreRegister:
    """Read a register: an inventory (``{"centres": [...]}``, by node id) or a network
    manifest (a list of centres with ``centre_id``, by name)."""
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RegisterError(N_("The centre register %(path)s does not exist.",
                               path=str(path))) from None
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise RegisterError(N_("The centre register %(path)s is not readable JSON (%(error)s).",
                               path=str(path), error=str(err))) from err
    if isinstance(payload, dict) and isinstance(payload.get("centres"), list):
        entries, key = payload["centres"], "node_id"
    elif isinstance(payload, list):
        entries, key = payload, "centre_id"
    else:
        raise RegisterError(N_("The centre register %(path)s is neither an inventory of enrolled "
                               "centres nor a network's centres.json.", path=str(path)))
    placements: dict[object, Placement] = {}
    enrolled: dict[int, str] = {}
    for entry in entries:
        if not isinstance(entry, dict) or key not in entry:
            raise RegisterError(N_("The centre register %(path)s has an entry without %(key)s.",
                                   path=str(path), key=key))
        if key == "node_id" and (not isinstance(entry[key], int) or isinstance(entry[key], bool)):
            raise RegisterError(N_("The centre register %(path)s has a node_id that is not a "
                                   "whole number.", path=str(path)))
        placement = _placement(entry, path)
        if placement is not None:
            placements[entry[key]] = placement
        if key == "node_id" and isinstance(entry.get("centre"), str) and \
                not entry.get("revoked_at"):
            enrolled[int(entry[key])] = str(entry["centre"])
    if key == "node_id":
        return CentreRegister(by_node={int(str(k)): p for k, p in placements.items()},
                              enrolled=enrolled)
    return CentreRegister(by_name={str(k): p for k, p in placements.items()})


def register_of(path: str) -> CentreRegister | None:
    """The run's register (``evaluation.centre_register``), None when it names none."""
    return read_register(Path(path).expanduser()) if path else None
