"""The simulation on a two-node Ray cluster of podman containers gives the one-node
result: a head and a worker (the Ray node image, ``make images-ray``), one core each, on
one podman network; the tiny scenario submitted from the head with
``--set backend.address=HEAD:6379`` (a researcher's command for an existing cluster);
the same scenario and seed run on one node (one container of the same image, in-process
Ray on two cores); then nothing of the test left (every container and network is named
``pvray-<pid>-...`` and removed by name).

Needs rootful podman and the Ray node image; skipped otherwise. ``make test-containers``
builds the images and runs this test.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from tests.deploy.compose_podman import cannot_run, podman_problem, wait_for_image_build
from tests.deploy.ray_cluster import (
    IMAGE,
    PodmanRayCluster,
    figure_differences,
    left_behind,
    run_one_node,
)
from tests.simulations.conftest import TINY_RUN

pytestmark = [pytest.mark.slow, pytest.mark.containers, pytest.mark.timeout(3600)]

#: The tiny scenario's messages to centres: 3 centres, 2 rounds, a train and an
#: evaluate message each per round (at least): each node's share is at least one.
CENTRES = 3


def _why_not() -> str | None:
    return podman_problem([IMAGE], "make images-ray")


def test_tiny_on_a_two_node_ray_cluster_of_containers_equals_the_one_node_run(
    tmp_path: Path,
) -> None:
    reason = wait_for_image_build() or _why_not()
    if reason:
        cannot_run(reason)
    prefix = f"pvray-{os.getpid()}"
    shared = tmp_path / "runs"
    single = run_one_node(prefix, shared, "one-node", *TINY_RUN)
    one_node = single.summary()

    cluster = PodmanRayCluster(prefix, shared, workers=1, cpus=1)
    try:
        cluster.start()
        ips = {cluster.ip(cluster.head), cluster.ip(cluster.worker_names[0])}
        # Two nodes, one core each: the tiny run's 3 centres (1 core each) need both.
        assert cluster.nodes() == dict.fromkeys(ips, 1.0)
        on_cluster = cluster.run("two-nodes", *TINY_RUN)
        two_nodes = on_cluster.summary()
        ran = cluster.tasks_per_node()
        assert left_behind(prefix), "the cluster should still be running"
    finally:
        left = cluster.stop()
    assert not left, f"left behind: {left}"
    assert left_behind(prefix) == []

    # Both nodes ran the centres' work: each ClientApp actor's warm-up call, plus at least
    # two of the centres' messages on each node.
    assert set(ran) == ips, ran
    assert all(node["tasks"] >= 3 for node in ran.values()), ran
    assert sum(node["tasks"] for node in ran.values()) >= 2 + 2 * 2 * CENTRES, ran
    print(f"\none node {single.seconds:.1f} s, two nodes {on_cluster.seconds:.1f} s; "
          f"tasks per node {ran}")

    # The same figures: every key of summary.json but the run's name, the command's
    # overrides (the cluster's address) and the timings; and the same final weights, to
    # the bit (the server sums the centres' updates in the centres' order, not in their
    # replies' order of arrival: server/federation/strategy.py).
    assert two_nodes["rounds_completed"] == one_node["rounds_completed"] == 2
    assert figure_differences(one_node, two_nodes) == {}
    cluster_model = torch.load(on_cluster.out / "model.pt", weights_only=True)
    local_model = torch.load(single.out / "model.pt", weights_only=True)
    assert cluster_model["state_dict"].keys() == local_model["state_dict"].keys()
    for key, value in local_model["state_dict"].items():
        assert torch.equal(cluster_model["state_dict"][key], value), key
