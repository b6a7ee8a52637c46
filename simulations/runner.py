"""Run a scenario on Flower's simulation engine (Ray backend), on one machine or a cluster.

The same ServerApp and ClientApp as in deployment run here; each simulated SuperNode
is a centre whose data file lies in the run folder's ``data/``, handed to it by
partition number (see ``client.federation.rounds.resolve_data_source``).
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import tomli_w
from sklearn.metrics import roc_auc_score

from client.site_policy import PrivacyFloor
from common.config import ConfigError, RunConfig
from common.csv_output import write_csv
from common.errors import ExitCode, PerseveranceError
from common.i18n.catalogue import N_, Number
from common.i18n.waits import Waits, no_waits
from common.metrics import calibration_error, score_histogram
from common.model import read_model
from common.workdirs import prepare_environment
from server import run_folder
from server.publication.model_card import write_model_card
from server.summary import Attack, Summary
from simulations.baselines import environment_only_auc, local_only
from simulations.centre_states import records_retired
from simulations.inprocess import scores, torch_threads
from simulations.membership import dp_advantage_bound, loss_threshold_advantage
from simulations.reference import centralized_auc_of, pooled_data
from simulations.report import write_report
from simulations.scenario import Scenario
from simulations.terminal import SIMULATION_LOG, ThirdPartyOutput

if TYPE_CHECKING:
    from flwr.clientapp import ClientApp

    from simulations.engine import SimulationEngine

PROJECT_ROOT = Path(__file__).resolve().parents[1]


class SimulationError(PerseveranceError):
    """The simulation could not run to the end. One sentence."""

    exit_code = ExitCode.SIMULATION_FAILED


def project_path(text: str) -> Path:
    """A path from a scenario: as given if it exists, else relative to the project."""
    path = Path(text)
    if path.exists() or path.is_absolute():
        return path
    return PROJECT_ROOT / path


def write_centre_policy(floor: PrivacyFloor, data_dir: Path) -> None:
    """The simulated centres' ``policy.toml``, when a scenario (or ``dev-federation``)
    lowers or raises their privacy floor (``centre_policy.*``); without it they keep the
    defaults."""
    if floor == PrivacyFloor():
        return
    text = "# Written by perseverance-sim from the scenario's centre_policy keys.\n"
    (data_dir / "policy.toml").write_text(text + tomli_w.dumps({"privacy": asdict(floor)}),
                                          encoding="utf-8")


def prepare_data(scenario: Scenario, data_dir: Path) -> tuple[list[Path], int]:
    """Write one file per centre into ``data_dir`` (and the centres' policy, when the
    scenario sets one); returns the files and the student count."""
    data_dir.mkdir(parents=True, exist_ok=True)
    write_centre_policy(scenario.centre_policy, data_dir)
    if scenario.data.source:
        from client.ingest import split_by_centre

        if not scenario.data.mapping:
            raise ConfigError(N_("A scenario with data.source also needs data.mapping."))
        mapping = project_path(scenario.data.mapping)
        per_centre = split_by_centre(project_path(scenario.data.source), mapping)
        files = []
        for centre, frame in sorted(per_centre.items()):
            path = data_dir / f"{centre}.csv"
            write_csv(path, frame)  # formula cells neutralised (common.csv_output)
            files.append(path)
        shutil.copyfile(mapping, data_dir / "mapping.toml")
        return files, sum(len(f) for f in per_centre.values())
    from simulations.network import generate_network, write_network

    spec = scenario.network
    network = generate_network(
        centres=spec.centres,
        students=spec.students,
        seed=spec.seed,
        include_indigenous_boards=spec.include_indigenous_boards,
        consent_refusal_rate=spec.consent_refusal_rate,
        unlabelled_rate=spec.unlabelled_rate,
    )
    files = write_network(network, data_dir)
    return files, sum(len(frame) for frame in network.frames.values())


def backend_config(scenario: Scenario) -> dict[str, object]:
    """Ray resources: ``backend.num_cpus`` per simulated centre; the local machine's
    cores, or an existing cluster at ``backend.address``."""
    init_args: dict[str, object] = {"logging_level": logging.WARNING, "log_to_driver": True}
    if scenario.backend.address:
        init_args["address"] = scenario.backend.address
    else:
        init_args["num_cpus"] = os.cpu_count() or 1
    return {
        "client_resources": {"num_cpus": scenario.backend.num_cpus, "num_gpus": 0.0},
        "init_args": init_args,
    }


def configure_flower_logging(quiet: bool) -> None:
    """Flower logs every round at length; the runner prints one line per round instead.
    Opacus installs a root handler at import: stop Flower's records reaching it twice."""
    flower_logger = logging.getLogger("flwr")
    flower_logger.setLevel(logging.WARNING if quiet else logging.INFO)
    flower_logger.propagate = False


