"""The loopback launcher: the real deployment (proxy, SuperLink, SuperNodes, TLS,
SuperNode authentication) on 127.0.0.1, for demonstrations and end-to-end tests.

``run_dev_federation`` prepares the PKI and one data file per centre, starts the
ministry side (SuperLink, ServerApp executor, nginx, the operator's tunnel) and the
centres (SuperNode and ClientApp runtime each, with the app it ships approved), enrols
every centre through the operator tunnel (mutual TLS to the proxy's operator listener),
submits the app with ``flwr run``, follows it with ``flwr log`` to the end, completes
the run folder's ``summary.json`` and stops every process it started, whatever happens.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path

from client.site_policy import PrivacyFloor
from common.config import ConfigError, RunConfig, parse_assignment
from common.errors import ExitCode, PerseveranceError
from common.i18n import cli as cli_language
from common.i18n.catalogue import LANGUAGE_VARIABLE, N_, Number, sentence
from common.i18n.waits import Waits, no_waits
from common.workdirs import MINISTRY_KEY_ENV, ministry_key_path, work_root
from server.deployment import enrolment, pki
from server.deployment import programs as deployment
from server.deployment.processes import (
    ProcessError,
    ProcessGroup,
    free_ports,
    offline_environment,
    terminate_on_sigterm,
    wait_until,
)
from simulations.inprocess import torch_threads
from simulations.loopback.sides import (
    LOOPBACK_OPERATOR,
    Ministry,
    project_fab_hash,
    start_centre,
    start_ministry,
)
from simulations.reference import centralized_auc
from simulations.runner import write_centre_policy
from simulations.scenario import build_section
from simulations.terminal import plain

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DATA_SUFFIXES = (".parquet", ".csv")
NODES_ONLINE_TIMEOUT = 120.0
CLI_TIMEOUT = 120.0
STATUS_POLL_SECONDS = 3.0


class LauncherInputError(PerseveranceError):
    """The launcher's input (centres, data folder, overrides) is unusable."""

    exit_code = ExitCode.LAUNCHER_INPUT


class RunFailedError(PerseveranceError):
    """The federated run did not complete (failed, stopped, timed out, no summary)."""

    exit_code = ExitCode.RUN_FAILED


POLICY_PREFIX = "centre_policy."


@dataclass(frozen=True)
class DevFederationOptions:
    """What ``perseverance-sim dev-federation`` was asked to do.

    ``students`` is the total number of synthetic students over all centres (used when
    ``data`` is not given); ``overrides`` are extra run-config ``KEY=VALUE`` pairs;
    ``timeout`` bounds the federated run in seconds; ``verbose`` shows Flower's own log
    lines of the run too (they are always in ``logs/run.log``).
    """

    centres: int | None = None
    rounds: int = 2
    data: Path | None = None
    out: Path | None = None
    students: int | None = None
    seed: int = 11
    overrides: list[str] = field(default_factory=list)
    timeout: float = 1800.0
    work: Path | None = None
    verbose: bool = False


def centre_files(options: DevFederationOptions, data_dir: Path) -> list[Path]:
    """Return one data file per centre: the files of ``options.data``, or generated ones."""
    if options.data is not None:
        if not options.data.is_dir():
            raise LauncherInputError(N_("The data folder %(path)s does not exist.",
                                         path=str(options.data)))
        files = sorted(p.resolve() for p in options.data.iterdir() if p.suffix in DATA_SUFFIXES)
        if not files:
            raise LauncherInputError(N_("%(path)s holds no *.parquet or *.csv file.",
                                         path=str(options.data)))
        if options.centres is not None and options.centres != len(files):
            raise LauncherInputError(N_(
                "--centres %(centres)s disagrees with the %(files)s data files in %(path)s; "
                "drop --centres or the extra files.", centres=options.centres,
                files=len(files), path=str(options.data)))
    else:
        from simulations.network import generate_network, write_network

        count = options.centres if options.centres is not None else 3
        if count < 1:
            raise LauncherInputError(N_("--centres must be at least 1."))
        network = generate_network(
            centres=count, students=options.students or 2000 * count, seed=options.seed
        )
        files = [p.resolve() for p in write_network(network, data_dir)]
    for path in files:
        try:
            pki.check_centre_name(path.stem)
        except pki.PkiError as err:
            raise LauncherInputError(N_("%(file)s: %(error)s Rename the file.", file=path.name,
                                         error=sentence(err))) from err
    return files


