"""Which centre sent a reply: the node that sent it, never what the reply says.

The SuperLink authenticates every SuperNode by its enrolled key and stamps its node id on
each reply (``msg.metadata.src_node_id``; on the SecAgg+ legacy path, the ClientProxy's
node id). The ministry names a reply's centre by that node:

- with the inventory of enrolled centres (``server.deployment.enrolment``, given as the
  run's ``evaluation.centre_register``), a node is the centre enrolled with its key;
- without one (simulation, ``simulations.direct_grid``, a deployment that gives no
  inventory), a node is bound to the first name it declares in the run, and no other
  node can take that name afterwards. Only the inventory makes this authentication: a
  hostile centre that declares a name before its owner takes it for the run.

A reply that declares a name other than its node's (in its ``centre`` record, in its
records head's ``actor`` or at the head of a refusal), or a name enrolled to another
centre, is rejected: its head is not anchored, its release not used, and the ministry's
audit log says so (``identity_rejected``). Names a centre declares are its data file's
name; with an inventory they may differ from the enrolled name (the centre then checks
its records with ``perseverance-client audit verify --actor ENROLLED``), but a node keeps
the one it declared first.
"""

from __future__ import annotations

from collections.abc import Mapping


class CentreIdentities:
    """The run's map from node ids to centres.

    A reply declares two names: the centre's (its ``centre`` record, the head of a
    refusal: its data file's name) and its records' actor (its head's ``actor``: the
    name in its own audit log). Each is bound to the first node that declares it, and
    each node keeps the first of each it declared.

    Parameters
    ----------
    enrolled : Mapping[int, str] | None
        The enrolled centre of each node id (the inventory's entries that are not
        revoked); None or empty without an inventory.
    """

    def __init__(self, enrolled: Mapping[int, str] | None = None) -> None:
        self.enrolled = dict(enrolled or {})
        self._enrolled_names = set(self.enrolled.values())
        self.declared: dict[int, str] = {}  # node -> the centre name it declared first
        self.actors: dict[int, str] = {}  # node -> the records' actor it declared first
        self._owners: dict[tuple[str, str], int] = {}  # (kind, name) -> the node that has it

    def of(self, node: int) -> str:
        """The centre of ``node``: its enrolled name, else the name it first declared,
        else ``node N``."""
        return self.enrolled.get(node) or self.declared.get(node) or f"node {node}"

    def actor(self, node: int) -> str:
        """The name the ministry files ``node``'s records heads under: its enrolled name,
        else the actor it first declared, else :meth:`of`."""
        return self.enrolled.get(node) or self.actors.get(node) or self.of(node)

    def check(self, node: int, name: object = "", actor: object = "") -> str | None:
        """Why a reply from ``node`` declaring the centre ``name`` and the records'
        ``actor`` (empty ones ignored) cannot be this node's, or None. The first
        accepted declarations bind the names to the node for the rest of the run."""
        claims = [(kind, value, bound) for kind, value, bound in
                  (("name", name, self.declared), ("actor", actor, self.actors))
                  if isinstance(value, str) and value]
        for kind, value, bound in claims:
            problem = self._problem(node, kind, value, bound)
            if problem is not None:
                return problem
        for kind, value, bound in claims:
            bound.setdefault(node, value)
            self._owners.setdefault((kind, value), node)
        return None

    def _problem(self, node: int, kind: str, value: str, bound: dict[int, str]) -> str | None:
        owner = self.enrolled.get(node)
        if value in self._enrolled_names and value != owner:
            return f"it declares {value}, enrolled with another node's key"
        mine = bound.get(node)
        if mine is not None and value != mine:
            return f"it declares {value}, but node {node} declared {mine} in this run"
        taken = self._owners.get((kind, value))
        if taken is not None and taken != node and owner is None:
            # With an inventory, data files' names may repeat between centres: the
            # enrolled name is the identity there; a declared one only has to stay put.
            return f"it declares {value}, already declared by node {taken} in this run"
        return None
