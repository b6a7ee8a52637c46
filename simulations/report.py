"""The run report: ``report.html`` in the run folder, one standalone page with plots.

Reads only the run folder's aggregate files (``summary.json``, ``rounds.jsonl``,
``evaluation.json`` and, when present, ``equity.json`` and ``participation.json``):
learning curves, ROC and calibration curves from the pooled score histograms, equity by
group, epsilon spent by centre and AUC by centre size. A part the run did not produce is
replaced by a note. Images are embedded as base64 PNG, so the file stands alone.
"""

from __future__ import annotations

import base64
import html
import math
from pathlib import Path
from typing import Any

import numpy as np

from common.metrics import ScoreHistogram
from server import run_folder
from server.model_card_html import gaps_html
from simulations import report_plots

REPORT = "report.html"
NOT_MEASURED = "not measured in this run"

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2rem auto;
max-width:72rem;color:#1d2733;line-height:1.45;padding:0 1rem}
h1{font-size:1.6rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #d8dee6}
figure{margin:1rem 0}figure img{max-width:100%;height:auto}
figcaption{font-size:.88rem;color:#5b6775}.note{color:#8a5a00;font-style:italic}
table{border-collapse:collapse}th,td{border-bottom:1px solid #e3e7ec;padding:.3rem .7rem;
text-align:left}td.num{text-align:right;font-variant-numeric:tabular-nums}th{background:#f4f6f8}
.row{display:flex;flex-wrap:wrap;gap:1.5rem}
"""


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
    run_folder.atomic_write_bytes(path, render_report(run_dir).encode("utf-8"))
    return path


def render_report(run_dir: Path) -> str:
    summary = _optional(run_dir / run_folder.SUMMARY) or {}
    rounds = run_folder.read_rounds(run_dir)
    evaluation = _optional(run_dir / run_folder.EVALUATION)
    equity = _optional(run_dir / "equity.json")
    participation = _optional(run_dir / "participation.json")
    target = summary.get("epsilon_target") if summary.get("dp", True) else None
    body = [
        f"<h1>Run report: {_esc(summary.get('scenario', run_dir.name))}</h1>",
        f"<p>Run folder <code>{_esc(run_dir.name)}</code>. Every figure here comes from "
        "aggregates only: pooled score histograms, per-round metrics and per-group counts.</p>",
        "<h2>Summary</h2>", _summary_table(summary),
        "<h2>Learning curves</h2>",
        _figure(report_plots.learning_curves(rounds, target),
                "Pooled metrics of the global model on all centres' held-out records, and "
                "the largest epsilon spent by any centre, after each round.")
        if rounds else _note("No round was recorded (rounds.jsonl)."),
        "<h2>ROC and calibration</h2>",
    ]
    if evaluation:
        h = histogram_of(evaluation)
        body += ['<div class="row">',
                 _figure(report_plots.roc_curve(h), "ROC curve of the final model, thresholds "
                         f"at the {h.bins} histogram bin edges."),
                 _figure(report_plots.calibration_curve(h), "Observed rate against mean "
                         "predicted probability in 10 equal groups; below, the scores by label."),
                 "</div>"]
    else:
        body.append(_note("The pooled score histograms (evaluation.json) are " + NOT_MEASURED
                          + "."))
    body += ["<h2>Equity by group</h2>", _equity(equity),
             "<h2>Privacy spent by centre</h2>", _epsilon(participation, target),
             "<h2>AUC by centre size</h2>", _auc_by_size(participation, summary)]
    return "\n".join([
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>Run report {_esc(run_dir.name)}</title><style>{CSS}</style></head><body>",
        *body, "</body></html>",
    ])


def _equity(equity: dict[str, Any] | None) -> str:
    if equity is None:
        return _note(f"Equity by group was {NOT_MEASURED} (no equity.json).")
    groups = {k: v for k, v in equity.get("groups", {}).items() if v}
    if not groups:
        return _note("No group was large enough to report.")
    suppressed = equity.get("suppressed") or []
    noise = (" Intervals include the DP noise on the counts."
             if (equity.get("noise_std") or 0) > 0 else "")
    caption = (f"Pooled over centres; operating threshold {equity.get('threshold')}; groups "
               f"under {equity.get('min_cell')} students not shown. Suppressed: "
               f"{', '.join(map(str, suppressed)) or 'none'}.{noise}")
    return _figure(report_plots.equity_by_group(groups), caption) + gaps_html(equity)


def _epsilon(participation: dict[str, Any] | None, target: float | None) -> str:
    centres = (participation or {}).get("centres") or []
    if not centres:
        return _note(f"Epsilon by centre was {NOT_MEASURED} (no participation.json).")
    return _figure(report_plots.epsilon_by_centre(centres, target),
                   "Each bar is one centre (no names); the dashed line is the target.")


def _auc_by_size(participation: dict[str, Any] | None, summary: dict[str, Any]) -> str:
    if participation is None:
        return _note(f"AUC by centre size was {NOT_MEASURED} (no participation.json).")
    federated = participation.get("auc_by_size_band") or {}
    if all(value is None for value in federated.values()):
        return _note("No centre-size band holds enough centres to be shown on its own.")
    local = summary.get("auc_local_only_by_size_band")
    pooled = summary.get("auc_pooled")
    return _figure(
        report_plots.auc_by_size(federated, local if isinstance(local, dict) else None,
                                 float(pooled) if isinstance(pooled, int | float) else math.nan),
        "Pooled AUC of the centres of each size band; a band with fewer than three centres "
        "is not shown." + ("" if isinstance(local, dict) else " Local-only baseline " +
                           NOT_MEASURED + "."))


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


def _summary_table(summary: dict[str, Any]) -> str:
    rows = []
    for key, label in SUMMARY_ROWS:
        value = summary.get(key, NOT_MEASURED)
        if isinstance(value, float):
            text = f"{value:.3g}" if key == "delta" else f"{value:.3f}"
        elif value is None:
            text = "not measurable" if key != "epsilon_max" else "no DP"
        else:
            text = str(value)
        rows.append(f'<tr><th>{_esc(label)}</th><td class="num">{_esc(text)}</td></tr>')
    return "<table>" + "".join(rows) + "</table>"


def _figure(png: bytes, caption: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return (f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{_esc(caption)}</figcaption></figure>")


def _note(text: str) -> str:
    return f'<p class="note">{_esc(text)}</p>'


def _esc(value: object) -> str:
    return html.escape(str(value), quote=False)


def _optional(path: Path) -> dict[str, Any] | None:
    return run_folder.read_json(path) if path.is_file() else None
