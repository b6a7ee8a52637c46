"""Run the deployment's compose files (``deploy/ministry``, ``deploy/centre``) with plain
podman: each service becomes the ``podman run`` that ``docker compose`` (or
``podman-compose``) would start from it, with the same image, command, environment,
mounts, networks and hardening (capabilities, ``no-new-privileges``, read-only root,
tmpfs, memory and process limits). So the container test runs the very files the guides
give to the centres and the ministry, and only what those files say.

Every network, volume and container it creates is named ``<prefix>-<name>`` and recorded,
so that the test removes exactly those, by name (never a prune, never by pattern).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
PODMAN = "podman"
_VARIABLE = re.compile(r"\$\{(\w+)(?:(:-|:\?)([^}]*))?\}")


class ComposeError(RuntimeError):
    """A compose file uses what this translation does not know, or a podman call failed."""


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """Compose's ``${VAR}``, ``${VAR:-default}`` and ``${VAR:?message}``."""

    def value(match: re.Match[str]) -> str:
        name, operator, rest = match.group(1), match.group(2), match.group(3)
        found = env.get(name, "")
        if found:
            return found
        if operator == ":?":
            raise ComposeError(f"{name} is not set: {rest}")
        return rest if operator == ":-" else ""

    return _VARIABLE.sub(value, text)


def read_env_file(path: Path) -> dict[str, str]:
    """``KEY=VALUE`` lines of a compose ``.env`` file (comments and blanks skipped)."""
    values = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def podman(*args: str, timeout: float = 120.0, check: bool = True,
           input_text: str | None = None) -> subprocess.CompletedProcess[str]:
    """One podman command; its output returned (stderr in the error if ``check``)."""
    result = subprocess.run([PODMAN, *args], capture_output=True, text=True, timeout=timeout,
                            check=False, input=input_text)
    if check and result.returncode != 0:
        raise ComposeError(f"podman {shlex.join(args)} exited {result.returncode}: "
                           f"{result.stderr[-2000:]}{result.stdout[-2000:]}")
    return result


def podman_problem(images: Sequence[str], build: str) -> str | None:
    """Why the container tests cannot run here (podman absent, not root, ``images``
    missing: ``build`` makes them), or None."""
    if shutil.which(PODMAN) is None:
        return "podman is not installed (make test-containers installs it)"
    if os.geteuid() != 0:
        return "rootful podman is needed (run as root)"
    try:
        missing = [i for i in images if podman("image", "exists", i, check=False).returncode != 0]
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"podman does not answer: {err}"
    return f"images missing: {', '.join(missing)} ({build})" if missing else None


#: ``make test`` sets it: there the container tests fail, never skip, when they cannot
#: run (it installs the tools and builds the images first).
REQUIRED_ENV = "PERSEVERANCE_CONTAINERS_REQUIRED"
#: ``make test`` builds the images beside the test suite and writes the build's outcome
#: (``ok`` or ``failed``) to the file this names; the container tests wait for it.
IMAGES_STATUS_ENV = "PERSEVERANCE_IMAGES_STATUS"


def wait_for_image_build(timeout: float = 3600.0) -> str | None:
    """Under ``make test``, wait until the image build beside the suite has ended; why
    the container tests cannot run if it failed, else None."""
    status = os.environ.get(IMAGES_STATUS_ENV)
    if not status:
        return None
    deadline = time.monotonic() + timeout
    while not Path(status).exists():
        if time.monotonic() > deadline:
            return f"the image build beside the tests did not end in {timeout:.0f} s"
        time.sleep(5)
    outcome = Path(status).read_text(encoding="utf-8").strip()
    return None if outcome == "ok" else (
        f"the image build beside the tests failed ({outcome}; its log: .work/images/build.log)")


