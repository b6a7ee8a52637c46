"""The centre register that places centres in regions for the equity audit."""

import json
from pathlib import Path

import pytest

from common.equity.audit import Placement
from server.deployment.enrolment import InventoryEntry, write_inventory
from server.federation.regions import RegisterError, read_register, register_of


def test_a_network_manifest_places_centres_by_their_declared_name(tmp_path: Path) -> None:
    from simulations.network import generate_network, write_network

    network = generate_network(centres=12, students=3_000, seed=7)
    write_network(network, tmp_path)
    register = read_register(tmp_path / "centres.json")
    assert len(register) == 12
    cree = register.place(node=123, name="cree")
    assert cree == Placement("Nord-du-Québec", indigenous_governed=True)
    first = network.centres[0]
    assert register.place(node=5, name=first.centre_id) == Placement(first.region)
    assert register.place(node=5, name="unknown") is None


def test_the_inventory_places_enrolled_centres_by_node_id(tmp_path: Path) -> None:
    path = tmp_path / "inventory.json"
    write_inventory(path, [
        InventoryEntry("css-laval", 11, "SHA256:a", "2026-11-30T00:00:00Z", region="Laval"),
        InventoryEntry("cree", 12, "SHA256:b", "2026-11-30T00:00:00Z",
                       region="Nord-du-Québec", indigenous_governed=True),
        InventoryEntry("css-x", 13, "SHA256:c", "2026-11-30T00:00:00Z"),  # no region
    ])
    register = read_register(path)
    assert register.place(11, "anything") == Placement("Laval")
    # A declared name is not trusted in a deployment: only the enrolled node id counts.
    assert register.place(99, "css-laval") is None
    assert register.place(12, "") == Placement("Nord-du-Québec", True)
    assert register.place(13, "css-x") is None


@pytest.mark.parametrize(
    ("text", "words"),
    [(None, "does not exist"), ("{not json", "not readable JSON"),
     ('{"other": 1}', "neither an inventory"),
     ('[{"region": "Laval"}]', "without centre_id"),
     ('{"centres": [{"node_id": "7", "region": "Laval"}]}', "not a whole number"),
     ('[{"centre_id": "a", "region": 3}]', "region is not text")],
)
def test_a_bad_register_is_one_sentence(tmp_path: Path, text: str | None, words: str) -> None:
    path = tmp_path / "register.json"
    if text is not None:
        path.write_text(text, encoding="utf-8")
    with pytest.raises(RegisterError, match=words):
        read_register(path)


def test_no_register_means_no_region_rows() -> None:
    assert register_of("") is None


def test_an_inventory_from_before_regions_still_reads(tmp_path: Path) -> None:
    path = tmp_path / "inventory.json"
    path.write_text(json.dumps({"centres": [
        {"centre": "a", "node_id": 1, "fingerprint": "f", "enrolled_at": "t"}]}))
    assert len(read_register(path)) == 0