def centre_floor(options: DevFederationOptions) -> PrivacyFloor:
    """The generated centres' privacy floor: the defaults, lowered or raised by the
    ``centre_policy.<key>`` overrides (written to their ``policy.toml``)."""
    values: dict[str, object] = {}
    try:
        for text in options.overrides:
            key, value = parse_assignment(text)
            if key.startswith(POLICY_PREFIX):
                values[key.removeprefix(POLICY_PREFIX)] = value
        floor = build_section(PrivacyFloor, values)
    except ConfigError as err:
        raise LauncherInputError(sentence(err)) from err
    if values and options.data is not None:
        raise LauncherInputError(
            "centre_policy keys set the generated centres' policy; with --data, write "
            f"{options.data / 'policy.toml'} instead.")
    assert isinstance(floor, PrivacyFloor)
    return floor


def run_config(options: DevFederationOptions, run_dir: Path, centres: int) -> RunConfig:
    """The run configuration: loopback defaults, then the user's overrides (the
    ``centre_policy.*`` ones are the centres', not the run's: :func:`centre_floor`)."""
    flat: dict[str, object] = {
        "scenario": "loopback",
        "rounds": options.rounds,
        "min_centres": centres,
        "run_dir": str(run_dir),
    }
    try:
        for text in options.overrides:
            key, value = parse_assignment(text)
            if not key.startswith(POLICY_PREFIX):
                flat[key] = value
        config = RunConfig.from_flat(flat)
    except ConfigError as err:
        raise LauncherInputError(sentence(err)) from err
    if config.run_dir != str(run_dir):
        raise LauncherInputError(N_("Set the run folder with --out, not with run_dir=."))
    return config


def _flwr(args: list[str], env: dict[str, str]) -> dict[str, object]:
    """Run one ``flwr`` CLI command with ``--format json``; return its JSON answer."""
    result = subprocess.run(
        [enrolment.flower_executable("flwr"), *args, "--format", "json"],
        capture_output=True, text=True, env=env, timeout=CLI_TIMEOUT, check=False,
    )
    start = result.stdout.find("{")
    try:
        return dict(json.loads(result.stdout[start:])) if start >= 0 else {}
    except ValueError:
        return {}


def nodes_online(env: dict[str, str]) -> int:
    """Return how many registered SuperNodes the SuperLink sees online."""
    answer = _flwr(["supernode", "list", deployment.OPERATOR_CONNECTION], env)
    nodes = answer.get("nodes", [])
    if not isinstance(nodes, list):
        return 0
    return sum(1 for n in nodes if isinstance(n, dict) and n.get("status") == "online")


def submit_run(config: RunConfig, env: dict[str, str]) -> int:
    """Submit the app with ``flwr run``; return the run id."""
    overrides = deployment.config_string(
        {k: v for k, v in config.to_flat().items() if k != "data_dir"}
    )
    answer = _flwr(
        ["run", str(PROJECT_ROOT), deployment.OPERATOR_CONNECTION, "--run-config", overrides], env
    )
    if answer.get("success") is not True:
        raise RunFailedError(N_("flwr run was refused: %(error)s.",
                                error=str(answer.get("error-message", answer))))
    return int(str(answer["run-id"]))


