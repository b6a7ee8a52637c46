"""``perseverance-sim``: run, generate and compare simulated federations.

Exit codes: 0 success; 2 bad input (scenario, key, value, file); 3 the simulation
failed while running; 130 interrupted. ``dev-federation`` (the real deployment on
loopback) has the deployment's codes: 3 PKI, 4 enrolment, 5 unusable input, 6 a server
did not start or died, 7 the run failed.

Its sentences and help are in French unless ``--lang en`` (before the command:
``perseverance-sim --lang en run``) or the locale says English (``common.i18n.cli``);
sentences made by the libraries it calls are translated when they are catalogue
messages (``N_``) and shown as they are otherwise.
"""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from common.errors import ExitCode
from common.i18n.catalogue import N_, Number, sentence, word
from common.i18n.cli import LangOption, LocalisedGroup, current, error_line, shown
from common.i18n.waits import TerminalWaits, command_seconds

if TYPE_CHECKING:
    from simulations.scenario import Scenario

# The commands import what they run inside their functions: --help and a wrong option
# answer at once, without torch, pandas or Flower (issue 28; tests/simulations/test_cli_fast.py).

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  cls=LocalisedGroup,
                  help="Simulated federations of Québec school service centres.")
console = Console(highlight=False)
err = Console(stderr=True, highlight=False)

ScenarioOption = Annotated[str, typer.Option("--scenario", "-s",
                           help="Scenario name (see `list`) or path to a TOML file.")]
SetOption = Annotated[list[str] | None, typer.Option("--set", help="Override: KEY=VALUE.")]
VerboseOption = Annotated[bool, typer.Option(
    help="Also show the libraries' own logs and warnings (Flower, Ray); the run folder's "
    "logs keep them in any case.")]
LOADING = N_("Loading torch, Opacus and Flower")


@app.callback()
def _options(lang: LangOption = None) -> None:
    """The language is set by the option's callback (``common.i18n.cli``)."""


def _say(message: str) -> None:
    """Print a catalogue message (or a sentence from elsewhere, as it is) as plain text."""
    console.print(shown(message), markup=False, soft_wrap=True)


def _fail(message: str, code: int) -> None:
    err.print(error_line(message), soft_wrap=True)
    raise typer.Exit(code)


def _started(loaded: Scenario) -> str:
    """What a run is about to do: its data, rounds and privacy."""
    n, privacy = loaded.network, loaded.run.privacy
    where = loaded.data.source or N_("%(centres)s synthetic centres, about %(students)s "
                                     "students", centres=n.centres,
                                     students=Number(n.students, 0))
    dp = (N_("DP-SGD epsilon %(epsilon)s at delta %(delta)s per centre",
             epsilon=Number(privacy.epsilon, None), delta=Number(privacy.delta, None))
          if privacy.dp else word(N_("no DP")))
    return N_("Persévérance scenario %(name)s: %(where)s; %(rounds)s rounds; %(dp)s.",
              name=loaded.name, where=where, rounds=loaded.run.rounds, dp=dp)


def _done(summary: dict[str, Any], seconds: float | None = None) -> str:
    """A finished run's figures (summary.json): time (``seconds``, the command's own,
    else the run's), pooled AUC, epsilon spent."""
    released, eps = summary.get("auc_pooled"), summary.get("epsilon_max")
    figures = {
        "seconds": Number(summary["wall_seconds"] if seconds is None else seconds, 0),
        "auc": (Number(released, 3) if released is not None
                else word(N_("not measured: no centre released its final evaluation "
                             "(centres_refused in summary.json, and each centre's audit "
                             "log, say why)")) if not summary.get("num_centres")
                else word(N_("not measurable (too few students for the noise)"))),
        "centralised": Number(summary["auc_centralized"], 3),
    }
    if eps:
        return N_("Done in %(seconds)s s: pooled AUC %(auc)s (centralised without DP "
                  "%(centralised)s), epsilon spent at most %(epsilon)s at delta %(delta)s.",
                  epsilon=Number(eps, 2), delta=Number(summary["delta"], None), **figures)
    return N_("Done in %(seconds)s s: pooled AUC %(auc)s (centralised without DP "
              "%(centralised)s).", **figures)


def console_command(run_dir: Path) -> str:
    """The shell command that opens the operations console on the folder holding
    ``run_dir`` (the console lists every run folder directly under ``--runs``)."""
    return f"perseverance-server console --runs {shlex.quote(str(run_dir.parent))}"


