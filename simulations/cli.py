"""``perseverance-sim``: run, generate and compare simulated federations.

Exit codes: 0 success; 2 bad input (scenario, key, value, file); 3 the simulation
failed while running; 130 interrupted. ``dev-federation`` (the real deployment on
loopback) has the deployment's codes: 3 PKI, 4 enrolment, 5 unusable input, 6 a server
did not start or died, 7 the run failed.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from common.config import ConfigError
from common.errors import ExitCode
from simulations.scenario import available_scenarios, load_scenario

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Simulated federations of Québec school service centres.")
console = Console(highlight=False)
err = Console(stderr=True, highlight=False)

ScenarioOption = Annotated[str, typer.Option("--scenario", "-s",
                           help="Scenario name (see `list`) or path to a TOML file.")]
SetOption = Annotated[list[str] | None, typer.Option("--set", help="Override: KEY=VALUE.")]


def _fail(message: str, code: int) -> None:
    err.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
    raise typer.Exit(code)


@app.command("list")
def list_scenarios() -> None:
    """List the shipped scenarios."""
    for name in available_scenarios():
        scenario = load_scenario(name)
        console.print(f"{name:<14} {scenario.description}")


@app.command()
def run(
    scenario: ScenarioOption = "demo",
    set_: SetOption = None,
    out: Annotated[Path | None, typer.Option("--out", help="Run folder to write.")] = None,
    verbose: Annotated[bool, typer.Option(help="Show Flower's own logs.")] = False,
) -> None:
    """Run a scenario end to end and write its run folder (summary.json, model, ...)."""
    from simulations.runner import SimulationError, run_scenario

    try:
        loaded = load_scenario(scenario, set_)
    except ConfigError as exc:
        _fail(str(exc), ConfigError.exit_code)
        return
    n = loaded.network
    where = loaded.data.source or f"{n.centres} synthetic centres, about {n.students:,} students"
    dp = (f"DP-SGD epsilon {loaded.run.privacy.epsilon:g} at delta {loaded.run.privacy.delta:g} "
          "per centre" if loaded.run.privacy.dp else "no DP")
    console.print(f"[bold]Persévérance[/] scenario [bold]{loaded.name}[/]: {where}; "
                  f"{loaded.run.rounds} rounds; {dp}.")
    try:
        run_dir = run_scenario(loaded, out, quiet_flower=not verbose)
    except (SimulationError, ConfigError) as exc:
        _fail(str(exc), getattr(exc, "exit_code", 3))
        return
    except KeyboardInterrupt:
        _fail("interrupted; the run folder may be incomplete.", 130)
        return
    from server.run_folder import SUMMARY, read_json

    summary = read_json(run_dir / SUMMARY)
    eps = summary.get("epsilon_max")
    released = summary.get("auc_pooled")
    console.print(
        f"Done in {summary['wall_seconds']:.0f} s: pooled AUC "
        + (f"{released:.3f}" if released is not None else "not measurable (too few students "
           "for the noise)")
        + f" (centralised without DP {summary['auc_centralized']:.3f})"
        + (f", epsilon spent at most {eps:.2f} at delta {summary['delta']:g}" if eps else "")
        + "."
    )
    from simulations.runner import wall_time_line

    console.print(wall_time_line(summary))
    console.print(f"Results: {run_dir}")


@app.command()
def generate(
    scenario: ScenarioOption = "demo",
    out: Annotated[Path, typer.Option("--out", help="Folder for one file per centre.")] = Path(
        "runs/generated"),
    set_: SetOption = None,
    fmt: Annotated[str, typer.Option("--format", help="parquet or csv")] = "parquet",
) -> None:
    """Write the scenario's synthetic centres, one file per centre, harmonised schema."""
    from simulations.network import generate_network, write_network

    try:
        loaded = load_scenario(scenario, set_)
        if fmt not in ("parquet", "csv"):
            raise ConfigError(f"--format must be parquet or csv, not {fmt!r}.")
    except ConfigError as exc:
        _fail(str(exc), ConfigError.exit_code)
        return
    spec = loaded.network
    network = generate_network(
        centres=spec.centres, students=spec.students, seed=spec.seed,
        include_indigenous_boards=spec.include_indigenous_boards,
        consent_refusal_rate=spec.consent_refusal_rate, unlabelled_rate=spec.unlabelled_rate,
    )
    files = write_network(network, out, fmt=fmt)
    total = sum(len(f) for f in network.frames.values())
    console.print(f"Wrote {len(files)} centres ({total:,} students) to {out}.")


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

    from server.run_folder import default_run_dir, write_json
    from simulations.bench import run_bench
    from simulations.bench_report import table_rows
    from simulations.runner import SimulationError

    try:
        loaded = load_scenario(scenario, set_)
    except ConfigError as exc:
        _fail(str(exc), ConfigError.exit_code)
        return
    folder = out or default_run_dir(f"bench-{loaded.name}")
    console.print(f"[bold]Persévérance[/] benchmark of scenario [bold]{loaded.name}[/]: "
                  "plain loop and simulation engine, with and without DP.")
    try:
        report = run_bench(loaded, folder, progress=lambda line: console.print(f"  {line}"))
    except (SimulationError, ConfigError) as exc:
        _fail(str(exc), getattr(exc, "exit_code", 3))
        return
    except KeyboardInterrupt:
        _fail("interrupted; no figures written.", 130)
        return
    target = json_file or folder / "bench.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    write_json(target, json.loads(json.dumps(report, default=float)))
    table = Table(title=f"Benchmark {loaded.name}", show_header=True)
    table.add_column("figure")
    table.add_column("value", justify="right")
    for name, value in table_rows(report):
        table.add_row(name, value)
    console.print(table)
    met = ", ".join(f"{k} {'yes' if ok else 'NO'}" for k, ok in report["targets"].items())
    console.print(f"Targets (set for quebec-72): {met}.")
    console.print(f"Figures: {target}")


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
    from simulations.runner import SimulationError
    from simulations.sweep import parse_epsilons, run_sweep, table

    try:
        values = parse_epsilons(epsilons)
        load_scenario(scenario, set_)  # refuse bad input before the first run
        points = run_sweep(scenario, values, list(set_ or []), out)
    except (ConfigError, SimulationError) as exc:
        _fail(str(exc), getattr(exc, "exit_code", 3))
        return
    console.print(table(points))
    console.print(f"Figure and table: {out}")


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
) -> None:
    """Run the real deployment on 127.0.0.1 (TLS, SuperNode authentication, reverse
    proxy, the centres' own ClientApp runtimes) and one federated training; stop every
    process afterwards. Exit codes: 3 PKI, 4 enrolment, 5 unusable input, 6 a server did
    not start or died, 7 the run failed, 130 interrupted."""
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
        overrides=set_ or [], timeout=timeout, work=work,
    )
    codes: list[tuple[type[Exception], int]] = [
        (LauncherInputError, ExitCode.LAUNCHER_INPUT), (pki_lib.PkiError, ExitCode.PKI),
        (EnrolmentError, ExitCode.ENROLMENT), (ProcessError, ExitCode.DEPLOYMENT),
        (ProxyError, ExitCode.DEPLOYMENT), (RunFailedError, ExitCode.RUN_FAILED),
    ]
    try:
        run_dir = run_dev_federation(
            options, echo=lambda line: console.print(line, markup=False, soft_wrap=True)
        )
    except tuple(kind for kind, _ in codes) as exc:
        code = next(c for kind, c in codes if isinstance(exc, kind))
        stopped = " Every process started has been stopped." if code >= ExitCode.DEPLOYMENT else ""
        _fail(f"{exc}{stopped}", code)
        return
    except KeyboardInterrupt:
        _fail("interrupted; every process started has been stopped.", ExitCode.INTERRUPTED)
        return
    from server.run_folder import SUMMARY, read_json

    summary = read_json(run_dir / SUMMARY)
    console.print(
        f"Done in {summary['wall_seconds']:.0f} s: pooled AUC {summary['auc_pooled']:.3f} "
        f"(centralised without DP {summary['auc_centralized']:.3f}). Results: {run_dir}",
        soft_wrap=True,
    )


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        err.print("interrupted.")
        sys.exit(130)


if __name__ == "__main__":
    main()
