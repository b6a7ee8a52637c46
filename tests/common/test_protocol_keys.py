"""Every key that passes between the ServerApp and the ClientApp is a constant of
``common.protocol``: no module spells one as a literal string (a typo there would be a
key the other side never reads)."""

from __future__ import annotations

import ast
from pathlib import Path

from common import protocol

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("client", "common", "server", "simulations")
#: Literals left on purpose, by file and value. ``common.equity.audit`` builds the
#: ``eq.`` cell keys itself: ``common.protocol`` imports it (for typing), so it cannot
#: import the protocol back without a cycle between siblings. ``simulations/bench.py``
#: builds its own instruction and reply to time the aggregation (another change owns it).
ALLOWED = {
    ("common/equity/audit.py", protocol.EQUITY_PREFIX),
    ("simulations/bench.py", protocol.SERVER_ROUND),
    ("simulations/bench.py", protocol.NUM_EXAMPLES),
}


def _wire_keys() -> dict[str, str]:
    """Value -> name of the protocol's key constants that cannot be mistaken for a
    word (they hold a dash, dot or underscore: ``num-examples``, ``noise.trust``)."""
    return {value: name for name, value in vars(protocol).items()
            if name.isupper() and isinstance(value, str) and any(c in value for c in "-._")}


def test_the_wire_keys_are_distinct() -> None:
    names = [name for name, value in vars(protocol).items()
             if name.isupper() and isinstance(value, str) and any(c in value for c in "-._")]
    assert len(set(_wire_keys())) == len(names)


def test_no_module_spells_a_wire_key() -> None:
    keys = _wire_keys()
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            where = path.relative_to(ROOT).as_posix()
            if where == "common/protocol.py":
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if (isinstance(node, ast.Constant) and node.value in keys
                        and (where, node.value) not in ALLOWED):
                    found.append(f"{where}:{node.lineno}: {node.value!r} "
                                 f"(common.protocol.{keys[node.value]})")
    assert not found, "\n".join(found)
