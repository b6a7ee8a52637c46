"""The run report: ``report.html`` (French) and ``report.en.html`` (English) in the run
folder, each one standalone page with plots, linking to the other.

Reads only the run folder's aggregate files (``summary.json``, ``rounds.jsonl``,
``evaluation.json`` and, when present, ``equity.json`` and ``participation.json``):
learning curves, ROC and calibration curves from the pooled score histograms, equity by
group, epsilon spent by centre and AUC by centre size, the centres that refused the
run (``centres_refused`` in the summary) and, for a year of ``perseverance-sim years``
(``years.json`` in the folder), the years so far. A part the run did not produce is replaced by a
note. Images are embedded as base64 PNG, so the file stands alone; the page is the
template ``common/templates/run_report.html``.

Every word, on the page and inside the figures (titles, axes, legends), comes from the
project's one catalogue (``common.i18n.catalogue``): the figures are drawn once per language, since
an axis label cannot be captioned away and a reader of the French page should not meet
English in the images.
"""

from __future__ import annotations

import base64
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from common import pages
from common.files import atomic_write_bytes
from common.i18n import catalogue as i18n
from common.metrics import ScoreHistogram
from common.pages import N_
from common.protocol import HIST_NEG, HIST_POS, PROB_SUM
from server import run_folder
from server.publication.model_card import centres_refused
from server.summary import Summary
from simulations import report_plots

REPORT = "report.html"  # French, Québec's language of public administration
REPORT_EN = "report.en.html"
REPORT_PAGES = ((REPORT, "fr"), (REPORT_EN, "en"))
NOT_MEASURED = pages.NOT_MEASURED


@dataclass(frozen=True)
class Plot:
    """One embedded figure: its PNG (base64) and the caption, also its alt text."""

    png_base64: str
    caption: str


@dataclass(frozen=True)
class Part:
    """A section of the page: its plot, or the note saying why there is none."""

    plot: Plot | None = None
    note: str = ""
    data: dict[str, Any] | None = None


def histogram_of(evaluation: dict[str, Any]) -> ScoreHistogram:
    """The pooled score histogram of ``evaluation.json`` (Brier sum not needed here)."""
    return ScoreHistogram(
        np.asarray(evaluation[HIST_POS], dtype=np.float64),
        np.asarray(evaluation[HIST_NEG], dtype=np.float64),
        np.asarray(evaluation[PROB_SUM], dtype=np.float64),
        0.0,
        tuple(float(v) for v in evaluation["edges"]) if evaluation.get("edges") else None,
    )


def write_report(run_dir: Path) -> Path:
    """Write ``report.html`` (French) and ``report.en.html`` (English) into the run folder
    (atomically); returns the French page's path."""
    for name, lang in REPORT_PAGES:
        atomic_write_bytes(run_dir / name, render_report(run_dir, lang).encode("utf-8"))
    return run_dir / REPORT


def render_report(run_dir: Path, lang: str = "fr") -> str:
    """The page (template ``common/templates/run_report.html``) of a run folder in
    ``lang``, linking to the other language's page."""
    _ = i18n.gettext(lang)
    summary = run_folder.summary_or_empty(run_dir)
    rounds = run_folder.read_rounds(run_dir)
    evaluation = _optional(run_dir / run_folder.EVALUATION)
    equity = _optional(run_dir / "equity.json")
    participation = _optional(run_dir / "participation.json")
    target = summary.epsilon_target if summary.dp is not False else None
    learning = Part(
        _plot(report_plots.learning_curves(rounds, target, lang),
              _("Pooled metrics of the global model on all centres' held-out records, and "
                "the largest epsilon spent by any centre, after each round."))
        if rounds else None, note=_("No round was recorded (rounds.jsonl)."))
    roc_calibration: list[Plot] = []
    if evaluation:
        h = histogram_of(evaluation)
        roc_calibration = [
            _plot(report_plots.roc_curve(h, lang),
                  _("ROC curve of the final model, thresholds at the %(bins)s histogram "
                    "bin edges.") % {"bins": h.bins}),
            _plot(report_plots.calibration_curve(h, lang),
                  _("Observed rate against mean predicted probability in 10 equal groups; "
                    "below, the scores by label.")),
        ]
    other = "en" if lang == "fr" else "fr"
    return pages.render(
        "run_report.html",
        lang=lang,
        other_lang=other,
        other_page=REPORT_EN if other == "en" else REPORT,
        scenario=summary.scenario or run_dir.name,
        run_name=run_dir.name,
        summary_rows=_summary_rows(summary, lang),
        centres_refused=centres_refused(summary),
        learning=learning,
        roc_calibration=roc_calibration,
        equity=_equity(equity, lang),
        epsilon=_epsilon(participation, target, lang),
        auc_by_size=_auc_by_size(participation, summary, lang),
        years=_years(_optional(run_dir / "years.json"), lang),
    )


