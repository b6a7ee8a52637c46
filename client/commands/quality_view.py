"""Printing a data-quality report and an unusable-input error with rich, in one language.

Console markup is off: file names and cell values are printed as they are. Every word
comes from the project's catalogue (``common.i18n.catalogue``); the error's sentence and details,
made where the language was not known, are translated here (``i18n.translate``).
"""

from __future__ import annotations

from collections.abc import Callable

from rich import box
from rich.console import Console
from rich.table import Table

from client.commands.left_out import counted, print_problems, print_wrapped
from client.ingest.centre_data import DataError
from client.ingest.report import QualityReport
from common.i18n import catalogue as i18n
from common.i18n.catalogue import N_
from common.i18n.cli import error_line

# How the report names a delimiter and an exclusion reason (the data keeps the English).
DELIMITERS = {",": N_("comma delimiter"), ";": N_("semicolon delimiter"),
              "\t": N_("tab delimiter"), "|": N_("pipe delimiter")}
EXCLUSIONS = {"invalid values": N_("invalid values"), "no consent": N_("no consent"),
              "missing label": N_("missing label")}
COLUMN_STATUS = {"present": N_("present"), "absent": N_("absent"),
                 "refused by policy": N_("refused by policy"),
                 "audit use not allowed": N_("audit use not allowed")}
COLUMN_ROLES = {"predictor": N_("predictor"), "label": N_("label"),
                "identifier": N_("identifier"), "audit": N_("audit"),
                "governance": N_("governance")}


def render_error(console: Console, error: DataError, max_problems: int,
                 lang: str = i18n.DEFAULT) -> None:
    """The one sentence first, then the details and the report when there is one."""
    console.print(error_line(_sentence(error), lang), soft_wrap=True)
    details = tuple(getattr(error, "details", ()))
    if len(details) == 1 and details[0] in str(error):
        details = ()  # the one problem is already the sentence: say it once
    for detail in details:
        console.print(f"  - {i18n.translate(detail, lang)}", soft_wrap=True)
    report = getattr(error, "report", None)
    if report is not None:
        console.print()
        render_report(console, report, max_problems, verdict=False, lang=lang)


def _sentence(error: DataError) -> str:
    """The error's sentence as it was made (a ``Sentence`` keeps its parameters)."""
    sentence = getattr(error, "sentence", None)
    if isinstance(sentence, str):
        return sentence
    return error.args[0] if error.args and isinstance(error.args[0], str) else str(error)


def render_report(
    console: Console, report: QualityReport, max_problems: int, *, verdict: bool = True,
    lang: str = i18n.DEFAULT,
) -> None:
    """The data-quality report: source, row counts, centres, columns, invalid rows, notes."""
    _ = i18n.gettext(lang)
    console.print(_("Data-quality report"), style="bold")
    read_as = [report.file_format, report.encoding or ""]
    if report.delimiter:
        read_as.append(_(DELIMITERS[report.delimiter]) if report.delimiter in DELIMITERS
                       else _("%(delimiter)s delimiter") % {"delimiter": repr(report.delimiter)})
    console.print(_("  file     %(source)s (%(read_as)s)") % {
        "source": report.source, "read_as": ", ".join(x for x in read_as if x)}, soft_wrap=True)
    console.print(_("  mapping  %(mapping)s") % {
        "mapping": report.mapping or _("none (harmonised columns)")}, soft_wrap=True)
    policy = report.policy
    console.print(_("  policy   min_records %(min)s, max_invalid_fraction %(max)s, refused "
                    "predictors: %(refused)s") % {
        "min": policy.min_records, "max": _percent(policy.max_invalid_fraction, lang),
        "refused": ", ".join(sorted(policy.refused_predictors)) or _("none")}, soft_wrap=True)
    console.print(_rows_table(report, lang))
    if report.centres:
        console.print(_centres_table(report, lang))
    console.print(_columns_table(report, lang))
    if report.problems:
        _print_problems(console, report, max_problems, lang)
    for note in _notes(report, lang):
        print_wrapped(console, f"- {note}")
    if verdict:
        console.print(
            _("Usable: %(valid)s valid rows, %(usable)s for training and federated "
              "evaluation (exit 0).") % {"valid": report.rows_valid,
                                          "usable": report.rows_usable},
            style="bold green",
        )


def _percent(fraction: float, lang: str) -> str:
    """A share (0-1) as a percentage with one decimal (French: ``2,5 %``)."""
    text = i18n.number(100 * fraction, 1, lang)
    return f"{text}\u00a0%" if lang == "fr" else f"{text}%"


