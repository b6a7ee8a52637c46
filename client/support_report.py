"""The local support report: a CSV for the centre's systems and a standalone HTML page
for the school team, in French by default (English with ``lang="en"``).

Both stay at the centre: they hold the students' local pseudonyms and are written with
owner-only permissions into the folder the centre gives. The page has its CSS inline and
loads nothing from anywhere. It lists students one by one (no per-class, per-staff or
per-school aggregates: principle 6), sorted from the highest priority down.
"""

from __future__ import annotations

import html
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from client.scoring import LEVELS, ScoredStudents
from client.support_wording import TEXT, describe_factor
from common.csv_output import write_csv
from common.schema import PREDICTORS

CSV_NAME = "support-priorities.csv"
HTML_NAME = "support-report.html"
LOW_LISTED_MAX = 2_000  # beyond it, low-priority students are in the CSV only
FILE_MODE = 0o600  # student pseudonyms: readable by the centre's operator only


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
) -> tuple[Path, Path]:
    """Write the CSV and the HTML page into ``out_dir``; returns both paths."""
    out_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    csv_path, html_path = out_dir / CSV_NAME, out_dir / HTML_NAME
    write_csv(csv_path, table, mode=FILE_MODE)  # formula cells neutralised, atomic
    _write_private(html_path, render_html(table, scored, lang, model_fingerprint))
    return csv_path, html_path


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
        handle.write(text)
    os.chmod(path, FILE_MODE)  # an existing file keeps its mode through O_CREAT


CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2rem auto;
max-width:72rem;color:#1d2733;line-height:1.45;padding:0 1rem}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{font-size:1.2rem;margin-top:2rem}
.note{background:#eef4fb;border-left:4px solid #3a6ea5;padding:.6rem 1rem;margin:.8rem 0}
.counts{display:flex;gap:1rem;flex-wrap:wrap}
.count{border-radius:.4rem;padding:.6rem 1rem;min-width:12rem}
.count b{display:block;font-size:1.6rem}
.high{background:#fde8d7}.moderate{background:#fff5cc}.low{background:#e6f2e6}
table{border-collapse:collapse;width:100%;font-size:.92rem;margin-top:.6rem}
th,td{border-bottom:1px solid #d8dee6;padding:.35rem .5rem;text-align:left;vertical-align:top}
th{background:#f4f6f8}td ul{margin:0;padding-left:1.1rem}
.badge{border-radius:.3rem;padding:.1rem .4rem;white-space:nowrap}
.muted{color:#5b6775}footer{margin-top:2rem;font-size:.85rem;color:#5b6775}
"""


def render_html(
    table: pd.DataFrame, scored: ScoredStudents, lang: str = "fr", model_fingerprint: str = ""
) -> str:
    """The standalone page: purpose, levels and thresholds, how to read the factors,
    then the students by level (low priority folded)."""
    words = TEXT[lang]
    e = _text
    counts = scored.counts()
    thresholds = scored.thresholds
    explained = "factors" in table.columns
    parts = [
        f'<!DOCTYPE html><html lang="{lang}"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{e(words['title'])}</title><style>{CSS}</style></head><body>",
        f"<h1>{e(words['title'])}</h1>",
        f'<p>{e(words["intro"])}</p><p class="note">{e(words["local"])}</p>',
        f"<h2>{e(words['levels_heading'])}</h2><div class=\"counts\">",
    ]
    for level in LEVELS:
        parts.append(
            f'<div class="count {level}"><b>{counts[level]}</b>{e(words[level])}</div>'
        )
    parts.append("</div>")
    parts.append(
        "<p>"
        + e(words["thresholds"].format(high=_share(thresholds.high, lang),
                                       moderate=_share(thresholds.moderate, lang)))
        + "</p>"
    )
    parts.append(f"<h2>{e(words['how_heading'])}</h2>")
    parts.append(f"<p>{e(words['how'] if explained else words['no_explain'])}</p>")
    for level in LEVELS:
        rows = table[table["support_priority"] == level]
        if rows.empty:
            continue
        heading = f"{e(words[level])} ({len(rows)} {e(words['students'])})"
        if level == "low" and len(rows) > LOW_LISTED_MAX:
            parts.append(f"<h2>{heading}</h2><p>{e(words['low_in_csv'].format(csv=CSV_NAME))}"
                         "</p>")
        elif level == "low":
            summary = e(words["show_low"].format(count=len(rows)))
            parts.append(f"<h2>{heading}</h2><details><summary>{summary}</summary>"
                         f"{_students_table(rows, words, explained)}</details>")
        else:
            parts.append(f"<h2>{heading}</h2>{_students_table(rows, words, explained)}")
    date = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    parts.append(
        f"<footer>{e(words['generated'].format(date=date, model=model_fingerprint or '—'))}"
        "</footer></body></html>"
    )
    return "\n".join(parts)


def _students_table(rows: pd.DataFrame, words: dict[str, str], explained: bool) -> str:
    e = _text
    head = [words["student"], words["school"], words["year"], words["level"]]
    if explained:
        head += [words["raising"], words["protective"]]
    out = ["<table><thead><tr>", *(f"<th>{e(h)}</th>" for h in head), "</tr></thead><tbody>"]
    for row in rows.itertuples(index=False):
        level = str(row.support_priority)
        cells = [
            e(str(getattr(row, "student_id", ""))),
            e(str(getattr(row, "school_id", ""))),
            e(str(getattr(row, "school_year", ""))),
            f'<span class="badge {level}">{e(words[level])}</span>',
        ]
        if explained:
            cells += [_factor_list(row.factors, words), _factor_list(row.protective_factors, words)]
        out.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _factor_list(text: object, words: dict[str, str]) -> str:
    items: Sequence[str] = [t for t in str(text).split(" | ") if t] if isinstance(text, str) else []
    if not items:
        return f'<span class="muted">{_text(words["none"])}</span>'
    return "<ul>" + "".join(f"<li>{_text(item)}</li>" for item in items) + "</ul>"


def _text(value: str) -> str:
    """Escape for an element's text (quotes may stay: never inside an attribute)."""
    return html.escape(value, quote=False)


def _share(value: float, lang: str) -> str:
    text = f"{value:.0%}" if abs(value * 100 - round(value * 100)) < 1e-9 else f"{value:.1%}"
    return text.replace("%", " %").replace(".", ",") if lang == "fr" else text
