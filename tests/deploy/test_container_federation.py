"""End to end in containers, as the guides deploy it: the ministry's compose file on its
own podman networks, three centres each from the centre's compose file on networks of
their own (its own state volume and data), reaching the ministry only through the
proxy's published centres' port; the PKI, the enrolment (through the operator tunnel),
the centres' approval of the app and the run are the guides' own commands, read from
deploy/ministry/README.md and deploy/centre/README.md and run as written (``docker
compose run|up`` translated to the ``podman run`` of the service, tests/deploy/
compose_podman.py). Then the run folder, ``audit verify``, and nothing of the test left:
every container, network and volume is named ``pvt-<pid>-...`` and removed by name.

Needs rootful podman and the images of ``make images``; skipped otherwise. ``make
test-containers`` installs the tools, builds the images and runs this test.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.deploy.compose_podman import (
    DEPLOY,
    ComposeError,
    Site,
    cannot_run,
    podman,
    podman_problem,
    read_env_file,
    wait_for_image_build,
)

# Containers on a shared 2-core machine: a test (the first one with the federation up)
# can take many minutes at a high load; the suite's 600 s per test is too short here.
pytestmark = [pytest.mark.slow, pytest.mark.containers, pytest.mark.timeout(3600)]

ROOT = DEPLOY.parent
BIN = ROOT / ".venv" / "bin"
PUBLIC_NAME = "fl.pvt.test"  # the ministry's public name, as the centres resolve it
ROUNDS = 2
CENTRES = 3
STUDENTS = 6000  # over the three centres: the tiny scenario's (and dev-federation's) size
#: The guides' example names, replaced by the test's.
GUIDE_NAME, GUIDE_OPERATOR_ADDRESS, GUIDE_CENTRE = (
    "fl.education.gouv.qc.ca", "10.20.30.40", "css-de-montreal")
RUN_TIMEOUT = 900.0
#: The fault run's round timeout: what the live centres' training may take on a loaded
#: 2-core machine (a round trained in 60-75 s at load 15), not only the killed one's wait.
FAULT_ROUND_TIMEOUT = 120.0
UID = "49999"  # the images' user


def _images() -> list[str]:
    names = []
    for side in ("ministry", "centre"):
        site = Site(side, ROOT, "", {})
        names += ["localhost/" + s["image"] for s in site.compose["services"].values()]
    return sorted(set(names))


def _why_not() -> str | None:
    return podman_problem(_images(), "make images")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("", 0))
        return int(sock.getsockname()[1])


# ----------------------------------------------------------------- the guides' commands
def guide_commands(guide: Path, heading: str) -> list[str]:
    """The commands of the first ``bash`` block under the heading of step ``heading``
    (its number, e.g. ``"5."`` or ``"7b."``; the words after it are the guide's, in
    whichever language), one per logical line (continuations joined, comments dropped)."""
    text = guide.read_text(encoding="utf-8")
    number = heading.split()[0]
    section = re.search(rf"^##+ {re.escape(number)}(?= ).*?$(.*?)(?=^##+ |\Z)", text,
                        re.M | re.S)
    assert section, f"{guide.name}: no section {heading!r}"
    block = re.search(r"```bash\n(.*?)```", section.group(1), re.S)
    assert block, f"{guide.name}, {heading!r}: no bash block"
    commands = []
    for line in block.group(1).replace("\\\n", " ").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            commands.append(line.strip())
    return commands


def _words(command: str) -> list[str]:
    return shlex.split(command, comments=True)


def _expected_code(command: str) -> str | None:
    """The HTTP status a guide's ``curl`` line announces in its comment (``# 404: ...``)."""
    found = re.search(r"#\s*(\d{3})\b", command)
    return found.group(1) if found else None


