"""``perseverance-client ledger``: what the centre has released, over whom, and what is
left of each student's lifetime budget."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from client.commands.language import LangOption, chosen
from common.errors import ExitCode
from common.i18n import catalogue as i18n
from common.records.chain import LEDGER_FILE

if TYPE_CHECKING:
    from client.privacy.ledger import PrivacyLedger
    from client.privacy.student_budget import BudgetSpread

HELP = (
    "Show the centre's privacy ledger: every release booked (training rounds, "
    "evaluations), how each student's lifetime epsilon is spread at the given delta "
    "(how many spent how much, how many are retired for budget, how many runs like the "
    "last one each can still take), and each run's records used and retired. Reads "
    "only; never changes the ledger.\n\n"
    "Exit codes: 0 shown; 2 no ledger in that folder, or it cannot be read."
)
#: Runs ahead the "runs left" count looks at.
RUNS_AHEAD = 5


def ledger(
    state: Annotated[Path, typer.Option("--state", "-s", help="The centre's state folder "
                                        "(the SuperNode's state-dir).", show_default=False)],
    policy: Annotated[Path | None, typer.Option("--policy", "-p", help="Site policy TOML "
                                                "(for the cap); default policy without.")] = None,
    delta: Annotated[float, typer.Option(help="Delta of the epsilon shown.")] = 1e-6,
    lang: LangOption = None,
    details: Annotated[bool, typer.Option(
        "--details", help="Also show each release's mechanism (noise multiplier, sample "
        "rate, steps): a wider table.")] = False,
) -> None:
    # Here, not at the top: --help must not wait for numpy and opacus (issue 28).
    from client.privacy.ledger import LedgerError, PrivacyLedger
    from client.privacy.student_budget import budget_spread

    language = chosen(lang)
    _ = i18n.gettext(language)
    console, err = Console(highlight=False), Console(stderr=True, highlight=False)
    if not (state / LEDGER_FILE).is_file():
        err.print(_("error: there is no privacy ledger in {state}; give the centre's "
                    "state-dir.").format(state=state))
        raise typer.Exit(ExitCode.UNUSABLE)
    try:
        from client.ingest import load_policy
        from client.ingest.centre_data import DataError, SitePolicy

        cap = (load_policy(policy) if policy else SitePolicy()).epsilon_cap
        book = PrivacyLedger(state)
        releases = book.releases()
        cohorts = book.cohorts()
        spread = budget_spread(state, delta)
        ahead = _runs_left(book, spread, cap)
        largest = book.epsilon_spent(delta)
    except (LedgerError, DataError) as exc:
        problem = exc.args[0] if exc.args else str(exc)
        err.print(_("error: {problem}").format(problem=i18n.translate(problem, language)))
        raise typer.Exit(ExitCode.UNUSABLE) from None

    def num(value: float) -> str:
        return i18n.number(value, 3, language)

    # Readable at 80 columns: the date to the minute, whole run names (folded, never
    # cut), the mechanism's three columns only with --details.
    table = Table(title=_("Privacy ledger {path}").format(path=state / LEDGER_FILE))
    table.add_column(_("booked at"), no_wrap=True)
    table.add_column(_("run"), overflow="fold", ratio=1)
    for column in (_("round"), _("kind")):
        table.add_column(column, no_wrap=True)
    if details:
        for column in (_("noise mult."), _("sample rate"), _("steps")):
            table.add_column(column, justify="right")
    table.add_column(_("largest student epsilon after"), justify="right")
    for r in releases:
        mechanism = [num(r.noise_multiplier), i18n.number(r.sample_rate, 4, language),
                     str(r.steps)] if details else []
        table.add_row(_minute(r.booked_at), r.run_id, str(r.server_round), _(r.kind),
                      *mechanism, num(r.epsilon_after))
    console.print(table)
    runs = Table(title=_("Records each run used, and retired for budget"))
    runs.add_column(_("run"), overflow="fold", ratio=1)
    for column in (_("cohort"), _("from round"), _("records used"), _("records retired")):
        runs.add_column(column)
    for c in cohorts:
        runs.add_row(c.run_id, _(c.label), str(c.first_round), str(c.records),
                     str(c.retired))
    console.print(runs)
    edges = [0.0, 0.3 * cap, 0.6 * cap, cap]
    spent = Table(title=_("Students by lifetime epsilon spent (delta {delta})").format(
        delta=f"{delta:g}"))
    spent.add_column(_("epsilon spent"))
    spent.add_column(_("students"))
    counts = spread.counts(edges)
    for low, high, count in zip(edges, edges[1:], counts, strict=False):
        spent.add_row(f"{num(low)} - {num(high)}", str(count))
    over = int((spread.shown() > cap).sum())
    if over:
        spent.add_row(_("above the cap (charged before per-student accounting)"), str(over))
    console.print(spent)
    console.print(_(
        "{rows} mechanisms booked over {students} students. Largest lifetime epsilon of a "
        "student: {largest} at delta {delta}; cap: {cap} per student.").format(
            rows=len(releases), students=spread.students, largest=num(largest),
            delta=f"{delta:g}", cap=num(cap)))
    if ahead:
        console.print(_("Runs like the last one each student can still take: {counts}. A "
                        "student with none left is retired from training and federated "
                        "evaluation for good (still scored locally); capacity returns as "
                        "new students enter, each at 0.").format(counts=", ".join(
                            f"{k}{'+' if k == RUNS_AHEAD else ''}: {n}"
                            for k, n in enumerate(ahead))))


def _runs_left(book: PrivacyLedger, spread: BudgetSpread, cap: float) -> list[int]:
    """How many known students can take 0, 1, ..., ``RUNS_AHEAD`` (or more) further runs
    with the last run's training releases, at ``spread.delta``; empty if none."""
    import numpy as np

    from client.privacy.cohorts import known_students, student_epsilons

    booked = book.booked()
    last = next((b[0] for b in reversed(booked) if b[1] == "train"), None)
    if last is None or not spread.students:
        return []
    per_run = [b[3] for b in booked if b[0] == last and b[1] == "train"]
    cohorts = book.cohorts()
    students = known_students(cohorts)
    left = np.zeros(len(students), dtype=int)
    for k in range(1, RUNS_AHEAD + 1):
        after = student_epsilons(students, cohorts, booked, spread.delta, extra=per_run * k)
        left += after <= cap
    return [int((left == k).sum()) for k in range(RUNS_AHEAD + 1)]


def register(app: typer.Typer) -> None:
    app.command("ledger", help=HELP)(ledger)


def _minute(stamp: str) -> str:
    """``2026-12-07T17:22:30+00:00`` as ``2026-12-07 17:22`` (the ledger's times are UTC)."""
    return stamp[:16].replace("T", " ")
