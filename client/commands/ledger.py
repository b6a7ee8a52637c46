"""``perseverance-client ledger``: what the centre has released, and what is left."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from client.ledger import LedgerError, PrivacyLedger
from common.errors import ExitCode
from common.records import LEDGER_FILE

HELP = (
    "Show the centre's privacy ledger: every release booked (training rounds, "
    "evaluations), the lifetime epsilon spent at the given delta, and what is left under "
    "the cap of the site policy. Reads only; never changes the ledger.\n\n"
    "Exit codes: 0 shown; 2 no ledger in that folder, or it cannot be read."
)


def ledger(
    state: Annotated[Path, typer.Option("--state", "-s", help="The centre's state folder "
                                        "(the SuperNode's state-dir).", show_default=False)],
    policy: Annotated[Path | None, typer.Option("--policy", "-p", help="Site policy TOML "
                                                "(for the cap); default policy without.")] = None,
    delta: Annotated[float, typer.Option(help="Delta of the epsilon shown.")] = 1e-6,
) -> None:
    console, err = Console(highlight=False), Console(stderr=True, highlight=False)
    if not (state / LEDGER_FILE).is_file():
        err.print(f"error: there is no privacy ledger in {state}; give the centre's state-dir.")
        raise typer.Exit(ExitCode.UNUSABLE)
    try:
        from client.data import DataError, SitePolicy
        from client.ingest import load_policy

        cap = (load_policy(policy) if policy else SitePolicy()).epsilon_cap
        book = PrivacyLedger(state)
        releases = book.releases()
        spent = book.epsilon_spent(delta)
    except (LedgerError, DataError) as exc:
        err.print(f"error: {exc}")
        raise typer.Exit(ExitCode.UNUSABLE) from None
    table = Table(title=f"Privacy ledger {state / LEDGER_FILE}")
    for column in ("booked at", "run", "round", "kind", "noise mult.", "sample rate", "steps",
                   "lifetime epsilon after"):
        table.add_column(column)
    for r in releases:
        table.add_row(r.booked_at, r.run_id[:12], str(r.server_round), r.kind,
                      f"{r.noise_multiplier:.3f}", f"{r.sample_rate:.4f}", str(r.steps),
                      f"{r.epsilon_after:.3f}")
    console.print(table)
    console.print(
        f"{len(releases)} mechanisms booked. Lifetime epsilon spent: {spent:.3f} at delta "
        f"{delta:g} (per student, all releases composed). Cap: {cap:g}. Left: "
        f"{max(cap - spent, 0.0):.3f}."
    )


def register(app: typer.Typer) -> None:
    app.command("ledger", help=HELP)(ledger)