@app.command("list")
def list_scenarios() -> None:
    """List the shipped scenarios."""
    import textwrap

    from simulations.scenario import available_scenarios, load_scenario

    names = available_scenarios()
    column = max(len(name) for name in names) + 2
    width = max(console.width, column + 30)
    for name in names:
        # The description through the catalogue (simulations/scenario_catalogue.py).
        text = shown(load_scenario(name).description)
        lines = textwrap.wrap(text, width - column, break_on_hyphens=False) or [""]
        console.print(f"{name:<{column}}{lines[0]}", soft_wrap=True, markup=False,
                      highlight=False)
        for line in lines[1:]:
            console.print(" " * column + line, soft_wrap=True, markup=False,
                          highlight=False)


@app.command()
def run(
    scenario: ScenarioOption = "demo",
    set_: SetOption = None,
    out: Annotated[Path | None, typer.Option("--out", help="Run folder to write.")] = None,
    verbose: VerboseOption = False,
) -> None:
    """Run a scenario end to end and write its run folder (summary.json, model, ...)."""
    from common.config import ConfigError
    from simulations.scenario import load_scenario

    try:
        loaded = load_scenario(scenario, set_)
    except ConfigError as exc:
        _fail(sentence(exc), ConfigError.exit_code)
        return
    from server.run_folder import SUMMARY, default_run_dir, read_json

    _say(_started(loaded))
    folder = out or default_run_dir(loaded.name)
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)  # so that the command works at once
    except OSError as exc:
        _fail(N_("Cannot create the folder %(path)s (%(reason)s); give an --out this account "
                 "may write to.", path=str(folder.parent), reason=exc.strerror or str(exc)),
              ExitCode.UNUSABLE)
        return
    _say(N_("To watch it live: %(command)s", command=console_command(folder)))
    waits = TerminalWaits(err)
    with waits(LOADING):
        from simulations.runner import SimulationError, run_scenario, wall_time_line
    try:
        run_dir = run_scenario(loaded, folder, quiet_flower=not verbose, waits=waits)
    except (SimulationError, ConfigError) as exc:
        _fail(sentence(exc), getattr(exc, "exit_code", 3))
        return
    except KeyboardInterrupt:
        _fail(N_("interrupted; the run folder may be incomplete."), 130)
        return
    summary = read_json(run_dir / SUMMARY)
    seconds = command_seconds()
    _say(_done(summary, seconds))
    _say(wall_time_line(summary, seconds))
    _say(N_("Results: %(path)s", path=run_dir))
    _say(N_("To open it in the console: %(command)s", command=console_command(folder)))


@app.command()
def generate(
    scenario: ScenarioOption = "demo",
    out: Annotated[Path, typer.Option("--out", help="Folder for one file per centre.")] = Path(
        "runs/generated"),
    set_: SetOption = None,
    fmt: Annotated[str, typer.Option("--format", help="parquet or csv")] = "parquet",
) -> None:
    """Write the scenario's synthetic centres, one file per centre, harmonised schema."""
    from common.config import ConfigError
    from simulations.network import generate_network, write_network
    from simulations.scenario import load_scenario

    try:
        loaded = load_scenario(scenario, set_)
        if fmt not in ("parquet", "csv"):
            raise ConfigError(N_("--format must be parquet or csv, not %(format)r.",
                                 format=fmt))
    except ConfigError as exc:
        _fail(sentence(exc), ConfigError.exit_code)
        return
    spec = loaded.network
    network = generate_network(
        centres=spec.centres, students=spec.students, seed=spec.seed,
        include_indigenous_boards=spec.include_indigenous_boards,
        consent_refusal_rate=spec.consent_refusal_rate, unlabelled_rate=spec.unlabelled_rate,
    )
    files = write_network(network, out, fmt=fmt)
    total = sum(len(f) for f in network.frames.values())
    _say(N_("Wrote %(centres)s centres (%(students)s students) to %(path)s.",
            centres=len(files), students=Number(total, 0), path=out))