def _years(table: dict[str, Any] | None, lang: str) -> Part | None:
    """The years plot when the run is one year of ``perseverance-sim years`` (the run
    folder then holds ``years.json``, the years so far); None otherwise."""
    if not table or not table.get("years"):
        return None
    from simulations.years_plot import words, years_figure

    w = words(lang)
    return Part(_plot(years_figure(table["years"], table.get("epsilon_cap"), lang),
                      w["caption"]), data={"heading": w["heading"]})


def _equity(equity: dict[str, Any] | None, lang: str) -> Part:
    _ = i18n.gettext(lang)
    if equity is None:
        return Part(note=_("Equity by group was not measured in this run (no equity.json)."))
    groups = {k: v for k, v in equity.get("groups", {}).items() if v}
    if not groups:
        return Part(note=_("No group was large enough to report."))
    suppressed = equity.get("suppressed") or []
    noise = (" " + _("Intervals include the DP noise on the counts.")
             if (equity.get("noise_std") or 0) > 0 else "")
    threshold = equity.get("threshold")
    caption = _("Pooled over centres; operating threshold %(threshold)s on the recalibrated "
                "probabilities; groups under %(min_cell)s students not shown. Suppressed: "
                "%(suppressed)s.") % {
        "threshold": i18n.number(threshold, 3, lang)
        if isinstance(threshold, int | float) else threshold,
        "min_cell": equity.get("min_cell"),
        "suppressed": ", ".join(map(str, suppressed)) or _("none")} + noise
    return Part(_plot(report_plots.equity_by_group(groups, lang), caption), data=equity)


def _epsilon(participation: dict[str, Any] | None, target: float | None, lang: str) -> Part:
    _ = i18n.gettext(lang)
    centres = (participation or {}).get("centres") or []
    if not centres:
        return Part(note=_("Epsilon by centre was not measured in this run "
                           "(no participation.json)."))
    return Part(_plot(report_plots.epsilon_by_centre(centres, target, lang),
                      _("Each bar is one centre (no names); the dashed line is the target.")))


def _auc_by_size(participation: dict[str, Any] | None, summary: Summary,
                 lang: str) -> Part:
    _ = i18n.gettext(lang)
    if participation is None:
        return Part(note=_("AUC by centre size was not measured in this run "
                           "(no participation.json)."))
    federated = participation.get("auc_by_size_band") or {}
    if all(value is None for value in federated.values()):
        return Part(note=_("No centre-size band holds enough centres to be shown on its "
                           "own."))
    local = summary.auc_local_only_by_size_band
    pooled = summary.auc_pooled
    caption = _("Pooled AUC of the centres of each size band; a band with fewer than three "
                "centres is not shown.")
    if local is None:
        caption += " " + _("Local-only baseline not measured in this run.")
    return Part(_plot(
        report_plots.auc_by_size(federated, local,
                                 pooled if pooled is not None else math.nan, lang),
        caption))


SUMMARY_ROWS = (
    ("auc_pooled", N_("ROC AUC, federated, pooled")),
    ("auc_centralized", N_("ROC AUC, centralised without DP (reference)")),
    ("auc_environment_only", N_("ROC AUC, environment only")),
    ("auc_local_only", N_("ROC AUC, each centre alone")), ("pr_auc_pooled", N_("PR AUC")),
    ("brier_pooled", N_("Brier score")), ("calibration_error_pooled", N_("calibration error")),
    ("epsilon_max", N_("largest epsilon spent")), ("delta", N_("delta")),
    ("mia_advantage", N_("membership-inference advantage")),
    ("mia_advantage_bound", N_("its bound from the DP guarantee")),
    ("num_centres_total", N_("centres")), ("num_students", N_("students")),
    ("rounds_completed", N_("rounds completed")), ("wall_seconds", N_("wall time (s)")),
)


def _summary_rows(summary: Summary, lang: str = "fr") -> list[tuple[str, str]]:
    """(label, figure as text) of each summary row, in ``lang``: ``NOT_MEASURED`` when
    the run did not write the key, "not measurable" when it wrote ``null``."""
    _ = i18n.gettext(lang)
    rows = []
    for key, label in SUMMARY_ROWS:
        value = getattr(summary, key) if key in summary.model_fields_set else NOT_MEASURED
        if isinstance(value, float):
            text = (f"{value:.3g}".replace(".", "," if lang == "fr" else ".")
                    if key == "delta" else i18n.number(value, 3, lang))
        elif value is None:
            text = _("not measurable") if key != "epsilon_max" else _("no DP")
        elif isinstance(value, str):
            text = _(value)
        else:
            text = str(value)
        rows.append((_(label), text))
    return rows


def _plot(png: bytes, caption: str) -> Plot:
    return Plot(base64.b64encode(png).decode("ascii"), caption)


def _optional(path: Path) -> dict[str, Any] | None:
    return run_folder.read_json(path) if path.is_file() else None