def run_status(run_id: int, env: dict[str, str]) -> str:
    """Return the run's status as ``flwr ls`` shows it (e.g. ``finished:completed``)."""
    answer = _flwr(["ls", deployment.OPERATOR_CONNECTION, "--run-id", str(run_id)], env)
    runs = answer.get("runs", [])
    if not isinstance(runs, list) or not runs or not isinstance(runs[0], dict):
        return "unknown"
    return str(runs[0].get("status", "unknown"))


def follow_run(
    run_id: int, group: ProcessGroup, env: dict[str, str], timeout: float,
    echo: Callable[[str], None], verbose: bool = False,
) -> str:
    """Stream the run's log (``flwr log --stream``) until the run ends; return its status.
    ``echo`` gets the ServerApp's own lines (and Flower's too when ``verbose``)."""
    follower = group.start(
        "run", [enrolment.flower_executable("flwr"), "log", str(run_id),
                deployment.OPERATOR_CONNECTION, "--stream"],
        expect_exit=True,
    )
    shown = 0

    def show_new_lines() -> None:
        nonlocal shown
        lines = follower.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
        for line in lines[shown:]:
            if _worth_showing(line, verbose):
                echo(line if verbose and sys.stdout.isatty() else plain(line))
        shown = len(lines)

    deadline = time.monotonic() + timeout
    status = "running"
    # The log stream ends with the run; should it break off earlier, poll the status.
    while follower.exited() is None or not status.startswith("finished"):
        group.check_alive()
        show_new_lines()
        if time.monotonic() > deadline:
            raise RunFailedError(N_("The run did not finish within %(seconds)s s.",
                                    seconds=Number(timeout, 0)))
        if follower.exited() is not None:
            status = run_status(run_id, env)
            time.sleep(0 if status.startswith("finished") else STATUS_POLL_SECONDS)
        else:
            time.sleep(1.0)
    show_new_lines()
    if status != "finished:completed":
        raise RunFailedError(N_("Run %(run_id)s ended as %(status)s; see %(log)s.", run_id=run_id,
                                status=status, log=str(follower.log_path)))
    return status


#: The ServerApp's timestamped log lines (Flower's format): a round starts at its
#: ``configure_train``; the run ends at ``ServerApp finished running``.
_STAMPED = re.compile(r"^(\d\d/\d\d/\d{4} \d\d:\d\d:\d\d):\w+:(.*)$")


def round_seconds(log_text: str) -> list[float]:
    """Seconds of each round, from the ServerApp's log (``logs/run.log``): from one
    round's ``configure_train`` to the next one's, the last to ``ServerApp finished
    running`` (what the last round's evaluation and the final bookkeeping took)."""
    starts: list[datetime] = []
    end: datetime | None = None
    for line in log_text.splitlines():
        match = _STAMPED.match(line.strip())
        if not match:
            continue
        when = datetime.strptime(match.group(1), "%d/%m/%Y %H:%M:%S")
        if match.group(2).startswith("configure_train"):
            starts.append(when)
        elif match.group(2).startswith("ServerApp finished running"):
            end = when
    bounds = starts + ([end] if end is not None else [])
    return [(later - earlier).total_seconds() for earlier, later in pairwise(bounds)]


def _worth_showing(line: str, verbose: bool = False) -> bool:
    """Keep the ServerApp's own round lines (indented, in the command's language); drop
    everything else of the stream unless ``verbose``: Flower's log lines whatever their
    level ("12/07/2026 17:58:14:INFO:configure_train: ...", "INFO :  [ROUND 1]"), the
    ``flwr`` CLI's own ("Successfully installed ...") and a traceback's frames. The full
    log stays in ``logs/run.log``; a failed run's sentence names it."""
    text = plain(line)
    if not text.strip():
        return False
    if verbose:
        return True
    return text.startswith("  ") and not text.lstrip().startswith("File ")


def _fresh(folder: Path) -> Path:
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    return folder


