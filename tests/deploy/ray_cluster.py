"""A Ray cluster of podman containers on this machine: a head and workers on one podman
network, from the Ray node image (``make images-ray``: deploy/ray/Dockerfile, the app
image plus ray==2.55.1), each node limited to ``cpus`` cores (``podman run --cpus`` and
``ray start --num-cpus``), so that a simulation needing more concurrent centres than one
node holds really spreads over the nodes.

The simulation is submitted as a researcher submits it to an existing cluster: from the
head node, ``perseverance-sim run ... --set backend.address=HEAD:6379``. Every node
mounts one host folder at the same path (``RUNS``), the shared storage a real cluster
needs: the centres' data files, their ledgers and the run folder live there.

Everything this module creates is named ``<prefix>-...`` and removed by name
(:meth:`PodmanRayCluster.stop`): never ``podman system prune``, never ``ray stop``.

``python -m tests.deploy.ray_cluster [--scenario tiny] [--set KEY=VALUE ...]`` runs a
scenario once on one node (one container, in-process Ray, ``2 x cpus`` cores) and once on
the two-node cluster with the same seed, prints both wall times and whether the figures
are equal, and removes everything (docs/BENCHMARKS.md's cluster figures).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from tests.deploy.compose_podman import podman

ROOT = Path(__file__).resolve().parents[2]
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"][
    "version"]
IMAGE = f"localhost/perseverance/ray:{VERSION}"
RUNS = "/app/work/runs"  # the shared run folders, at the same path on every node
UID = 49999  # the images' user (deploy/app.Dockerfile)
HEAD_PORT = 6379
#: Ray's object store per node: the simulation's arrays are small; podman's default
#: /dev/shm (64 MB) is raised to hold it.
OBJECT_STORE_BYTES = 200_000_000
SHM_SIZE = "512m"
#: Run on a node: the ``ClientAppActor.run`` tasks (one per message to a centre, plus the
#: engine's warm-up call in each actor) that each node executed, and their seconds, from
#: Ray's task events (``ray.timeline``, read from the GCS: no dashboard needed).
TASKS_PER_NODE = """
import json, ray
ray.init(address="auto", logging_level="ERROR", log_to_driver=False)
ran = {}
for event in ray.timeline():
    if event.get("ph") == "X" and event.get("cat") == "task::ClientAppActor.run":
        node = ran.setdefault(event["pid"], {"tasks": 0, "seconds": 0.0})
        node["tasks"] += 1
        node["seconds"] += event["dur"] / 1e6
print(json.dumps(ran))
"""
#: Run on a node: the nodes alive and their CPUs, by IP.
NODES = """
import json, ray
ray.init(address="auto", logging_level="ERROR", log_to_driver=False)
print(json.dumps({n["NodeManagerAddress"]: n["Resources"].get("CPU", 0)
                  for n in ray.nodes() if n["Alive"]}))
"""


class ClusterError(RuntimeError):
    """A podman or Ray step of the test cluster failed."""


def shared_folder(path: Path) -> Path:
    """``path`` made writable by the images' user (bind-mounted at ``RUNS``)."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        os.chown(path, UID, UID)
    return path


@dataclass
class Timed:
    """One ``perseverance-sim run``: its process, its wall time and its run folder (on the
    host)."""

    proc: subprocess.CompletedProcess[str]
    seconds: float
    out: Path

    def summary(self) -> dict[str, object]:
        if self.proc.returncode != 0:
            raise ClusterError(f"perseverance-sim exited {self.proc.returncode}: "
                               f"{self.proc.stderr[-3000:]}{self.proc.stdout[-3000:]}")
        return dict(json.loads((self.out / "summary.json").read_text(encoding="utf-8")))


