"""Printing a data-quality report and an unusable-input error with rich.

Console markup is off: file names and cell values are printed as they are.
"""

from __future__ import annotations

from rich import box
from rich.console import Console
from rich.table import Table

from client.data import DataError
from client.ingest.reading import DELIMITER_NAMES
from client.ingest.report import QualityReport


def render_error(console: Console, error: DataError, max_problems: int) -> None:
    """The one sentence first, then the details and the report when there is one."""
    console.print(str(error), style="bold red", soft_wrap=True)
    details = tuple(getattr(error, "details", ()))
    if len(details) == 1 and details[0] in str(error):
        details = ()  # the one problem is already the sentence: say it once
    for detail in details:
        console.print(f"  - {detail}", soft_wrap=True)
    report = getattr(error, "report", None)
    if report is not None:
        console.print()
        render_report(console, report, max_problems, verdict=False)


def render_report(
    console: Console, report: QualityReport, max_problems: int, *, verdict: bool = True
) -> None:
    """The data-quality report: source, row counts, centres, columns, invalid rows, notes."""
    console.print("Data-quality report", style="bold")
    read_as = [report.file_format, report.encoding or ""]
    if report.delimiter:
        read_as.append(f"{DELIMITER_NAMES.get(report.delimiter, report.delimiter)} delimiter")
    console.print(f"  file     {report.source} ({', '.join(x for x in read_as if x)})")
    console.print(f"  mapping  {report.mapping or 'none (harmonised columns)'}")
    policy = report.policy
    console.print(
        f"  policy   min_records {policy.min_records}, max_invalid_fraction "
        f"{policy.max_invalid_fraction:.1%}, refused predictors: "
        f"{', '.join(sorted(policy.refused_predictors)) or 'none'}"
    )
    console.print(_rows_table(report))
    if report.centres:
        console.print(_centres_table(report))
    console.print(_columns_table(report))
    if report.problems:
        console.print(_problems_table(report, max_problems))
    for note in _notes(report):
        console.print(f"  - {note}", soft_wrap=True)
    if verdict:
        console.print(
            f"Usable: {report.rows_valid} valid rows, {report.rows_usable} for training and "
            "federated evaluation (exit 0).",
            style="bold green",
        )


def _rows_table(report: QualityReport) -> Table:
    table = Table("rows", "count", title="Rows", box=box.SIMPLE, title_justify="left")
    table.add_row("read", str(report.rows_read))
    for reason, count in report.excluded.items():
        table.add_row(f"excluded: {reason}", str(count))
    table.add_row("usable (valid, consent, label)", str(report.rows_usable))
    rate = report.label_rate
    table.add_row("label rate (left without diploma)", "n/a" if rate is None else f"{rate:.1%}")
    return table


def _centres_table(report: QualityReport) -> Table:
    table = Table(
        "centre",
        "rows read",
        "usable",
        "label rate",
        "takes part in training",
        title="Centres",
        box=box.SIMPLE,
        title_justify="left",
    )
    for centre in report.centres:
        rate = f"{centre.positives / centre.rows_usable:.1%}" if centre.rows_usable else "n/a"
        trains = "yes" if centre.rows_usable >= report.policy.min_records else "no: scores only"
        table.add_row(centre.centre, str(centre.rows_read), str(centre.rows_usable), rate, trains)
    return table


def _columns_table(report: QualityReport) -> Table:
    table = Table(
        "column",
        "role",
        "status",
        "missing",
        title="Columns",
        box=box.SIMPLE,
        title_justify="left",
    )
    for column in report.columns:
        missing = f"{column.missing_fraction:.1%}" if column.status == "present" else "-"
        status = "absent: encoded as missing" if column.status == "absent" else column.status
        if column.role != "predictor" and column.status == "absent":
            status = "absent"
        table.add_row(column.name, column.role, status, missing)
    return table


def _problems_table(report: QualityReport, max_problems: int) -> Table:
    shown = report.problems[:max_problems]
    title = f"Invalid values ({report.rows_invalid} rows excluded"
    title += (
        f"; first {len(shown)} of {len(report.problems)} listed)"
        if len(shown) < len(report.problems)
        else ")"
    )
    table = Table(
        "row", "column", "value", "reason", title=title, box=box.SIMPLE, title_justify="left"
    )
    for problem in shown:
        value = problem.value if len(problem.value) <= 30 else problem.value[:29] + "…"
        table.add_row(str(problem.row), problem.column, value, problem.reason)
    if len(shown) < len(report.problems):
        for column, reason, count in report.problem_summary():
            table.add_row("all", column, f"{count} rows", reason)
    return table


def _notes(report: QualityReport) -> list[str]:
    notes = []
    absent = report.absent_predictors
    if absent:
        notes.append(
            f"{len(absent)} predictors are absent and encoded as missing: {', '.join(absent)}."
        )
    if report.forbidden_dropped:
        notes.append(
            "Teacher and class columns dropped unread (refused whatever the policy says): "
            f"{', '.join(report.forbidden_dropped)}."
        )
    if report.ignored_columns:
        notes.append(
            f"{len(report.ignored_columns)} source columns not used: "
            f"{', '.join(report.ignored_columns)}."
        )
    if report.takes_part_in_training:
        notes.append(
            f"Takes part in training: {report.rows_usable} usable rows, at least the "
            f"{report.policy.min_records} the site policy requires."
        )
    else:
        notes.append(
            f"Below the site policy's min_records ({report.rows_usable} usable rows, "
            f"{report.policy.min_records} required): this centre receives the model and "
            "scores locally, but does not train."
        )
    return notes
