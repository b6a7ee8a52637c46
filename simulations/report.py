"""The run report: ``report.html`` in the run folder, one standalone page with plots.

Reads only the run folder's aggregate files (``summary.json``, ``rounds.jsonl``,
``evaluation.json`` and, when present, ``equity.json`` and ``participation.json``):
learning curves, ROC and calibration curves from the pooled score histograms, equity by
group, epsilon spent by centre and AUC by centre size, and the centres that refused the
run (``centres_refused`` in the summary). A part the run did not produce is replaced by a
note. Images are embedded as base64 PNG, so the file stands alone; the page is the
template ``common/templates/run_report.html``.
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
from common.metrics import ScoreHistogram
from server import run_folder
from server.publication.model_card import centres_refused
from simulations import report_plots

REPORT = "report.html"
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
        np.asarray(evaluation["hist_pos"], dtype=np.float64),
        np.asarray(evaluation["hist_neg"], dtype=np.float64),
        np.asarray(evaluation["prob_sum"], dtype=np.float64),
        0.0,
    )


def write_report(run_dir: Path) -> Path:
    """Write ``report.html`` into the run folder (atomically); returns its path."""
    path = run_dir / REPORT
    atomic_write_bytes(path, render_report(run_dir).encode("utf-8"))
    return path


def render_report(run_dir: Path) -> str:
    """The page (template ``common/templates/run_report.html``) of a run folder."""
    summary = _optional(run_dir / run_folder.SUMMARY) or {}
    rounds = run_folder.read_rounds(run_dir)
    evaluation = _optional(run_dir / run_folder.EVALUATION)
    equity = _optional(run_dir / "equity.json")
    participation = _optional(run_dir / "participation.json")
    target = summary.get("epsilon_target") if summary.get("dp", True) else None
    learning = Part(
        _plot(report_plots.learning_curves(rounds, target),
              "Pooled metrics of the global model on all centres' held-out records, and "
              "the largest epsilon spent by any centre, after each round.")
        if rounds else None, note="No round was recorded (rounds.jsonl).")
    roc_calibration: list[Plot] = []
    if evaluation:
        h = histogram_of(evaluation)
        roc_calibration = [
            _plot(report_plots.roc_curve(h), "ROC curve of the final model, thresholds at "
                  f"the {h.bins} histogram bin edges."),
            _plot(report_plots.calibration_curve(h), "Observed rate against mean predicted "
                  "probability in 10 equal groups; below, the scores by label."),
        ]
    return pages.render(
        "run_report.html",
        lang="en",
        scenario=summary.get("scenario", run_dir.name),
        run_name=run_dir.name,
        summary_rows=_summary_rows(summary),
        centres_refused=centres_refused(summary),
        learning=learning,
        roc_calibration=roc_calibration,
        equity=_equity(equity),
        epsilon=_epsilon(participation, target),
        auc_by_size=_auc_by_size(participation, summary),
    )


def _equity(equity: dict[str, Any] | None) -> Part:
    if equity is None:
        return Part(note=f"Equity by group was {NOT_MEASURED} (no equity.json).")
    groups = {k: v for k, v in equity.get("groups", {}).items() if v}
    if not groups:
        return Part(note="No group was large enough to report.")
    suppressed = equity.get("suppressed") or []
    noise = (" Intervals include the DP noise on the counts."
             if (equity.get("noise_std") or 0) > 0 else "")
    caption = (f"Pooled over centres; operating threshold {equity.get('threshold')}; groups "
               f"under {equity.get('min_cell')} students not shown. Suppressed: "
               f"{', '.join(map(str, suppressed)) or 'none'}.{noise}")
    return Part(_plot(report_plots.equity_by_group(groups), caption), data=equity)


def _epsilon(participation: dict[str, Any] | None, target: float | None) -> Part:
    centres = (participation or {}).get("centres") or []
    if not centres:
        return Part(note=f"Epsilon by centre was {NOT_MEASURED} (no participation.json).")
    return Part(_plot(report_plots.epsilon_by_centre(centres, target),
                      "Each bar is one centre (no names); the dashed line is the target."))


def _auc_by_size(participation: dict[str, Any] | None, summary: dict[str, Any]) -> Part:
    if participation is None:
        return Part(note=f"AUC by centre size was {NOT_MEASURED} (no participation.json).")
    federated = participation.get("auc_by_size_band") or {}
    if all(value is None for value in federated.values()):
        return Part(note="No centre-size band holds enough centres to be shown on its own.")
    local = summary.get("auc_local_only_by_size_band")
    pooled = summary.get("auc_pooled")
    return Part(_plot(
        report_plots.auc_by_size(federated, local if isinstance(local, dict) else None,
                                 float(pooled) if isinstance(pooled, int | float) else math.nan),
        "Pooled AUC of the centres of each size band; a band with fewer than three centres "
        "is not shown." + ("" if isinstance(local, dict) else " Local-only baseline " +
                           NOT_MEASURED + ".")))


SUMMARY_ROWS = (
    ("auc_pooled", "ROC AUC, federated, pooled"), ("auc_centralized", "ROC AUC, centralised "
    "without DP (reference)"), ("auc_environment_only", "ROC AUC, environment only"),
    ("auc_local_only", "ROC AUC, each centre alone"), ("pr_auc_pooled", "PR AUC"),
    ("brier_pooled", "Brier score"), ("calibration_error_pooled", "calibration error"),
    ("epsilon_max", "largest epsilon spent"), ("delta", "delta"),
    ("mia_advantage", "membership-inference advantage"),
    ("mia_advantage_bound", "its bound from the DP guarantee"), ("num_centres_total", "centres"),
    ("num_students", "students"), ("rounds_completed", "rounds completed"),
    ("wall_seconds", "wall time (s)"),
)


def _summary_rows(summary: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, figure as text) of each summary row."""
    rows = []
    for key, label in SUMMARY_ROWS:
        value = summary.get(key, NOT_MEASURED)
        if isinstance(value, float):
            text = f"{value:.3g}" if key == "delta" else f"{value:.3f}"
        elif value is None:
            text = "not measurable" if key != "epsilon_max" else "no DP"
        else:
            text = str(value)
        rows.append((label, text))
    return rows


def _plot(png: bytes, caption: str) -> Plot:
    return Plot(base64.b64encode(png).decode("ascii"), caption)


def _optional(path: Path) -> dict[str, Any] | None:
    return run_folder.read_json(path) if path.is_file() else None