def run_dev_federation(
    options: DevFederationOptions, echo: Callable[[str], None] = print,
    waits: Waits = no_waits,
) -> Path:
    """Run one federated training on loopback with the real components; return the run
    folder (``summary.json``, model, per-round metrics, config, data, logs). ``waits``
    says what each phase waits for."""
    started = time.monotonic()
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    run_dir = (options.out or Path("runs") / f"loopback-{stamp}").resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    # A summary left by an earlier run would pass for this run's. The new one says from
    # the start that the run is the loopback deployment's (the console keeps it apart
    # from the deployed federation's runs, also when it stops early).
    from server import run_folder
    from server.summary import Summary

    (run_dir / run_folder.SUMMARY).unlink(missing_ok=True)
    run_folder.update_summary(run_dir, Summary(deployment="loopback"))
    work = (options.work or work_root() / "devfed" / run_dir.name).resolve()
    floor = centre_floor(options)
    with waits(N_("Preparing the centres' data")):
        files = centre_files(options, run_dir / "data")
    if options.data is None:
        write_centre_policy(floor, run_dir / "data")
    centres = [p.stem for p in files]
    config = run_config(options, run_dir, len(centres))

    with waits(N_("Creating the keys and certificates of the ministry and the centres")):
        paths = prepare_pki(work / "pki", centres)
    # A fresh federation every time: new SuperLink database, inventory and ledgers.
    # The processes it starts (the ServerApp's progress lines) speak the command's language.
    # The ministry's key is not the fresh Flower home's: the one every command resolves
    # (common.workdirs), so that `perseverance-server audit verify` checks this run as is.
    env = offline_environment({"FLWR_HOME": str(_fresh(work / "flwr-home")),
                               MINISTRY_KEY_ENV: str(ministry_key_path()),
                               LANGUAGE_VARIABLE: cli_language.current()})
    echo(N_("Loopback federation of %(count)s centres (%(names)s), %(rounds)s rounds; run "
            "folder %(run_dir)s", count=len(centres), names=", ".join(centres),
            rounds=config.rounds, run_dir=str(run_dir)))

    restore_sigterm = terminate_on_sigterm()
    try:
        with ProcessGroup(run_dir / "logs", env) as group:
            start_federation(group, paths, work, files, env, echo, waits,
                             runs_root=run_dir.parent)
            mapping = _optional(files[0].parent / "mapping.toml")
            with waits(N_("Submitting the app to the SuperLink (flwr run)")):
                run_id = submit_run(config, env)
            echo(N_("Submitted run %(run_id)s; following it to the end.", run_id=run_id))
            # The centralised reference (no DP, pooled data) is computed here, while the
            # centres train: the launcher would otherwise only wait. On one thread: it
            # shares the cores with the centres' first round.
            with torch_threads(1), waits(N_("Centralised reference, while the centres "
                                            "start training")):
                reference = centralized_auc(files, config, mapping)
            with waits(N_("Federated training of run %(run_id)s: %(rounds)s rounds",
                          run_id=run_id, rounds=config.rounds)):
                follow_run(run_id, group, env, options.timeout, echo, options.verbose)
    finally:
        restore_sigterm()
    with waits(N_("Writing the model card and the report")):
        return _complete_summary(run_dir, config, started, run_id, len(files), reference,
                                 round_seconds(follower_log(run_dir)))


def follower_log(run_dir: Path) -> str:
    """The run's log as ``flwr log`` streamed it (empty if there is none)."""
    path = run_dir / "logs" / "run.log"
    return path.read_text(encoding="utf-8", errors="replace") if path.is_file() else ""


def prepare_pki(root: Path, centres: list[str]) -> pki.PkiPaths:
    """The launcher's PKI: CAs and servers' certificates, the launcher's operator
    certificate and every centre's key (existing ones are kept)."""
    paths = pki.init_pki(root)
    if not paths.operator_key(LOOPBACK_OPERATOR).exists():
        pki.add_operator(root, LOOPBACK_OPERATOR)
    for centre in centres:
        if not paths.centre_private_key(centre).exists():
            pki.add_centre(root, centre)
    return paths