class Federation:
    """The ministry and the centres of the test, and what they created."""

    def __init__(self, root: Path, prefix: str) -> None:
        self.root = root
        self.prefix = prefix
        self.log = root / "commands.log"
        self.ministry = Site("ministry", root / "ministry", f"{prefix}-ministry", {})
        self.centres: dict[str, Site] = {}
        self.centres_port = _free_port()
        self.operator_port = _free_port()
        self.timings: dict[str, object] = {}
        self.app_hash = ""

    @property
    def sites(self) -> list[Site]:
        return [self.ministry, *self.centres.values()]

    def note(self, text: str) -> None:
        with self.log.open("a", encoding="utf-8") as file:
            file.write(text.rstrip() + "\n")

    def shell(self, command: str, cwd: Path, env: dict[str, str] | None = None) -> str:
        """A guide's plain shell line (no container), with ``sudo`` dropped (we are root)."""
        command = re.sub(r"^sudo ", "", command)
        self.note(f"[{cwd.name}] $ {command}")
        result = subprocess.run(["bash", "-euo", "pipefail", "-c", command], cwd=cwd,
                                capture_output=True, text=True, timeout=120, check=False,
                                env={**os.environ, **(env or {})})
        self.note(result.stdout + result.stderr)
        assert result.returncode == 0, f"{command}: {result.stderr[-2000:]}"
        return result.stdout

    def compose(self, site: Site, command: str, **kwargs: object) -> str:
        """A guide's ``docker compose run ...`` line, run on ``site`` with podman; its
        standard output."""
        return self.compose_result(site, command, **kwargs).stdout

    def compose_result(self, site: Site, command: str,
                       **kwargs: object) -> subprocess.CompletedProcess[str]:
        words = _words(command)
        assert words[:3] == ["docker", "compose", "run"], command
        self.note(f"[{site.prefix}] $ {command}")
        result = site.compose_run(words[3:], **kwargs)
        self.note(result.stdout + result.stderr)
        return result

    def logs(self) -> str:
        """The tail of every container's log, for a failure's message."""
        parts = []
        for site in self.sites:
            for kind, name in site.created:
                if kind == "container" and podman("container", "exists", name,
                                                  check=False).returncode == 0:
                    out = podman("logs", "--tail", "25", name, check=False)
                    parts.append(f"--- {name}\n{out.stdout[-3000:]}{out.stderr[-3000:]}")
        return "\n".join(parts)

    def remove(self) -> list[str]:
        left = []
        for site in reversed(self.sites):
            left += site.remove_all()
        return left


@pytest.fixture(scope="module")
def federation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Federation]:
    """The ministry and three centres up, enrolled, the app approved, every SuperNode
    online (the guides' steps 1 to 6); removed, by name, after the module's tests."""
    reason = wait_for_image_build() or _why_not()
    if reason:
        cannot_run(reason)
    fed = Federation(tmp_path_factory.mktemp("containers"), f"pvt-{os.getpid()}")
    try:
        started = time.monotonic()
        _start_ministry(fed)
        fed.timings["ministry_up"] = time.monotonic() - started
        _prepare_centres(fed)
        _enrol(fed)
        fed.app_hash = _approve_and_join(fed)
        _wait_online(fed, _guide_run_commands(fed)[0])
        fed.timings["federation_up"] = time.monotonic() - started
        yield fed
    finally:
        left = fed.remove()
        assert not left, f"left behind: {left}"
        for listing in (("container", "ls", "--all", "--format", "{{.Names}}"),
                        ("network", "ls", "--format", "{{.Name}}"),
                        ("volume", "ls", "--format", "{{.Name}}")):
            names = podman(*listing, check=False).stdout.split()
            assert not [n for n in names if n.startswith(fed.prefix + "-")], names


def _ministry_guide_commands(fed: Federation) -> dict[str, list[str]]:
    guide = DEPLOY / "ministry" / "README.md"
    public = f"https://127.0.0.1:{fed.centres_port}/"
    operator = f"127.0.0.1:{fed.operator_port}"

    def ours(command: str) -> str:
        return (command.replace(f"https://{GUIDE_NAME}/", public)
                .replace(f"{GUIDE_OPERATOR_ADDRESS}:9443", operator)
                .replace(GUIDE_OPERATOR_ADDRESS, "127.0.0.1")
                .replace(GUIDE_NAME, PUBLIC_NAME))

    return {step: [ours(c) for c in guide_commands(guide, step)]
            for step in ("1. Configure", "3. Create the PKI", "4. Start the ministry side",
                         "5. Enrol each centre", "6. Run a federated training")}


def _start_ministry(fed: Federation) -> None:
    site = fed.ministry
    site.folder.mkdir(parents=True)
    steps = _ministry_guide_commands(fed)
    env = read_env_file(DEPLOY / "ministry" / ".env.example")
    # Subnets of its own (another test's federation may be up beside it).
    block = 100 + os.getpid() % 100
    env.update(CENTRES_PORT=str(fed.centres_port), OPERATOR_PORT=str(fed.operator_port),
               OPERATOR_BIND="127.0.0.1",
               SUPERLINK_SUBNET=f"10.96.{block}.0/28", SUPERLINK_IP=f"10.96.{block}.2",
               OPERATORS_SUBNET=f"10.97.{block}.0/24", CONSOLE_IP=f"10.97.{block}.2")
    site.env = env
    for command in steps["1. Configure"]:
        if command.startswith(("git ", "cd ", "cp .env.example")):
            continue  # the clone is this checkout; .env is the test's
        fed.shell(command, site.folder)
    for command in steps["3. Create the PKI"]:
        fed.shell(command, site.folder, {"PKI": str(BIN / "perseverance-server")})
    site.create_networks_and_volumes()
    for command in steps["4. Start the ministry side"]:
        words = _words(command)
        if words[:4] == ["docker", "compose", "up", "-d"]:
            fed.note(f"[{site.prefix}] $ {command}")
            for service in words[4:]:
                site.up(service)
        elif words[0] == "curl":
            _wait_for_proxy(fed)
            code = fed.shell(f"{command.split('#')[0]} -s -o /dev/null -w '%{{http_code}}'",
                             site.folder)
            assert code == _expected_code(command), (command, code, fed.logs())
        elif words[:3] != ["docker", "compose", "ps"]:
            raise AssertionError(f"no translation for the guide's {command!r}")


