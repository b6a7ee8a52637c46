"""The operations console in the ministry's deployment on loopback: the real SuperLink,
nginx and operator tunnel; the console under /console/ on the operator listener only
(with an operator's certificate, GET only), never on the centres' listener; the
federation page shows an enrolled centre connected, as the SuperLink reports it."""

from __future__ import annotations

import http.client
import ssl
from collections.abc import Iterator
from typing import Any

import pytest

from server.deployment import enrolment
from server.deployment import programs as deployment
from server.deployment.pki import PkiPaths
from server.deployment.processes import ProcessGroup, free_ports, offline_environment, wait_until
from simulations.loopback.launcher import nodes_online
from simulations.loopback.sides import HOST, Ministry, start_ministry
from tests.server.console_fixtures import console_server, write_runs

pytestmark = pytest.mark.slow
CENTRE = "css-registered"
STRANGER = "css-stranger"


@pytest.fixture(scope="module")
def deployed(nginx: str, pki_dir: PkiPaths,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("console-ministry")
    (tmp / "state").mkdir()
    env = offline_environment({"FLWR_HOME": str(tmp / "flwr-home")})
    group = ProcessGroup(tmp / "logs", env)
    runs = tmp / "runs"
    runs.mkdir()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PERSEVERANCE_MINISTRY_KEY", str(tmp / "ministry-records.key"))
        write_runs(runs)
        try:
            superlink, centres, operator, tunnel, console = free_ports(5)
            ministry = Ministry(pki_dir, tmp / "state", superlink, centres, operator,
                                tmp / "nginx", tunnel, console_port=console)
            start_ministry(group, ministry)
            inventory = tmp / "inventory.json"
            enrolment.enrol(CENTRE, pki_dir.centre_public_key(CENTRE), inventory,
                            deployment.OPERATOR_CONNECTION, env)
            # A key registered at the SuperLink without the inventory (never connected).
            stranger = enrolment.register_public_key(
                pki_dir.centre_public_key(STRANGER), deployment.OPERATOR_CONNECTION, STRANGER,
                env)
            group.start("supernode", deployment.supernode_argv(
                enrolment.flower_executable("flower-supernode"), ministry.fleet_address,
                pki_dir.ca_certificate, pki_dir.centre_private_key(CENTRE), HOST,
                free_ports(1)[0], ""))
            wait_until(lambda: nodes_online(env) == 1, timeout=60, what="the SuperNode online",
                       group=group, interval=1.0)
            with console_server("--runs", str(runs), "--inventory", str(inventory),
                                "--superlink", ministry.tunnel_address,
                                "--root-path", "/console",
                                log=tmp / "console.log", port=console):
                yield {"ministry": ministry, "paths": pki_dir, "stranger": stranger}
        finally:
            group.stop_all()


def _get(deployed: dict[str, Any], address: str, path: str, *, operator: bool = True,
         method: str = "GET") -> tuple[int, str]:
    paths: PkiPaths = deployed["paths"]
    host, port = address.rsplit(":", 1)
    context = ssl.create_default_context(cafile=str(paths.ca_certificate))
    if operator:
        name = deployed["ministry"].operator
        context.load_cert_chain(str(paths.operator_certificate(name)),
                                str(paths.operator_key(name)))
    connection = http.client.HTTPSConnection(host, int(port), context=context, timeout=20)
    try:
        connection.request(method, path, headers={"Accept-Language": "fr-CA"})
        response = connection.getresponse()
        return response.status, response.read().decode("utf-8", errors="replace")
    finally:
        connection.close()


def test_the_console_is_served_on_the_operator_listener(deployed: dict[str, Any]) -> None:
    operator = deployed["ministry"].operator_address

    status, page = _get(deployed, operator, "/console/")
    assert status == 200
    assert 'href="/console/runs"' in page  # links carry the proxy's prefix
    row = page.split(f'data-centre="{CENTRE}"')[1].split("</tr>")[0]
    # The SuperLink's view, through the console's operator tunnel.
    assert "connecté" in row, page.split("<h1>")[1][:600]
    unknown = page.split(f'data-node="{deployed["stranger"]}"')[1].split("</tr>")[0]
    assert "absent de l'inventaire" in unknown and "inscrit, jamais connecté" in unknown
    status, runs = _get(deployed, operator, "/console/runs")
    assert status == 200 and "terminé" in runs


def test_the_console_needs_an_operator_certificate_and_reads_only(
        deployed: dict[str, Any]) -> None:
    operator = deployed["ministry"].operator_address

    status, _ = _get(deployed, operator, "/console/", operator=False)
    assert status == 400  # nginx: no required SSL certificate was sent
    status, _ = _get(deployed, operator, "/console/runs", method="POST")
    assert status == 403


def test_the_console_is_not_on_the_centres_listener(deployed: dict[str, Any]) -> None:
    status, _ = _get(deployed, deployed["ministry"].fleet_address, "/console/",
                     operator=False)
    assert status == 404