@app.command()
def bench(
    scenario: ScenarioOption = "demo",
    set_: SetOption = None,
    json_file: Annotated[Path | None, typer.Option(
        "--json", help="File for every figure, as JSON (default: bench.json in --out).")] = None,
    out: Annotated[Path | None, typer.Option(
        "--out", help="Working folder: data and one run folder per simulated phase.")] = None,
) -> None:
    """Measure the framework's cost next to the raw compute (docs/BENCHMARKS.md)."""
    import json

    from rich.table import Table

    from common.config import ConfigError
    from simulations.scenario import load_scenario

    try:
        loaded = load_scenario(scenario, set_)
    except ConfigError as exc:  # said before the libraries load
        _fail(sentence(exc), ConfigError.exit_code)
        return
    with TerminalWaits(err)(LOADING):
        from server.run_folder import default_run_dir, write_json
        from simulations.bench import run_bench
        from simulations.bench_report import table_rows
        from simulations.runner import SimulationError
    folder = out or default_run_dir(f"bench-{loaded.name}")
    _say(N_("Persévérance benchmark of scenario %(name)s: plain loop and simulation engine, "
            "with and without DP.", name=loaded.name))
    try:
        report = run_bench(loaded, folder, progress=lambda line: _say(f"  {shown(line)}"))
    except (SimulationError, ConfigError) as exc:
        _fail(sentence(exc), getattr(exc, "exit_code", 3))
        return
    except KeyboardInterrupt:
        _fail(N_("interrupted; no figures written."), 130)
        return
    target = json_file or folder / "bench.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    write_json(target, json.loads(json.dumps(report, default=float)))
    table = Table(title=shown(N_("Benchmark %(name)s", name=loaded.name)), show_header=True)
    table.add_column(shown(N_("figure")))
    table.add_column(shown(N_("value")), justify="right")
    for name, value in table_rows(report):
        table.add_row(shown(name), _figures_in_language(value))
    console.print(table)
    yes, no = shown(N_("yes")), shown(N_("NO"))
    met = ", ".join(f"{k} {yes if ok else no}" for k, ok in report["targets"].items())
    _say(N_("Targets (set for quebec-72): %(targets)s.", targets=met))
    _say(N_("Figures: %(path)s", path=target))


def _figures_in_language(text: str) -> str:
    """Figures written in English notation ("1,234.5") in the command's language (French:
    "1 234,5")."""
    if current() != "fr":
        return text
    return re.sub(r"\d[\d,]*(?:\.\d+)?", lambda m: m.group(0).replace(",", "\u202f")
                  .replace(".", ","), text)


@app.command()
def sweep(
    scenario: ScenarioOption = "demo",
    epsilons: Annotated[str, typer.Option(
        "--epsilons", help="Comma-separated epsilon targets; 'none' runs without DP.")
    ] = "0.5,1,2,4,8,none",
    set_: SetOption = None,
    out: Annotated[Path, typer.Option("--out", help="Sweep folder.")] = Path("runs/sweep"),
) -> None:
    """Run the scenario at several epsilons; write sweep.json, sweep.md and sweep.png."""
    from common.config import ConfigError
    from simulations.runner import SimulationError
    from simulations.scenario import load_scenario
    from simulations.sweep import parse_epsilons, run_sweep, table

    try:
        values = parse_epsilons(epsilons)
        load_scenario(scenario, set_)  # refuse bad input before the first run
        points = run_sweep(scenario, values, list(set_ or []), out)
    except (ConfigError, SimulationError) as exc:
        _fail(sentence(exc), getattr(exc, "exit_code", 3))
        return
    console.print(table(points, current()))
    _say(N_("Figure and table: %(path)s", path=out))


@app.command("years")
def years_command(
    scenario: ScenarioOption = "demo",
    years: Annotated[int, typer.Option("--years", help="School years to simulate, 1-10.")] = 5,
    set_: SetOption = None,
    out: Annotated[Path | None, typer.Option(
        "--out", help="Folder: years.json, the centres' state, one run folder a year.")] = None,
    verbose: VerboseOption = False,
) -> None:
    """Simulate successive school years: one federated training a year on that year's
    extract, the centres' ledgers kept from year to year; write years.json."""
    from common.config import ConfigError
    from server.run_folder import default_run_dir
    from simulations.scenario import load_scenario

    waits = TerminalWaits(err)
    try:
        loaded = load_scenario(scenario, set_)
        with waits(LOADING):
            from simulations.runner import SimulationError
            from simulations.years import YEARS_FILE, check_out, check_years_scenario, run_years
        check_years_scenario(loaded, years)
        folder = out or default_run_dir(f"years-{loaded.name}")
        check_out(folder)
    except ConfigError as exc:
        _fail(sentence(exc), ConfigError.exit_code)
        return
    _say(N_("Persévérance scenario %(name)s: %(years)s school years, one federation of "
            "%(rounds)s rounds a year; the centres keep their ledgers.", name=loaded.name,
            years=years, rounds=loaded.run.rounds))

    def show(row: dict[str, object]) -> None:
        _say(f"  {shown(year_line(row))}")

    try:
        run_years(loaded, years, folder, quiet_flower=not verbose, progress=show,
                  waits=waits)
    except (SimulationError, ConfigError) as exc:
        _fail(sentence(exc), getattr(exc, "exit_code", 3))
        return
    except KeyboardInterrupt:
        _fail(N_("interrupted; the years done so far are in years.json."), 130)
        return
    _say(N_("Done in %(seconds)s s.", seconds=Number(command_seconds(), 0)))
    _say(N_("Results: %(path)s", path=folder / YEARS_FILE))