def cannot_run(reason: str) -> NoReturn:
    """Skip the test for ``reason``, or fail it under ``make test``."""
    import pytest

    if os.environ.get(REQUIRED_ENV) == "1":
        pytest.fail(f"{reason} (make test requires the container tests: {REQUIRED_ENV}=1)")
    pytest.skip(reason)


@dataclass
class Site:
    """One compose project (the ministry, or one centre) on this host.

    ``folder`` is where the file's relative paths (``./pki``, ``./keys``...) resolve, as
    the folder holding the compose file does; ``env`` is its ``.env``.
    """

    side: str
    folder: Path
    prefix: str
    env: dict[str, str]
    created: list[tuple[str, str]] = field(default_factory=list)  # (kind, name)
    _runs: int = 0

    @property
    def compose(self) -> dict[str, Any]:
        return dict(yaml.safe_load((DEPLOY / self.side / "compose.yaml").read_text()))

    def service(self, name: str) -> dict[str, Any]:
        return dict(self.compose["services"][name])

    def resource(self, name: str) -> str:
        return f"{self.prefix}-{name}"

    def create_networks_and_volumes(self) -> None:
        compose = self.compose
        for name, spec in (compose.get("networks") or {}).items():
            spec = spec or {}
            args = ["network", "create"]
            if spec.get("internal"):
                args.append("--internal")
            for pool in (spec.get("ipam") or {}).get("config", []):
                args += ["--subnet", interpolate(pool["subnet"], self.env)]
            podman(*args, self.resource(name))
            self.created.append(("network", self.resource(name)))
        for name in compose.get("volumes") or {}:
            podman("volume", "create", self.resource(name))
            self.created.append(("volume", self.resource(name)))

    def gateway(self, network: str) -> str:
        """The host's address on one of this site's networks."""
        info = json.loads(podman("network", "inspect", self.resource(network)).stdout)
        return str(info[0]["subnets"][0]["gateway"])

    def _mount(self, volume: str) -> list[str]:
        source, inside, *mode = interpolate(volume, self.env).split(":")
        if source.startswith(("/", ".")):
            path = (self.folder / source).resolve()
            if not path.exists():
                raise ComposeError(f"{self.side}: {path} (mounted at {inside}) does not exist")
            source = str(path)
        else:
            source = self.resource(source)
        return ["--volume", ":".join([source, inside, *mode])]

    def run_argv(
        self, service: str, *, container: str, detach: bool,
        entrypoint: Sequence[str] | None = None, command: Sequence[str] | None = None,
        volumes: Sequence[str] = (), extra: Sequence[str] = (),
    ) -> list[str]:
        """The ``podman run`` of one service (``compose up``'s, or ``compose run --rm``'s
        when not ``detach``); ``volumes`` and ``entrypoint`` as ``compose run -v`` and
        ``--entrypoint`` give them; ``extra`` podman options go before the image."""
        spec = self.service(service)
        known = {"build", "image", "command", "entrypoint", "environment", "volumes",
                 "networks", "ports", "depends_on", "restart", "profiles", "cap_drop",
                 "security_opt", "read_only", "tmpfs", "mem_limit", "pids_limit",
                 "network_mode"}
        unknown = set(spec) - known
        if unknown:
            raise ComposeError(f"{self.side}/{service}: no translation for {sorted(unknown)}")
        if spec.get("network_mode", "none") != "none":
            raise ComposeError(f"{self.side}/{service}: only network_mode none is translated")
        argv = ["run", "--name", container]
        # No network at all (network_mode: none), or the site's, where its name resolves.
        argv += ["--network", "none"] if "network_mode" in spec else [
            "--network-alias", service]
        argv += ["--detach"] if detach else ["--rm"]
        if detach and spec.get("restart"):
            argv += ["--restart", spec["restart"]]
        for capability in spec.get("cap_drop", []):
            argv += ["--cap-drop", capability]
        for option in spec.get("security_opt", []):
            argv += ["--security-opt", option]
        if spec.get("read_only"):
            # As Docker does: only the tmpfs the file names (podman would add its own).
            argv += ["--read-only", "--read-only-tmpfs=false"]
        for tmpfs in spec.get("tmpfs", []):
            argv += ["--tmpfs", tmpfs]
        if "mem_limit" in spec:
            argv += ["--memory", str(spec["mem_limit"])]
        if "pids_limit" in spec:
            argv += ["--pids-limit", str(spec["pids_limit"])]
        for key, value in dict(spec.get("environment") or {}).items():
            argv += ["--env", f"{key}={interpolate(str(value), self.env)}"]
        for volume in [*spec.get("volumes", []), *volumes]:
            argv += self._mount(volume)
        networks = spec.get("networks") or []
        items = networks.items() if isinstance(networks, dict) else [(n, {}) for n in networks]
        for name, options in items:
            address = (options or {}).get("ipv4_address")
            suffix = f":ip={interpolate(address, self.env)}" if address else ""
            argv += ["--network", self.resource(name) + suffix]
        for port in spec.get("ports", []):
            argv += ["--publish", interpolate(port, self.env)]
        entry = entrypoint if entrypoint is not None else spec.get("entrypoint")
        if entry is not None:
            argv += ["--entrypoint", json.dumps(list(entry))]
        argv += list(extra)
        argv.append("localhost/" + spec["image"])
        argv += [interpolate(c, self.env) for c in (command if command is not None
                                                     else spec.get("command", []))]
        return argv

    def up(self, service: str, extra: Sequence[str] = ()) -> str:
        """``compose up -d SERVICE``; returns the container's name."""
        container = self.resource(service)
        self.created.append(("container", container))
        podman(*self.run_argv(service, container=container, detach=True, extra=extra))
        return container

    def run(self, service: str, args: Sequence[str], *, timeout: float = 300.0,
            entrypoint: Sequence[str] | None = None, volumes: Sequence[str] = (),
            check: bool = True) -> subprocess.CompletedProcess[str]:
        """``compose run --rm [-v ...] [--entrypoint ...] SERVICE ARGS...``."""
        self._runs += 1
        container = self.resource(f"run{self._runs}-{service}")
        self.created.append(("container", container))
        argv = self.run_argv(service, container=container, detach=False,
                             entrypoint=entrypoint, command=args, volumes=volumes)
        return podman(*argv, timeout=timeout, check=check)

    def compose_run(self, words: Sequence[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        """A guide's ``docker compose run --rm [-v A:B] [--entrypoint E] SERVICE ARGS``
        (the words after ``run``)."""
        words = list(words)
        volumes: list[str] = []
        entrypoint: list[str] | None = None
        while words and words[0].startswith("-"):
            option = words.pop(0)
            if option == "--rm":
                continue
            if option in ("-v", "--volume"):
                volumes.append(words.pop(0))
            elif option == "--entrypoint":
                entrypoint = [words.pop(0)]
            else:
                raise ComposeError(f"compose run {option}: no translation")
        return self.run(words[0], words[1:], entrypoint=entrypoint, volumes=volumes, **kwargs)

    def remove_all(self) -> list[str]:
        """Remove what this site created (containers, then networks and volumes), by
        name; return what could not be removed."""
        left = []
        for kind, name in [c for c in reversed(self.created) if c[0] == "container"] + [
                c for c in reversed(self.created) if c[0] != "container"]:
            for _attempt in range(3):  # a restart policy can race the first removal
                if kind == "container":
                    result = podman("rm", "--force", "--time", "2", "--ignore", name,
                                    check=False, timeout=60)
                else:
                    result = podman(kind, "rm", "--force", name, check=False, timeout=60)
                exists = podman(*(["container"] if kind == "container" else [kind]),
                                "exists", name, check=False, timeout=30)
                if exists.returncode != 0:
                    break
                time.sleep(1)
            else:
                left.append(f"{kind} {name}: {result.stderr.strip()}")
        return left