def start_federation(
    group: ProcessGroup, paths: pki.PkiPaths, work: Path, files: list[Path],
    env: dict[str, str], echo: Callable[[str], None] = print, waits: Waits = no_waits,
    runs_root: Path | None = None,
) -> Ministry:
    """Start the ministry side, enrol every centre (one per data file, named after it),
    start the centres and wait until every SuperNode is online. State (SuperLink
    database, inventory, ledgers) is made fresh under ``work``. With ``runs_root`` (the
    folder of the run folders), a records keeper holds the ministry's key, as deployed."""
    centres = [p.stem for p in files]
    state = _fresh(work / "state")
    inventory = work / "inventory.json"
    inventory.unlink(missing_ok=True)
    ports = free_ports(4 + len(centres))
    ministry = Ministry(paths, state, ports[0], ports[1], ports[2], work / "nginx", ports[3],
                        runs_root=runs_root)
    with waits(N_("Starting the ministry's servers (SuperLink, reverse proxy)")):
        start_ministry(group, ministry)  # its operator tunnel writes the flwr connection
    for centre in centres:
        with waits(N_("Enrolling %(centre)s: registering its public key", centre=centre)):
            entry = enrolment.enrol(
                centre, paths.centre_public_key(centre), inventory,
                deployment.OPERATOR_CONNECTION, env,
            )
        echo(N_("Enrolled %(centre)s as node %(node)s (%(fingerprint)s).", centre=centre,
                node=entry.node_id, fingerprint=entry.fingerprint))
    mapping = _optional(files[0].parent / "mapping.toml")
    policy = _optional(files[0].parent / "policy.toml")
    # Each centre runs only the apps it approved: here, the one this launcher ships.
    with waits(N_("Building the app's package (FAB) and computing its SHA-256")):
        app_hash = project_fab_hash(PROJECT_ROOT)
    echo(N_("Every centre approves the app %(hash)s (its FAB's SHA-256).", hash=app_hash[:12]))
    with waits(N_("Starting the %(count)s centres and waiting until they are online",
                  count=len(centres))):
        for centre, data_file, port in zip(centres, files, ports[4:], strict=True):
            start_centre(group, ministry, paths, centre, data_file, port,
                         _fresh(state / "centres" / centre), mapping, policy, (app_hash,))
        wait_until(lambda: nodes_online(env) >= len(centres), timeout=NODES_ONLINE_TIMEOUT,
                   what=f"{len(centres)} SuperNodes to come online", group=group,
                   interval=2.0)
    return ministry


def _optional(path: Path) -> Path | None:
    return path if path.is_file() else None


def _complete_summary(
    run_dir: Path, config: RunConfig, started: float, run_id: int, centres: int,
    auc_centralized: float, rounds: list[float] | None = None,
) -> Path:
    """Check the ServerApp's summary and add what only the launcher knows."""
    from server import run_folder
    from server.summary import Summary

    summary = run_folder.summary_or_empty(run_dir)
    if summary.rounds_completed is None:
        raise RunFailedError(N_("The run finished without writing %(path)s.",
                                path=str(run_dir / run_folder.SUMMARY)))
    if summary.rounds_completed < config.rounds:
        raise RunFailedError(run_folder.stopped_early(summary, config.rounds, run_dir))
    run_folder.update_summary(run_dir, Summary(
        auc_centralized=auc_centralized,
        num_centres_total=centres,
        deployment="loopback",
        flower_run_id=run_id,
        # Seconds per round (whole seconds: Flower's log stamps), for docs/BENCHMARKS.md.
        round_seconds=rounds or [],
        wall_seconds=round(time.monotonic() - started, 2),
    ))
    from server.publication.model_card import write_model_card
    from simulations.report import write_report

    write_model_card(run_dir)
    write_report(run_dir)
    return run_dir


__all__ = ["DevFederationOptions", "ProcessError", "run_dev_federation"]
