"""The local support report: a CSV for the centre's systems, a spreadsheet and a
standalone HTML page for the school team, in French by default (English with
``lang="en"``).

Both stay at the centre: they hold the students' local pseudonyms and are written with
owner-only permissions into the folder the centre gives. The page is the template
``common/templates/support_report.html``: the project's one stylesheet inline, nothing
loaded from anywhere. It lists students one by one (no per-class, per-staff or
per-school aggregates: principle 6), sorted from the highest priority down.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from client.scoring.scores import LEVELS, ScoredStudents
from client.scoring.spreadsheet import XLSX_NAME, write_support_xlsx
from client.scoring.support_wording import TEXT, describe_factor
from common import pages
from common.csv_output import CsvStyle, csv_style, write_csv
from common.files import atomic_write_bytes
from common.schema import PREDICTORS

CSV_NAME = "support-priorities.csv"
HTML_NAME = "support-report.html"
LOW_LISTED_MAX = 2_000  # beyond it, low-priority students are in the CSV only
FILE_MODE = 0o600  # student pseudonyms: readable by the centre's operator only


@dataclass(frozen=True)
class LeftOut:
    """Rows of the extract that got no priority (an invalid value), for the page to say
    so: how many of how many, and the file that lists them for the centre's IT."""

    count: int
    rows_read: int
    file_name: str


@dataclass(frozen=True)
class Explanations:
    """Per student, the predictors that raise the priority and the protective ones."""

    raising: list[list[str]]
    protective: list[list[str]]


def support_table(
    scored: ScoredStudents,
    frame: pd.DataFrame,
    explanations: Explanations | None,
    lang: str = "fr",
) -> pd.DataFrame:
    """One row per student, highest probability first: identifiers, level (code and
    words), probability (0-1, 4 decimals), and factors in words and as predictor names."""
    words = TEXT[lang]
    table = scored.identifiers.copy()
    table["support_priority"] = scored.priority
    table["support_priority_label"] = [words[level] for level in scored.priority]
    table["probability"] = np.round(scored.probability, 4)
    if explanations is not None:
        # Plain lists: one cell lookup per factor shown, not a pandas indexing call.
        values = {p: frame[p].tolist() for p in PREDICTORS if p in frame.columns}

        def words_of(lists: list[list[str]]) -> list[str]:
            return [
                " | ".join(describe_factor(p, values[p][i] if p in values else None, lang)
                           for p in predictors)
                for i, predictors in enumerate(lists)
            ]

        table["factors"] = words_of(explanations.raising)
        table["protective_factors"] = words_of(explanations.protective)
        table["factor_predictors"] = [";".join(p) for p in explanations.raising]
        table["protective_predictors"] = [";".join(p) for p in explanations.protective]
    order = np.argsort(-scored.probability, kind="stable")
    return table.iloc[order].reset_index(drop=True)


def write_support_report(
    out_dir: Path,
    table: pd.DataFrame,
    scored: ScoredStudents,
    lang: str = "fr",
    model_fingerprint: str = "",
    style: CsvStyle | None = None,
    *,
    xlsx: bool = True,
    left_out: LeftOut | None = None,
) -> list[Path]:
    """Write the CSV, the spreadsheet (unless ``xlsx`` is false) and the HTML page into
    ``out_dir``; returns the paths written. The CSV follows the spreadsheets of ``lang``
    (French: ``;``, decimal comma, UTF-8 with a byte-order mark) unless ``style`` says
    otherwise (``common.csv_output.MACHINE``)."""
    out_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    csv_path, html_path = out_dir / CSV_NAME, out_dir / HTML_NAME
    # Formula cells neutralised, atomic.
    write_csv(csv_path, table, mode=FILE_MODE, style=style or csv_style(lang))
    written = [csv_path]
    if xlsx:
        written.append(write_support_xlsx(out_dir / XLSX_NAME, table, lang, FILE_MODE))
    page = render_html(table, scored, lang, model_fingerprint, left_out)
    atomic_write_bytes(html_path, page.encode("utf-8"), FILE_MODE)
    return [*written, html_path]


@dataclass(frozen=True)
class Section:
    """The students of one level, as the page shows them."""

    level: str
    count: int
    rows: list[dict[str, object]]
    folded: bool = False  # low priority: behind a <details> the team opens
    in_csv_only: bool = False  # too many low-priority students for one page


def render_html(
    table: pd.DataFrame, scored: ScoredStudents, lang: str = "fr", model_fingerprint: str = "",
    left_out: LeftOut | None = None,
) -> str:
    """The standalone page: purpose, levels and thresholds, the students left out (if
    any), how to read the factors, then the students by level (low priority folded)."""
    explained = "factors" in table.columns
    sections = []
    for level in LEVELS:
        rows = table[table["support_priority"] == level]
        if rows.empty:
            continue
        in_csv_only = level == "low" and len(rows) > LOW_LISTED_MAX
        sections.append(Section(
            level, len(rows), [] if in_csv_only else _student_rows(rows, explained),
            folded=level == "low", in_csv_only=in_csv_only))
    return pages.render(
        "support_report.html",
        lang=lang,
        words=TEXT[lang],
        counts=scored.counts(),
        high=_share(scored.thresholds.high, lang),
        moderate=_share(scored.thresholds.moderate, lang),
        explained=explained,
        sections=sections,
        csv_name=CSV_NAME,
        left_out=_left_out_sentence(left_out, lang),
        date=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        model=model_fingerprint,
    )


def _student_rows(rows: pd.DataFrame, explained: bool) -> list[dict[str, object]]:
    """Identifiers, level and (when computed) the factors in words, one dict a student."""
    out: list[dict[str, object]] = []
    for row in rows.itertuples(index=False):
        student: dict[str, object] = {
            "student_id": str(getattr(row, "student_id", "")),
            "school_id": str(getattr(row, "school_id", "")),
            "school_year": str(getattr(row, "school_year", "")),
            "level": str(row.support_priority),
        }
        if explained:
            student["raising"] = _factors(row.factors)
            student["protective"] = _factors(row.protective_factors)
        out.append(student)
    return out


def _left_out_sentence(left_out: LeftOut | None, lang: str) -> str:
    """How many students of the extract have no priority, and where the list is."""
    if left_out is None or left_out.count == 0:
        return ""
    singular = left_out.count in (0, 1) if lang == "fr" else left_out.count == 1
    template = TEXT[lang]["left_out_one" if singular else "left_out_many"]
    return template.format(count=left_out.count, read=left_out.rows_read,
                           csv=left_out.file_name)


def _factors(text: object) -> list[str]:
    """The factors of a cell (`` | ``-separated words); none for an empty cell."""
    return [t for t in text.split(" | ") if t] if isinstance(text, str) else []


def _share(value: float, lang: str) -> str:
    text = f"{value:.0%}" if abs(value * 100 - round(value * 100)) < 1e-9 else f"{value:.1%}"
    return text.replace("%", " %").replace(".", ",") if lang == "fr" else text