def run_flower_simulation(
    scenario: Scenario,
    config: RunConfig,
    num_centres: int,
    quiet_flower: bool = True,
    client_app: ClientApp | None = None,
    engine: SimulationEngine | None = None,
    own_logging: bool = True,
) -> None:
    """Run the app's ServerApp and ClientApp on the simulation engine, then stop Ray
    (unless ``engine``, an open :class:`simulations.engine.SimulationEngine`, keeps Ray
    and its actors for the next run). ``own_logging``: set Flower's log level from
    ``quiet_flower`` (False: the caller routes the libraries' logs itself, as
    :class:`simulations.terminal.ThirdPartyOutput` does)."""
    import ray

    from client.federation.app import app as default_client_app
    from server.app import app as server_app
    from simulations.flower_compat import run_simulation

    if engine is not None and not engine.is_open:
        raise ValueError("run_flower_simulation needs an open engine (inside its with block).")
    if own_logging:
        configure_flower_logging(quiet_flower)
    try:
        # Flower's public launch, both apps seeing the scenario's configuration.
        run_simulation(server_app=server_app, client_app=client_app or default_client_app,
                       num_supernodes=num_centres, backend_config=backend_config(scenario),
                       run_config=config.to_flat())
    except Exception as exc:
        raise SimulationError(N_("The federated simulation failed: %(error)s.",
                                 error=str(exc))) from exc
    finally:
        if engine is None and ray.is_initialized():
            ray.shutdown()


@dataclass
class SharedInputs:
    """What several runs of one scenario share (a sweep): the centres' data files,
    generated once in ``data_dir``, and the centralised reference, which depends on
    neither the privacy budget nor DP (no DP, fixed seed), keyed by what it does
    depend on."""

    data_dir: Path
    files: list[Path]
    num_students: int
    references: dict[tuple[object, ...], float] = field(default_factory=dict)

    @classmethod
    def prepare(cls, scenario: Scenario, data_dir: Path) -> SharedInputs:
        files, num_students = prepare_data(scenario, data_dir)
        return cls(data_dir.resolve(), files, num_students)


def wall_time_line(summary: dict[str, object], command_seconds: float | None = None) -> str:
    """Where a run's wall time went, from ``summary.json`` (printed by ``run``);
    ``command_seconds``, the whole command's, adds what came before the run (loading
    the libraries, reading the scenario)."""
    split = summary.get("wall_seconds_split")
    if not isinstance(split, dict):
        return ""
    seconds = {part: float(split.get(part, 0.0)) for part in (
        "data", "engine_start", "engine_stop", "federation", "references_and_baselines",
        "reports")}
    engine = seconds["engine_start"] + seconds["engine_stop"]
    total = summary.get("wall_seconds", 0.0)
    if command_seconds is not None and isinstance(total, int | float):
        return N_("Wall time %(total)s s: loading the libraries and reading the scenario "
                  "%(start)s s, starting and stopping the engine %(engine)s s, federation "
                  "%(federation)s s, baselines and references %(references)s s, data and "
                  "reports %(rest)s s.", total=Number(command_seconds, 0),
                  start=Number(max(0.0, command_seconds - float(total)), 0),
                  engine=Number(engine, 0), federation=Number(seconds["federation"], 0),
                  references=Number(seconds["references_and_baselines"], 0),
                  rest=Number(seconds["data"] + seconds["reports"], 0))
    return N_("Wall time %(total)s s: starting and stopping the engine %(engine)s s, "
              "federation %(federation)s s, baselines and references %(references)s s, "
              "data and reports %(rest)s s.",
              total=Number(float(total) if isinstance(total, int | float) else 0.0, 0),
              engine=Number(engine, 0), federation=Number(seconds["federation"], 0),
              references=Number(seconds["references_and_baselines"], 0),
              rest=Number(seconds["data"] + seconds["reports"], 0))