def _wait_for_proxy(fed: Federation, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    ca = fed.ministry.folder / "pki" / "ca.crt"
    while time.monotonic() < deadline:
        # A proxy just (re)started may accept the connection before nginx answers.
        result = subprocess.run(
            ["curl", "-s", "--max-time", "5", "-o", "/dev/null", "-w", "%{http_code}",
             "--cacert", str(ca), f"https://127.0.0.1:{fed.centres_port}/health"],
            capture_output=True, text=True, timeout=30, check=False)
        if result.stdout == "200":
            return
        time.sleep(1)
    raise AssertionError(f"the proxy's /health never answered 200\n{fed.logs()}")


def _prepare_centres(fed: Federation) -> None:
    """Each centre: its folder (keys, CA, data), networks and volume; its public key
    in the ministry's inbox."""
    from simulations.network import generate_network, write_network

    network = generate_network(centres=CENTRES, students=STUDENTS, seed=11)
    files = write_network(network, fed.root / "extracts")
    guide = DEPLOY / "centre" / "README.md"
    for index, extract in enumerate(files):
        name = extract.stem
        folder = fed.root / f"centre-{name}"
        folder.mkdir()
        site = Site("centre", folder, f"{fed.prefix}-c{index}", {})
        fed.centres[name] = site
        for command in guide_commands(guide, "2. Create your centre's key pair"):
            fed.shell(command.replace(GUIDE_CENTRE, name), folder)
        shutil.copy(fed.ministry.folder / "pki" / "ca.crt", folder / "ca.crt")
        for command in guide_commands(guide, "3. Exchange with the ministry"):
            fed.shell(command, folder)
        for command in guide_commands(guide, "4. Put the extract in place"):
            if command.startswith("cp /path/to/extract.csv"):
                shutil.copy(extract, folder / "data" / extract.name)
            elif not command.startswith("docker"):  # build, and validate below
                fed.shell(command, folder)
        subnet = 200 + index + 10 * (os.getpid() % 5)
        site.env = {**read_env_file(DEPLOY / "centre" / ".env.example"),
                    "MINISTRY_FLEET_ADDRESS": f"{PUBLIC_NAME}:{fed.centres_port}",
                    "CENTRE_DATA_FILE": extract.name, "CENTRE_POLICY": "",
                    "CENTRE_RUNTIME_SUBNET": f"10.94.{subnet}.0/29",
                    "CENTRE_RUNTIME_ADDRESS": f"10.94.{subnet}.2"}
        site.create_networks_and_volumes()
        shutil.copy(folder / "keys" / "centre.key.pub",
                    fed.ministry.folder / "inbox" / f"{name}.pub")
        if index == 0:  # the guide's check of the extract, in the clientapp's container
            validate = next(c for c in guide_commands(guide, "4. Put the extract in place")
                            if " validate " in c)
            fed.compose(site, validate.replace("extract.csv", extract.name))


def _enrol(fed: Federation) -> None:
    steps = _ministry_guide_commands(fed)
    template = next(c for c in steps["5. Enrol each centre"] if " enrol " in c)
    assert GUIDE_CENTRE in template
    for name in fed.centres:
        out = fed.compose(fed.ministry, template.replace(GUIDE_CENTRE, name))
        fed.note(out)
    inventory = json.loads((fed.ministry.folder / "records" / "inventory.json").read_text())
    assert sorted(e["centre"] for e in inventory["centres"]) == sorted(fed.centres)


def _review_folder(fed: Federation) -> Path:
    """The app's source as a centre reviews it: here, the files the ministry's image
    runs (/app/src), copied out of the image (the same SHA-256 as the checkout's: `make
    images-check`)."""
    review = fed.root / "review"
    container = fed.ministry.resource("review")
    fed.ministry.created.append(("container", container))
    podman("create", "--name", container, "localhost/perseverance/app:0.1.0")
    podman("cp", f"{container}:/app/src", str(review))
    podman("rm", container)
    return review


def _approve_and_join(fed: Federation) -> str:
    guide = DEPLOY / "centre" / "README.md"
    review = _review_folder(fed)
    approve = guide_commands(guide, "5. Approve the app version")
    hashes = set()
    for site in fed.centres.values():
        for command in approve:
            if command.startswith("git clone"):
                continue  # the reviewed source is the image's (above)
            out = fed.compose(site, command.replace("/srv/perseverance-review", str(review)))
            hashes.update(re.findall(r"\b[0-9a-f]{64}\b", out))
        gateway = site.gateway("egress")
        for command in guide_commands(guide, "6. Join the federation"):
            words = _words(command)
            if words[:4] == ["docker", "compose", "up", "-d"]:
                fed.note(f"[{site.prefix}] $ {command}")
                # Its DNS: the ministry's public name is this host, seen from the centre.
                site.up("supernode", extra=["--add-host", f"{PUBLIC_NAME}:{gateway}"])
                site.up("clientapp")
    assert len(hashes) == 1, hashes  # every centre approved the same app
    return str(hashes.pop())


def _wait_online(fed: Federation, list_nodes: str, timeout: float = 150.0) -> None:
    deadline = time.monotonic() + timeout
    online = 0
    while time.monotonic() < deadline:
        out = fed.compose(fed.ministry, list_nodes + " --format json", check=False)
        start = out.find("{")
        nodes = json.loads(out[start:]).get("nodes", []) if start >= 0 else []
        online = sum(1 for n in nodes if n.get("status") == "online")
        if online >= CENTRES:
            return
        time.sleep(3)
    raise AssertionError(f"{online} of {CENTRES} SuperNodes online\n{fed.logs()}")


def _round_seconds(log_text: str) -> list[float]:
    from simulations.loopback.launcher import round_seconds

    return round_seconds(log_text)


def _guide_run_commands(fed: Federation) -> tuple[str, str]:
    """The ministry guide's `flwr supernode list` and `flwr run` lines."""
    steps = _ministry_guide_commands(fed)["6. Run a federated training"]
    list_nodes = next(c for c in steps if " supernode list " in c)
    run = next(c for c in steps if " flwr run " in c)
    return list_nodes, run


def _with_config(command: str, **values: object) -> str:
    """A guide's ``flwr run`` line with some of its ``--run-config`` values replaced or
    added (the others, e.g. the inventory, as the guide gives them)."""
    found = re.search(r'--run-config\s+"([^"]*)"', command)
    assert found, command
    config = dict(word.split("=", 1) for word in shlex.split(found.group(1), posix=False))
    for key, value in values.items():
        name = key.replace("__", ".")
        config[name] = f"'{value}'" if isinstance(value, str) else str(value).lower() \
            if isinstance(value, bool) else str(value)
    joined = " ".join(f"{key}={value}" for key, value in config.items())
    return command[:found.start(1)] + joined + command[found.end(1):]


def _run_command(fed: Federation, run_name: str, **values: object) -> str:
    """The guide's run line for ``run_name``, with ``values`` (``a__b`` for ``a.b``)."""
    return _with_config(_guide_run_commands(fed)[1],
                        run_dir=f"/app/work/runs/{run_name}", **values)


def _resume_command(fed: Federation, run_name: str, **values: object) -> str:
    """The ministry guide's resume line (step 6b) for ``run_name``."""
    guide = DEPLOY / "ministry" / "README.md"
    resume = next(c for c in guide_commands(guide, "6b.") if " flwr run " in c)
    assert "resume=true" in resume, resume
    return _with_config(resume, run_dir=f"/app/work/runs/{run_name}", **values)


def _summary(fed: Federation, run_name: str) -> dict[str, object]:
    listing = fed.compose(fed.ministry, "docker compose run --rm operator ls /runs")
    assert run_name in listing.split(), listing
    return dict(json.loads(fed.compose(
        fed.ministry, f"docker compose run --rm operator cat /runs/{run_name}/summary.json")))


def test_three_centres_in_containers_run_two_rounds_through_the_proxy(
        federation: Federation) -> None:
    fed = federation
    run_name = "pvt-run"
    run = _run_command(fed, run_name, rounds=ROUNDS, min_centres=CENTRES)
    submitted = time.monotonic()
    try:
        out = fed.compose(fed.ministry, run, timeout=RUN_TIMEOUT)
    except ComposeError as err:
        raise AssertionError(f"{err}\n{fed.logs()}") from err
    fed.timings["run"] = time.monotonic() - submitted

    summary = _summary(fed, run_name)
    verified = _verify(fed, run_name)
    rounds = _round_seconds(out)
    fed.timings["round_seconds"] = rounds
    (fed.root / "timings.json").write_text(json.dumps(
        {**fed.timings, "app": fed.app_hash}, indent=2))
    (fed.root / "run.log").write_text(out)
    print(f"\ncontainer federation: {json.dumps(fed.timings)}")

    assert summary["rounds_completed"] == ROUNDS, summary
    assert summary["num_centres"] == CENTRES and summary["centres_refused"] == {}, summary
    assert summary["replies_missing"] == 0 and summary["updates_rejected"] == 0, summary
    assert summary["rounds_unchanged"] == 0, summary  # every round aggregated 3 updates
    assert "error in reply" not in out, out[-3000:]
    assert len(rounds) == ROUNDS and all(r > 0 for r in rounds), out[-3000:]
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_the_run_is_read_in_the_console_through_the_operator_listener(
        federation: Federation) -> None:
    """The guide's step 7: an operator's browser (headless Chromium) holding the
    operator's certificate reads the run at https://<operator address>:9443/console/;
    without the certificate the proxy refuses it (400)."""
    from playwright.sync_api import sync_playwright

    fed = federation
    chromium = shutil.which("chromium") or cannot_run("chromium is not installed")
    operator = fed.ministry.folder / "pki" / "operators" / "ops"
    origin = f"https://127.0.0.1:{fed.operator_port}"
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=chromium, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        try:
            # The proxy's certificate names the ministry's public and internal names,
            # not this loopback address: its chain is checked by the guide's curl lines.
            holder = browser.new_context(
                locale="fr-CA", ignore_https_errors=True, viewport={"width": 1280,
                                                                    "height": 900},
                client_certificates=[{"origin": origin, "certPath": str(operator / "ops.crt"),
                                      "keyPath": str(operator / "ops.key")}])
            page = holder.new_page()
            listing = page.goto(f"{origin}/console/runs", timeout=60_000)
            assert listing is not None and listing.status == 200, fed.logs()
            assert "pvt-run" in page.inner_text("body")
            shown = page.goto(f"{origin}/console/runs/pvt-run", timeout=60_000)
            assert shown is not None and shown.status == 200
            text = page.inner_text("body")
            assert "pvt-run" in text and "terminé" in text, text[:2000]
            page.screenshot(path=str(fed.root / "console-run.png"), full_page=True)

            stranger = browser.new_context(ignore_https_errors=True).new_page()
            refused = stranger.goto(f"{origin}/console/", timeout=60_000)
            assert refused is not None and refused.status == 400
        finally:
            browser.close()


_UNSIGNED_ACQUIRE = """
import sys, urllib.error, urllib.request
from flwr.proto.runtime_pb2 import AcquireTaskRequest
request = urllib.request.Request(
    f"http://{sys.argv[1]}:9094/v1/runtime/acquire-task",
    data=AcquireTaskRequest().SerializeToString(), method="POST",
    headers={"Content-Type": "application/protobuf"})
try:
    print(urllib.request.urlopen(request, timeout=10).status)
except urllib.error.HTTPError as err:
    print(err.code)
except OSError as err:
    print("unreachable", err)
"""


def test_a_centre_s_runtime_api_gives_no_task_without_the_secret(
        federation: Federation) -> None:
    """From the clientapp's own network, a task request without the SuperExec secret's
    signature is refused (401); from the SuperNode's way out (egress), the Runtime API
    is not even listening."""
    site = next(iter(federation.centres.values()))
    address = site.env["CENTRE_RUNTIME_ADDRESS"]
    inside = podman("exec", site.resource("clientapp"), "python", "-c", _UNSIGNED_ACQUIRE,
                    address).stdout.strip()
    egress = json.loads(podman("inspect", site.resource("supernode")).stdout)[0][
        "NetworkSettings"]["Networks"][site.resource("egress")]["IPAddress"]
    site.created.append(("container", site.resource("probe")))
    outside = podman("run", "--rm", "--name", site.resource("probe"), "--network",
                     site.resource("egress"), "--entrypoint", "python",
                     "localhost/perseverance/app:0.1.0", "-c", _UNSIGNED_ACQUIRE,
                     egress, check=False)

    assert inside == "401", inside
    assert outside.stdout.startswith("unreachable"), outside.stdout + outside.stderr


def _acquired(container: str) -> int:
    log = podman("logs", container, check=False)
    return (log.stdout + log.stderr).count("acquired.")


def _follow(fed: Federation, run: str, name: str) -> subprocess.Popen[str]:
    """The guide's ``docker compose run --rm operator flwr run ... --stream`` line
    started in the background (container ``name``), its output kept."""
    words = _words(run)
    assert words[:4] == ["docker", "compose", "run", "--rm"] and words[4] == "operator"
    container = fed.ministry.resource(name)
    fed.ministry.created.append(("container", container))
    fed.note(f"[{fed.ministry.prefix}] $ {run}   (in the background)")
    argv = fed.ministry.run_argv("operator", container=container, detach=False,
                                 command=words[5:])
    return subprocess.Popen(["podman", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def _wait_acquired(fed: Federation, clientapp: str, before: int,
                   follower: subprocess.Popen[str], timeout: float = 300.0) -> None:
    """Until ``clientapp`` took one more task than ``before`` (the run's first)."""
    deadline = time.monotonic() + timeout
    while _acquired(clientapp) == before:
        assert time.monotonic() < deadline and follower.poll() is None, fed.logs()
        time.sleep(1)


def _approve_again(fed: Federation, site: Site) -> None:
    """The centre guide's step 5 (approve what was reviewed), as written."""
    review = fed.root / "review"
    for command in guide_commands(DEPLOY / "centre" / "README.md", "5."):
        if not command.startswith("git clone"):
            fed.compose(site, command.replace("/srv/perseverance-review", str(review)))


def _verify(fed: Federation, run_name: str) -> subprocess.CompletedProcess[str]:
    return fed.compose_result(
        fed.ministry, f"docker compose run --rm operator perseverance-server audit verify "
        f"/runs/{run_name}", check=False)


def test_a_centre_killed_and_one_cut_mid_round_the_run_goes_on_and_both_rejoin(
        federation: Federation) -> None:
    """Round 1 of a new run, once each victim's clientapp took the training task: one
    centre's containers are killed and started again 5 s later (as `docker compose up -d`
    would: podman 4.3's restart policy does not restart a killed container); another
    centre's SuperNode is disconnected from its way out (``podman network disconnect``)
    for 30 s. The round ends at its timeout without the killed centre, the run completes,
    and both centres are online again. (One run for both faults: each costs a round
    timeout, and they are independent.)"""
    fed = federation
    run_name = "pvt-faults"
    killed, cut = list(fed.centres.values())[-1], list(fed.centres.values())[1]
    supernode, clientapp = killed.resource("supernode"), killed.resource("clientapp")
    before_killed = _acquired(clientapp)
    before_cut = _acquired(cut.resource("clientapp"))
    # No progress evaluation: it would wait the timeout again for the killed centre,
    # which Flower keeps "online" for about a minute (as tests/deploy/test_resilience.py).
    run = _run_command(fed, run_name, rounds=ROUNDS, min_centres=2,
                       round_timeout=FAULT_ROUND_TIMEOUT, evaluation__progress_every=0)
    started = time.monotonic()
    with _follow(fed, run, "fault-run") as follower:
        _wait_acquired(fed, clientapp, before_killed, follower)
        podman("kill", clientapp, supernode)
        fed.timings["fault_killed_after"] = time.monotonic() - started
        _wait_acquired(fed, cut.resource("clientapp"), before_cut, follower)
        podman("network", "disconnect", cut.resource("egress"), cut.resource("supernode"))
        fed.timings["fault_cut_after"] = time.monotonic() - started
        try:
            time.sleep(5)
            podman("start", supernode, clientapp)
            time.sleep(25)
        finally:
            podman("network", "connect", cut.resource("egress"), cut.resource("supernode"))
        out, _ = follower.communicate(timeout=RUN_TIMEOUT)
    fed.timings["fault_run"] = time.monotonic() - started
    (fed.root / "fault-run.log").write_text(out)

    summary = _summary(fed, run_name)
    assert follower.returncode == 0, out[-3000:]
    assert summary["rounds_completed"] == ROUNDS, summary
    assert int(str(summary["replies_missing"])) >= 1, summary
    # The model moved on without the killed centre (a round whose live centres also
    # missed the timeout on a loaded machine is left unchanged, not failed).
    assert int(str(summary["rounds_unchanged"])) < ROUNDS, summary
    assert _verify(fed, run_name).returncode == 0
    # Both centres, killed or cut mid-run, are online again.
    _wait_online(fed, _guide_run_commands(fed)[0], timeout=240.0)
    print(f"\ncontainer faults: {json.dumps(fed.timings)}")


def test_a_centre_that_withdrew_its_approval_is_refused_under_its_enrolled_name(
        federation: Federation) -> None:
    """The centre guide's step 5b as written: that centre's clientapp refuses the run's
    app before unpacking it (1005); the ministry's summary names the centre (by the key
    its node was enrolled with: the guide's run gives the inventory) with the reason,
    and the others train. The centre approves again after (step 5)."""
    fed = federation
    name, victim = next(iter(fed.centres.items()))
    for command in guide_commands(DEPLOY / "centre" / "README.md", "5b."):
        fed.compose(victim, command.replace("<hash>", fed.app_hash[:12]))
    run_name = "pvt-withdrawn"
    started = time.monotonic()
    try:
        out = fed.compose(fed.ministry, _run_command(fed, run_name, rounds=1, min_centres=2,
                                                     evaluation__progress_every=0),
                          timeout=RUN_TIMEOUT)
        summary = _summary(fed, run_name)
    finally:
        _approve_again(fed, victim)
    fed.timings["withdrawn_run"] = time.monotonic() - started
    (fed.root / "withdrawn-run.log").write_text(out)

    refused = dict(summary["centres_refused"])  # type: ignore[call-overload]
    assert list(refused) == [name], summary
    assert "not approved" in str(refused[name]) and fed.app_hash in str(refused[name]), refused
    assert summary["rounds_completed"] == 1 and summary["rounds_unchanged"] == 0, summary
    assert _verify(fed, run_name).returncode == 0


def _run_status(fed: Federation, run_id: str, timeout: float) -> str:
    """The run's status once finished (``flwr ls --run-id``, through the operator's
    tunnel), e.g. ``finished:completed`` or ``finished:failed``."""
    deadline = time.monotonic() + timeout
    status = ""
    while time.monotonic() < deadline:
        out = fed.compose(fed.ministry, "docker compose run --rm operator flwr ls "
                          f"perseverance-operator --run-id {run_id} --format json",
                          check=False)
        start = out.find("{")
        runs = json.loads(out[start:]).get("runs", []) if start >= 0 else []
        status = str(runs[0]["status"]) if runs else status
        if status.startswith("finished"):
            return status
        time.sleep(5)
    raise AssertionError(f"run {run_id} still {status!r}\n{fed.logs()}")


def _checkpointed(fed: Federation, run_name: str) -> int:
    """The round of the run's last checkpoint (0 when none yet), read in its folder."""
    out = podman("exec", fed.ministry.resource("serverapp"), "python", "-c",
                 "import json, pathlib, sys; p = pathlib.Path(sys.argv[1]); "
                 "print(sum(1 for _ in p.open()) if p.exists() else 0)",
                 f"/app/work/runs/{run_name}/rounds.jsonl", check=False)
    return int(out.stdout.strip() or 0)


def _served_certificate(fed: Federation) -> bytes:
    """The certificate the proxy serves on the centres' port (DER)."""
    import ssl

    pem = ssl.get_server_certificate(("127.0.0.1", fed.centres_port), timeout=10)
    return ssl.PEM_cert_to_DER_cert(pem)


def _file_certificate(path: Path) -> bytes:
    import ssl

    return ssl.PEM_cert_to_DER_cert(path.read_text())


def _ministry_step(fed: Federation, heading: str, **names: str) -> None:
    """The ministry guide's step ``heading`` (7b-7e) as written: ``$PKI`` lines on the CA
    machine (the ministry's folder here), ``docker compose restart|run`` on its
    containers. ``names`` replaces the guide's example names (``jdoe``, the centre)."""
    site = fed.ministry
    commands = guide_commands(DEPLOY / "ministry" / "README.md", heading)
    assert all(any(old in c for c in commands) for old in names), (heading, commands)
    for command in commands:
        for old, new in names.items():
            command = command.replace(old, new)
        words = _words(command)
        if words[:3] == ["docker", "compose", "restart"]:
            fed.note(f"[{site.prefix}] $ {command}")
            for service in words[3:]:
                podman("restart", site.resource(service))
        elif words[:3] == ["docker", "compose", "run"]:
            fed.compose(site, command)
        elif words[0] in ("$PKI", "sudo", "chown"):
            fed.shell(command, site.folder, {"PKI": str(BIN / "perseverance-server")})
        elif words[:2] == ["perseverance-server", "operator-tunnel"]:
            continue  # on the operator's workstation, not the ministry's: _tunnel
        else:
            raise AssertionError(f"no translation for the guide's {command!r}")


def test_the_servers_certificates_renewed_mid_run_the_run_is_resumed_losing_at_most_one_round(
        federation: Federation) -> None:
    """The ministry guide's step 7b as written after round 1 of a run: new certificates
    for the SuperLink and the proxy, then `docker compose restart proxy superlink` (the
    SuperLink's state volume kept, its address fixed). The proxy then serves the new
    certificate (a reload would not: each file is mounted alone and replaced). The run in
    flight either goes on or is marked failed; if it failed, once the centres are back
    online, the guide's resume line (step 6b) as written finishes it from its last
    checkpoint. Its records verify."""
    fed = federation
    run_name, rounds = "pvt-restart", ROUNDS
    settings = {"rounds": rounds, "min_centres": 2, "round_timeout": FAULT_ROUND_TIMEOUT,
                "evaluation__progress_every": 0}
    run = _run_command(fed, run_name, **settings)
    served_before = _served_certificate(fed)
    started = time.monotonic()
    with _follow(fed, run, "restart-run") as follower:
        deadline = time.monotonic() + RUN_TIMEOUT
        while _checkpointed(fed, run_name) < 1:
            assert time.monotonic() < deadline and follower.poll() is None, fed.logs()
            time.sleep(2)
        _ministry_step(fed, "7b.")
        restarted_after = _checkpointed(fed, run_name)
        try:
            first, _ = follower.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            follower.kill()
            first, _ = follower.communicate()
    (fed.root / "restart-run.log").write_text(first)
    _wait_for_proxy(fed)
    served_after = _served_certificate(fed)
    renewed = _file_certificate(fed.ministry.folder / "pki" / "proxy.crt")
    run_id = re.search(r"Successfully started run (\d+)", first)
    assert run_id, first[-3000:]
    _wait_online(fed, _guide_run_commands(fed)[0], timeout=240.0)
    # The SuperLink keeps its state: the run either went on (its ServerApp reconnected)
    # or was marked failed. Wait until it is finished one way or the other.
    status = _run_status(fed, run_id.group(1), timeout=RUN_TIMEOUT)
    done = _checkpointed(fed, run_name)
    fed.timings.update(superlink_restarted_after_round=restarted_after,
                       status_after_restart=status, rounds_before_resume=done)
    if done < rounds:
        assert status != "finished:completed", (status, done)
        out = fed.compose(fed.ministry, _resume_command(fed, run_name, **settings),
                          timeout=RUN_TIMEOUT)
        (fed.root / "resume-run.log").write_text(out)
    fed.timings["restart_run"] = time.monotonic() - started

    assert served_after == renewed != served_before
    summary = _summary(fed, run_name)
    lines = fed.compose(fed.ministry,
                        f"docker compose run --rm operator cat /runs/{run_name}/rounds.jsonl")
    trained = [json.loads(line)["round"] for line in lines.splitlines() if line.startswith("{")]
    assert summary["rounds_completed"] == rounds, summary
    assert trained == list(range(1, rounds + 1)), trained
    # Nothing checkpointed before the restart was lost: at most the round in flight.
    assert done >= restarted_after >= 1, fed.timings
    assert _verify(fed, run_name).returncode == 0
    print(f"\ncontainer certificates renewed, SuperLink restarted: {json.dumps(fed.timings)}")


def _tunnel(fed: Federation, workstation: Path) -> subprocess.CompletedProcess[str]:
    """The ministry guide's step 7c tunnel line, as written, on an operator's workstation
    (``workstation``: ca.crt and the operator's certificate and key; its own Flower home)."""
    line = next(c for c in guide_commands(DEPLOY / "ministry" / "README.md", "7c.")
                if c.startswith("perseverance-server operator-tunnel"))
    line = (line.replace(f"{GUIDE_OPERATOR_ADDRESS}:9443", f"127.0.0.1:{fed.operator_port}")
            .replace("jdoe", "pvt-op"))
    fed.note(f"[workstation] $ {line}")
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", line], cwd=workstation, capture_output=True,
        text=True, timeout=120, check=False,
        env={**os.environ, "PATH": f"{BIN}:{os.environ.get('PATH', '')}",
             "FLWR_HOME": str(workstation / "flwr-home")})
    fed.note(result.stdout + result.stderr)
    return result


def test_a_new_operator_works_through_the_tunnel_until_revoked(
        federation: Federation) -> None:
    """The ministry guide's steps 7c and 7d as written: a new operator's certificate, its
    tunnel from a workstation lists the runs; once revoked (and the proxy restarted),
    the same tunnel is refused while the ministry's own operator still works."""
    fed = federation
    _ministry_step(fed, "7c.", jdoe="pvt-op")
    workstation = fed.root / "workstation"
    workstation.mkdir()
    issued = fed.ministry.folder / "pki" / "operators" / "pvt-op"
    for source in (fed.ministry.folder / "pki" / "ca.crt", issued / "pvt-op.crt",
                   issued / "pvt-op.key"):
        shutil.copy(source, workstation / source.name)
    listed = _tunnel(fed, workstation)
    # The runs' table, through the new operator's own tunnel.
    assert listed.returncode == 0 and "Run ID" in listed.stdout, listed.stdout + listed.stderr

    _ministry_step(fed, "7d.", jdoe="pvt-op")
    _wait_for_proxy(fed)
    refused = _tunnel(fed, workstation)
    still = fed.compose_result(fed.ministry, _guide_run_commands(fed)[0], check=False)

    assert refused.returncode != 0, refused.stdout + refused.stderr
    assert still.returncode == 0, still.stdout + still.stderr
    _wait_online(fed, _guide_run_commands(fed)[0], timeout=240.0)


def test_a_revoked_centre_is_refused_and_marked_in_the_inventory(
        federation: Federation) -> None:
    """The ministry guide's step 7e as written, last in the module (the key is burnt):
    the inventory keeps the centre with ``revoked_at`` and its SuperNode is no longer
    online (refused from its next request)."""
    fed = federation
    name = next(iter(fed.centres))
    _ministry_step(fed, "7e.", **{"css-de-laval": name})
    inventory = json.loads((fed.ministry.folder / "records" / "inventory.json").read_text())
    entry = next(e for e in inventory["centres"] if e["centre"] == name)
    assert entry.get("revoked_at"), entry

    list_nodes = _guide_run_commands(fed)[0]
    deadline = time.monotonic() + 120
    while True:
        out = fed.compose(fed.ministry, list_nodes + " --format json", check=False)
        start = out.find("{")
        nodes = json.loads(out[start:]).get("nodes", []) if start >= 0 else []
        online = [n for n in nodes if n.get("status") == "online"
                  and str(n.get("node-id")) == str(entry["node_id"])]
        if not online:
            break
        assert time.monotonic() < deadline, nodes
        time.sleep(3)