def year_line(row: dict[str, object]) -> str:
    """One year of ``years.json`` as a line of the command's output (a catalogue
    sentence)."""
    def figure(key: str, digits: int = 3) -> object:
        value = row.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return Number(value, 0)
        return Number(value, digits) if isinstance(value, float) else "-"

    return N_("year %(year)s (%(school_year)s) | labelled %(labelled)s | trained %(trained)s, "
              "retired %(retired)s | student epsilon max %(max)s, median %(median)s | pooled "
              "AUC %(auc)s, last year's model %(previous)s", year=row["year"],
              school_year=row["school_year"], labelled=figure("labelled"),
              trained=figure("students_trained"), retired=figure("retired"),
              max=figure("epsilon_student_max", 2), median=figure("epsilon_student_median", 2),
              auc=figure("auc_pooled"), previous=figure("auc_previous_model"))


@app.command("dev-federation")
def dev_federation(
    centres: Annotated[int | None, typer.Option(
        "--centres", help="Number of centres (default 3; with --data, the files).")] = None,
    rounds: Annotated[int, typer.Option("--rounds", help="Federated rounds.")] = 2,
    data: Annotated[Path | None, typer.Option(
        "--data", help="Folder with one *.parquet or *.csv file per centre.")] = None,
    out: Annotated[Path | None, typer.Option(
        "--out", help="Run folder (default: runs/loopback-<time>).")] = None,
    students: Annotated[int | None, typer.Option(
        "--students", help="Synthetic students over all centres (default 2000 each).")] = None,
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="Run-config override KEY=VALUE (repeatable).")] = None,
    timeout: Annotated[float, typer.Option(
        "--timeout", help="Longest run allowed, in seconds.")] = 1800.0,
    work: Annotated[Path | None, typer.Option(
        "--work", help="Folder for the launcher's keys, state and proxy files "
        "(default: .work/devfed/<run folder name>).")] = None,
    verbose: Annotated[bool, typer.Option(
        help="Also show Flower's own log lines of the run; logs/run.log in the run folder "
        "keeps them in any case.")] = False,
) -> None:
    """Run the real deployment on 127.0.0.1 (TLS, SuperNode authentication, reverse
    proxy, the centres' own ClientApp runtimes) and one federated training; stop every
    process afterwards. Exit codes: 3 PKI, 4 enrolment, 5 unusable input, 6 a server did
    not start or died, 7 the run failed, 130 interrupted."""
    waits = TerminalWaits(err)
    with waits(LOADING):  # the launcher's imports (torch for the reference): seconds
        from server.deployment import pki as pki_lib
        from server.deployment.enrolment import EnrolmentError
        from server.deployment.processes import ProcessError
        from server.deployment.proxy import ProxyError
        from simulations.loopback.launcher import (
            DevFederationOptions,
            LauncherInputError,
            RunFailedError,
            run_dev_federation,
        )

    options = DevFederationOptions(
        centres=centres, rounds=rounds, data=data, out=out, students=students,
        overrides=set_ or [], timeout=timeout, work=work, verbose=verbose,
    )
    codes: list[tuple[type[Exception], int]] = [
        (LauncherInputError, ExitCode.LAUNCHER_INPUT), (pki_lib.PkiError, ExitCode.PKI),
        (EnrolmentError, ExitCode.ENROLMENT), (ProcessError, ExitCode.DEPLOYMENT),
        (ProxyError, ExitCode.DEPLOYMENT), (RunFailedError, ExitCode.RUN_FAILED),
    ]
    try:
        run_dir = run_dev_federation(
            options, echo=lambda line: console.print(shown(line), markup=False, soft_wrap=True),
            waits=waits,
        )
    except tuple(kind for kind, _ in codes) as exc:
        code = next(c for kind, c in codes if isinstance(exc, kind))
        stopped = code >= ExitCode.DEPLOYMENT
        _fail(N_("%(error)s Every process started has been stopped.", error=sentence(exc))
              if stopped else sentence(exc), code)
        return
    except KeyboardInterrupt:
        _fail(N_("interrupted; every process started has been stopped."), ExitCode.INTERRUPTED)
        return
    from server.run_folder import SUMMARY, read_json

    _say(_done(read_json(run_dir / SUMMARY), command_seconds()))
    _say(N_("Results: %(path)s", path=run_dir))


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        err.print(error_line(N_("interrupted.")), soft_wrap=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