def _reference_key(config: RunConfig) -> tuple[object, ...]:
    """What ``centralized_auc_of`` depends on besides the data."""
    return (config.seed, config.training.hidden_sizes, config.training.centralized_epochs,
            config.evaluation.test_fraction)


def run_scenario(
    scenario: Scenario,
    out: Path | None = None,
    quiet_flower: bool = True,
    client_app: ClientApp | None = None,
    engine: SimulationEngine | None = None,
    shared: SharedInputs | None = None,
    waits: Waits = no_waits,
) -> Path:
    """Generate the data, run the federation, add the centralised reference; returns the
    run folder holding ``summary.json``.

    ``engine`` (open) keeps Ray and its actors for the next run (else the run starts
    its own and stops it after the federation); ``shared`` gives the data (and
    reference) that runs of the same scenario share. ``summary.json`` gets
    ``wall_seconds_split``: ``data`` (generation), ``engine_start`` (Ray and its actors
    with their imports; 0 on an engine already started), ``federation`` (the rounds),
    ``engine_stop`` (0 on a kept engine),
    ``references_and_baselines`` (the centralised reference, the exact pooled metrics,
    the membership audit, the environment-only and local-only baselines) and
    ``reports`` (model card and report). Flower's, Ray's and the libraries' own logs
    and warnings go to ``logs/simulation.log`` in the run folder, and to the terminal
    too unless ``quiet_flower`` (:class:`simulations.terminal.ThirdPartyOutput`);
    ``waits`` says what each long step waits for (:mod:`common.i18n.waits`).
    """
    from simulations.attacks import attack_mods

    started = time.monotonic()
    split: dict[str, float] = {}
    prepare_environment()
    run_dir = (out or run_folder.default_run_dir(scenario.name)).resolve()
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # an existing file there, a folder this account may not write
        raise ConfigError(N_("Cannot create the folder %(path)s (%(reason)s); give an "
                                 "--out this account may write to.", path=str(run_dir),
                                 reason=exc.strerror or str(exc))) from None
    output = ThirdPartyOutput(run_dir / SIMULATION_LOG, verbose=not quiet_flower)
    with output:
        if shared is None:
            data_dir = run_dir / "data"
            with waits(N_("Generating the centres' data")):
                files, num_students = prepare_data(scenario, data_dir)
        else:
            data_dir, files, num_students = shared.data_dir, shared.files, shared.num_students
            link = run_dir / "data"
            if not link.exists():  # the run folder shows its data as an unshared one would
                link.symlink_to(data_dir, target_is_directory=True)
        config = replace(scenario.run, run_dir=str(run_dir), data_dir=str(data_dir))
        from simulations.network import MANIFEST

        manifest = data_dir / MANIFEST
        if not config.evaluation.centre_register and manifest.is_file():
            # A generated network's centres.json places each centre in its region.
            config = replace(config, evaluation=replace(config.evaluation,
                                                        centre_register=str(manifest)))
        mods, attackers = attack_mods(scenario.attack, files, run_dir)
        if mods:
            if client_app is not None:
                raise ConfigError(N_("An [attack] needs the default ClientApp; drop the attack."))
            from client.federation.app import build_client_app

            client_app = build_client_app(mods)
        split["data"] = time.monotonic() - started
        engine_started = time.monotonic()
        from simulations.engine import SimulationEngine  # imports Ray

        own = SimulationEngine(backend_config(scenario)) if engine is None else None
        with own if own is not None else nullcontext():
            kept = own or engine
            assert kept is not None
            # Until the next run's: the actors' last words come as the engine stops.
            kept.actor_output = output.actor_output
            if not kept.started:
                with waits(N_("Starting the simulation engine (Ray and its actors, which "
                              "load torch, Opacus and Flower)")):
                    kept.start()  # Ray and the actors with their imports, not the rounds
            split["engine_start"] = time.monotonic() - engine_started
            federation_started = time.monotonic()
            with waits(N_("Federated training: %(rounds)s rounds over %(centres)s centres",
                          rounds=config.rounds, centres=len(files))):
                run_flower_simulation(scenario, config, len(files), quiet_flower, client_app,
                                      kept, own_logging=False)
            split["federation"] = time.monotonic() - federation_started
            stop_started = time.monotonic()
        split["engine_stop"] = time.monotonic() - stop_started  # 0 on a kept engine
        references_started = time.monotonic()
        # One torch thread per process, as the simulated centres (a Ray actor per CPU): a
        # second thread costs more than it gives on this small model and a small machine.
        with torch_threads(max(1, math.floor(scenario.backend.num_cpus))), waits(
                N_("Centralised reference, membership audit and baselines")):
            mapping = data_dir / "mapping.toml"
            centres = pooled_data(files, config, mapping if mapping.is_file() else None)
            key = _reference_key(config)
            if shared is not None and key in shared.references:
                reference = shared.references[key]
            else:
                reference = centralized_auc_of(centres, config)
                if shared is not None:
                    shared.references[key] = reference
            summary = run_folder.read_summary(run_dir)
            if (summary.rounds_completed or 0) < config.rounds:
                raise SimulationError(run_folder.stopped_early(summary, config.rounds, run_dir))
            final_model = read_model(run_dir / run_folder.MODEL)
            probabilities, labels = scores(final_model, centres)
            extras = [Summary(
                mia_advantage=loss_threshold_advantage(final_model, centres),
                # The exact pooled AUC, which only a harness holding every centre's data can
                # compute; auc_pooled is what the ministry gets from the centres' releases.
                auc_pooled_exact=float(roc_auc_score(labels, probabilities)),
                # The same for calibration: ``scores`` applies the model's recalibration, as
                # ``perseverance-client score`` does.
                calibration_error_pooled_calibrated_exact=calibration_error(
                    score_histogram(probabilities, labels, config.evaluation.bins)),
            )]
            if config.privacy.dp:  # per centre, from the simulated centres' own ledgers
                extras.append(Summary(records_retired=records_retired(
                    config, files, summary.run_name or "")))
            if config.privacy.dp and summary.epsilon_max:
                extras.append(Summary(mia_advantage_bound=dp_advantage_bound(
                    summary.epsilon_max, config.privacy.delta)))
            if scenario.baselines.enabled:
                environment = environment_only_auc(config, centres)
                gap = (summary.auc_pooled - environment if summary.auc_pooled is not None
                       else None)
                extras += [Summary(auc_environment_only=environment,
                                   auc_individual_minus_environment=gap),
                           local_only(config, centres)]
        split["references_and_baselines"] = time.monotonic() - references_started
        run_folder.update_summary(run_dir, *extras, Summary(
            auc_centralized=reference,
            num_students=num_students,
            num_centres_total=len(files),
            wall_seconds=round(time.monotonic() - started, 2),
            scenario_file=scenario.source_file,
            overrides=scenario.overrides,
            attack=(
                Attack(kind=scenario.attack.kind, fraction=scenario.attack.fraction,
                       malicious_centres=attackers) if attackers else None
            ),
        ))
        reports_started = time.monotonic()
        with waits(N_("Writing the model card and the report")):
            write_model_card(run_dir)
            write_report(run_dir)
        split["reports"] = time.monotonic() - reports_started
        # The whole command, reports included; the split says where it went.
        run_folder.update_summary(run_dir, Summary(
            wall_seconds=round(time.monotonic() - started, 2),
            wall_seconds_split={part: round(seconds, 2) for part, seconds in split.items()}))
        return run_dir