@dataclass
class PodmanRayCluster:
    """A head and ``workers`` worker nodes, ``cpus`` cores each, on the network
    ``<prefix>-net``; ``shared`` (a host folder) at ``RUNS`` on every node."""

    prefix: str
    shared: Path
    workers: int = 1
    cpus: int = 1
    image: str = IMAGE
    created: list[tuple[str, str]] = field(default_factory=list)

    @property
    def network(self) -> str:
        return f"{self.prefix}-net"

    @property
    def head(self) -> str:
        return f"{self.prefix}-head"

    @property
    def worker_names(self) -> list[str]:
        return [f"{self.prefix}-worker{i}" for i in range(1, self.workers + 1)]

    @property
    def address(self) -> str:
        """What a researcher gives ``backend.address``: the head's name and GCS port."""
        return f"{self.head}:{HEAD_PORT}"

    def _node(self, name: str, *ray_start: str) -> None:
        self.created.append(("container", name))
        podman("run", "--detach", "--name", name, "--hostname", name, "--network", self.network,
               "--cpus", str(self.cpus), "--shm-size", SHM_SIZE,
               "--volume", f"{self.shared}:{RUNS}", self.image,
               "ray", "start", "--block", f"--num-cpus={self.cpus}",
               f"--object-store-memory={OBJECT_STORE_BYTES}", "--disable-usage-stats",
               *ray_start)

    def start(self, timeout: float = 240.0) -> None:
        """The network, the head, then the workers; returns once every node is alive."""
        shared_folder(self.shared)
        self.created.append(("network", self.network))
        podman("network", "create", self.network)
        self._node(self.head, "--head", f"--port={HEAD_PORT}", "--include-dashboard=false")
        self._wait_nodes(1, timeout)
        for name in self.worker_names:
            self._node(name, f"--address={self.address}")
        self._wait_nodes(1 + self.workers, timeout)

    def _wait_nodes(self, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        status = ""
        while time.monotonic() < deadline:
            result = podman("exec", self.head, "ray", "status", check=False, timeout=60)
            status = result.stdout
            active = status.split("Active:", 1)[1].split("Pending:", 1)[0] if (
                "Active:" in status) else ""
            if len(re.findall(r"\bnode_[0-9a-f]+", active)) >= count:
                return
            time.sleep(2)
        raise ClusterError(f"{count} Ray nodes were not alive within {timeout:.0f} s:\n"
                           f"{status[-2000:]}\n{self.logs()}")

    def python(self, code: str) -> str:
        """``code`` run by Python on the head (a Ray driver of this cluster); its stdout."""
        result = podman("exec", self.head, "python", "-W", "ignore", "-c", code, timeout=120)
        return result.stdout.strip().splitlines()[-1]

    def nodes(self) -> dict[str, float]:
        """The alive nodes' CPUs, by IP."""
        return {ip: float(cpus) for ip, cpus in json.loads(self.python(NODES)).items()}

    def tasks_per_node(self) -> dict[str, dict[str, float]]:
        """``ClientAppActor.run`` tasks executed on each node (by IP) since the start:
        ``{"tasks": count, "seconds": busy}``."""
        return dict(json.loads(self.python(TASKS_PER_NODE)))

    def ip(self, container: str) -> str:
        inspected = json.loads(podman("inspect", container).stdout)[0]
        return str(inspected["NetworkSettings"]["Networks"][self.network]["IPAddress"])

    def run(self, name: str, *args: str, timeout: float = 1800.0) -> Timed:
        """``perseverance-sim run ARGS --set backend.address=HEAD:6379 --out RUNS/name``
        on the head, as a researcher submits to an existing cluster."""
        command = ["perseverance-sim", "run", *args, "--set", f"backend.address={self.address}",
                   "--out", f"{RUNS}/{name}"]
        started = time.monotonic()
        proc = subprocess.run(["podman", "exec", self.head, *command], capture_output=True,
                              text=True, timeout=timeout, check=False)
        return Timed(proc, time.monotonic() - started, self.shared / name)

    def logs(self) -> str:
        parts = []
        for kind, name in self.created:
            if kind == "container":
                out = podman("logs", "--tail", "20", name, check=False)
                parts.append(f"--- {name}\n{out.stdout[-2000:]}{out.stderr[-2000:]}")
        return "\n".join(parts)

    def stop(self) -> list[str]:
        """Remove, by name, what :meth:`start` created (containers, then the network);
        returns the names still there."""
        left = []
        for kind, name in reversed(self.created):
            if kind == "container":
                podman("rm", "--force", "--time", "10", name, check=False, timeout=60)
                if podman("container", "exists", name, check=False).returncode == 0:
                    left.append(name)
            else:
                podman("network", "rm", name, check=False)
                if podman("network", "exists", name, check=False).returncode == 0:
                    left.append(name)
        self.created.clear()
        return left


def run_one_node(prefix: str, shared: Path, name: str, *args: str, cpus: int = 2,
                 image: str = IMAGE, timeout: float = 1800.0) -> Timed:
    """``perseverance-sim run ARGS --out RUNS/name`` in one container of the same image
    (in-process Ray on ``cpus`` cores, no network): the one-node run. The container is
    named ``<prefix>-single`` and removed with the run (``--rm``)."""
    shared_folder(shared)
    command = ["podman", "run", "--rm", "--name", f"{prefix}-single", "--network", "none",
               "--cpus", str(cpus), "--shm-size", SHM_SIZE, "--volume", f"{shared}:{RUNS}",
               image, "perseverance-sim", "run", *args, "--out", f"{RUNS}/{name}"]
    started = time.monotonic()
    proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    podman("rm", "--force", f"{prefix}-single", check=False)
    return Timed(proc, time.monotonic() - started, shared / name)


#: What differs between two runs of the same seed by construction: the run's name, the
#: command's overrides (the cluster's address) and the timings.
NOT_FIGURES = frozenset({"run_name", "overrides", "wall_seconds", "wall_seconds_split",
                         "server_seconds"})


def _same(one: object, other: object, rel: float) -> bool:
    if isinstance(one, float) or isinstance(other, float):
        return (isinstance(one, int | float) and isinstance(other, int | float)
                and math.isclose(one, other, rel_tol=rel, abs_tol=rel))
    if isinstance(one, dict) and isinstance(other, dict):
        return one.keys() == other.keys() and all(_same(one[k], other[k], rel) for k in one)
    if isinstance(one, list) and isinstance(other, list):
        return len(one) == len(other) and all(
            _same(a, b, rel) for a, b in zip(one, other, strict=True))
    return one == other


def figure_differences(one: dict[str, object], other: dict[str, object],
                       rel: float = 0.0) -> dict[str, tuple[object, object]]:
    """The summary keys, timings and names aside, whose values differ (numbers by more
    than ``rel``, relative and absolute; 0: exactly)."""
    keys = (set(one) | set(other)) - NOT_FIGURES
    return {k: (one.get(k), other.get(k)) for k in sorted(keys)
            if not _same(one.get(k), other.get(k), rel)}


def left_behind(prefix: str) -> list[str]:
    """Containers, networks and volumes named ``<prefix>-...`` that still exist."""
    names = []
    for listing in (("container", "ls", "--all", "--format", "{{.Names}}"),
                    ("network", "ls", "--format", "{{.Name}}"),
                    ("volume", "ls", "--format", "{{.Name}}")):
        names += [n for n in podman(*listing, check=False).stdout.split()
                  if n.startswith(prefix + "-")]
    return names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", default="tiny")
    parser.add_argument("--set", action="append", default=[], dest="overrides")
    parser.add_argument("--folder", type=Path, default=None,
                        help="the shared run folders (default: a new one under .work)")
    options = parser.parse_args(argv)
    args = ["--scenario", options.scenario, "--set", "privacy.reproducible_noise=true",
            "--set", "centre_policy.allow_replayable_noise=true"]
    for override in options.overrides:
        args += ["--set", override]
    prefix = f"pvray-{os.getpid()}"
    folder = options.folder or Path(tempfile.mkdtemp(prefix=prefix + "-", dir=ROOT / ".work"))
    print(f"load average before: {os.getloadavg()}", flush=True)
    single = run_one_node(prefix, folder, "one-node", *args)
    print(f"one node (1 container, {2} cores): {single.seconds:.1f} s "
          f"(summary wall_seconds {single.summary()['wall_seconds']})", flush=True)
    cluster = PodmanRayCluster(prefix, folder)
    try:
        started = time.monotonic()
        cluster.start()
        print(f"cluster up in {time.monotonic() - started:.1f} s: {cluster.nodes()}", flush=True)
        on_cluster = cluster.run("two-nodes", *args)
        print(f"two nodes (2 containers, 1 core each): {on_cluster.seconds:.1f} s "
              f"(summary wall_seconds {on_cluster.summary()['wall_seconds']})", flush=True)
        print(f"ClientAppActor.run tasks per node: {dict(cluster.tasks_per_node())}")
    finally:
        left = cluster.stop()
    print(f"load average after: {os.getloadavg()}")
    print("left behind:", left + left_behind(prefix))
    differences = figure_differences(single.summary(), on_cluster.summary())
    close = figure_differences(single.summary(), on_cluster.summary(), rel=1e-6)
    print("figures equal" if not differences else f"figures differ: {differences} "
          f"(by more than 1e-6: {close or 'none'})")
    import torch

    weights = [torch.load(run.out / "model.pt", weights_only=True)["state_dict"]
               for run in (single, on_cluster)]
    print("final weights equal to the bit:", weights[0].keys() == weights[1].keys() and all(
        torch.equal(weights[0][key], weights[1][key]) for key in weights[0]))
    for run in (single, on_cluster):
        print(run.out.name, json.dumps(run.summary().get("wall_seconds_split")))
    print(f"run folders: {folder}")
    return 0 if not close else 1


if __name__ == "__main__":
    sys.exit(main())