def _table(lang: str, title: str, *columns: str) -> Table:
    _ = i18n.gettext(lang)
    return Table(*(_(c) for c in columns), title=_(title), box=box.SIMPLE,
                 title_justify="left")


def _rows_table(report: QualityReport, lang: str) -> Table:
    _ = i18n.gettext(lang)
    table = _table(lang, N_("Rows"), N_("rows"), N_("count"))
    table.add_row(_("read"), str(report.rows_read))
    for reason, count in report.excluded.items():
        table.add_row(_("excluded: %(reason)s") % {"reason": _(EXCLUSIONS.get(reason, reason))},
                      str(count))
    table.add_row(_("usable (valid, consent, label)"), str(report.rows_usable))
    rate = report.label_rate
    table.add_row(_("label rate (left without diploma)"),
                  _("n/a") if rate is None else _percent(rate, lang))
    return table


def _centres_table(report: QualityReport, lang: str) -> Table:
    _ = i18n.gettext(lang)
    table = _table(lang, N_("Centres"), N_("centre"), N_("rows read"), N_("usable"),
                   N_("label rate"), N_("takes part in training"))
    for centre in report.centres:
        rate = (_percent(centre.positives / centre.rows_usable, lang) if centre.rows_usable
                else _("n/a"))
        trains = (_("yes") if centre.rows_usable >= report.policy.min_records
                  else _("no: scores only"))
        table.add_row(centre.centre, str(centre.rows_read), str(centre.rows_usable), rate, trains)
    return table


def _columns_table(report: QualityReport, lang: str) -> Table:
    _ = i18n.gettext(lang)
    table = _table(lang, N_("Columns"), N_("column"), N_("role"), N_("status"), N_("missing"))
    word: Callable[[dict[str, str], str], str] = lambda words, key: _(words.get(key, key))  # noqa: E731
    for column in report.columns:
        missing = (_percent(column.missing_fraction, lang) if column.status == "present"
                   else "-")
        status = (_("absent: encoded as missing") if column.status == "absent"
                  else word(COLUMN_STATUS, column.status))
        if column.role != "predictor" and column.status == "absent":
            status = _("absent")
        table.add_row(column.name, word(COLUMN_ROLES, column.role), status, missing)
    return table


def _print_problems(console: Console, report: QualityReport, max_problems: int,
                    lang: str) -> None:
    """The invalid cells as the file holds them, one line each, then (if cut) how many
    rows each source column and reason excluded."""
    _ = i18n.gettext(lang)
    where = (_("lines numbered as in the file, the header being line 1")
             if report.file_format == "csv" else _("records numbered from 1"))
    print_wrapped(console, counted(lang, report.rows_invalid,
                          N_("Invalid values: %(count)s of %(read)s rows excluded "
                             "(%(where)s)"),
                          N_("Invalid values: %(count)s row of %(read)s excluded "
                             "(%(where)s)"),
                          read=report.rows_read, where=where), indent="")
    print_problems(console, report, max_problems, lang)
    if len(report.problems) > max_problems:
        console.print(_("By column and reason:"), soft_wrap=True)
        for column, reason, count in report.problem_summary():
            print_wrapped(console, _("%(column)s: %(reason)s, %(rows)s") % {
                "column": column, "reason": i18n.translate(reason, lang),
                "rows": counted(lang, count, N_("%(count)s rows"), N_("%(count)s row"))})


def _notes(report: QualityReport, lang: str) -> list[str]:
    _ = i18n.gettext(lang)
    notes = []
    absent = report.absent_predictors
    if absent:
        notes.append(_("%(count)s predictors are absent and encoded as missing: "
                       "%(names)s.") % {"count": len(absent), "names": ", ".join(absent)})
    if report.forbidden_dropped:
        notes.append(_("Teacher and class columns dropped unread (refused whatever the "
                       "policy says): %(names)s.") % {
            "names": ", ".join(report.forbidden_dropped)})
    if report.ignored_columns:
        notes.append(_("%(count)s source columns not used: %(names)s.") % {
            "count": len(report.ignored_columns), "names": ", ".join(report.ignored_columns)})
    if report.takes_part_in_training:
        notes.append(_("Takes part in training: %(usable)s usable rows, at least the "
                       "%(required)s the site policy requires.") % {
            "usable": report.rows_usable, "required": report.policy.min_records})
    else:
        notes.append(_("Below the site policy's min_records (%(usable)s usable rows, "
                       "%(required)s required): this centre receives the model and scores "
                       "locally, but does not train.") % {
            "usable": report.rows_usable, "required": report.policy.min_records})
    return notes
