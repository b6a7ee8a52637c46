"""The run report's figures (matplotlib, object API on the Agg canvas: no pyplot, no
display, no global backend switch), each returned as PNG bytes.

Each figure is drawn in one language (``lang``): titles, axes and legends come from the
project's catalogue (``common.i18n.catalogue``), and French tick labels take the decimal comma."""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, ScalarFormatter

from common.i18n import catalogue as i18n
from common.metrics import ScoreHistogram, auc_from_histogram, reliability_curve
from common.pages import N_

BAND_COLOURS = {"small": "#d9822b", "medium": "#3a6ea5", "large": "#2e8b57"}
DPI = 110


def png(figure: Figure, lang: str = "en") -> bytes:
    """The figure as PNG; in French, numeric tick labels with the decimal comma."""
    if lang == "fr":
        for ax in figure.axes:
            for axis in (ax.xaxis, ax.yaxis):
                if isinstance(axis.get_major_formatter(), ScalarFormatter):
                    axis.set_major_formatter(FuncFormatter(_french_tick))
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    return buffer.getvalue()


def _french_tick(value: float, _position: int | None = None) -> str:
    return f"{value:g}".replace(".", ",").replace("-", "\u2212")


def _number(value: Any) -> float:
    """A JSON figure as a float; null (not measurable) as NaN."""
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else (
        math.nan)


def roc_points(h: ScoreHistogram) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """False- and true-positive rates at every bin edge, from the highest score down."""
    pos, neg = h.positives[::-1], h.negatives[::-1]
    tpr = np.concatenate([[0.0], np.cumsum(pos)]) / max(pos.sum(), 1e-12)
    fpr = np.concatenate([[0.0], np.cumsum(neg)]) / max(neg.sum(), 1e-12)
    return fpr, tpr


def learning_curves(rounds: Sequence[Mapping[str, Any]], epsilon_target: float | None,
                    lang: str = "en") -> bytes:
    """Pooled AUC and PR AUC, Brier and calibration error, and epsilon, by round."""
    _ = i18n.gettext(lang)
    figure = Figure(figsize=(11, 3.2))
    axes = figure.subplots(1, 3)
    x = [int(r["round"]) for r in rounds]
    for ax, keys, title in (
        (axes[0], (("eval_auc", _("ROC AUC")), ("eval_pr_auc", _("PR AUC"))),
         _("Discrimination")),
        (axes[1], (("eval_brier", _("Brier score")),
                   ("eval_calibration_error", _("calibration error"))),
         _("Error (lower is better)")),
        (axes[2], (("train_epsilon_max", _("largest epsilon spent")),), _("Privacy spent")),
    ):
        for key, label in keys:
            # Rounds the schedule did not evaluate (evaluation.progress_every) have no
            # point: the line joins the evaluated ones.
            points = [(xi, _number(r.get(key))) for xi, r in zip(x, rounds, strict=True)]
            shown = [(xi, v) for xi, v in points if math.isfinite(v)]
            ax.plot([p[0] for p in shown], [p[1] for p in shown], marker="o", label=label)
        ax.set_title(title)
        ax.set_xlabel(_("round"))
        ax.grid(alpha=0.3)
    if epsilon_target:
        axes[2].axhline(epsilon_target, color="grey", linestyle="--", label=_("target"))
    for ax in axes:
        ax.legend(fontsize=8)
    return png(figure, lang)


def roc_curve(h: ScoreHistogram, lang: str = "en") -> bytes:
    _ = i18n.gettext(lang)
    figure = Figure(figsize=(4.2, 4.0))
    ax = figure.subplots()
    fpr, tpr = roc_points(h)
    auc = i18n.number(auc_from_histogram(h), 3, lang)
    ax.plot(fpr, tpr, label=_("federated model (AUC %(auc)s)") % {"auc": auc})
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", label=_("chance"))
    ax.set(xlabel=_("false-positive rate"), ylabel=_("true-positive rate"),
           title=_("ROC, pooled"), xlim=(0, 1), ylim=(0, 1))
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(alpha=0.3)
    return png(figure, lang)


def calibration_curve(h: ScoreHistogram, lang: str = "en") -> bytes:
    """Reliability diagram (10 probability groups) over the score distribution by label."""
    _ = i18n.gettext(lang)
    figure = Figure(figsize=(4.6, 5.0))
    top, bottom = figure.subplots(2, 1, height_ratios=[3, 1], sharex=True)
    predicted, observed = reliability_curve(h, groups=10)
    top.plot([0, 1], [0, 1], color="grey", linestyle="--", label=_("perfect calibration"))
    top.plot(predicted, observed, marker="o", label=_("federated model"))
    top.set(ylabel=_("observed rate"), title=_("Calibration, pooled"), xlim=(0, 1),
            ylim=(0, 1))
    top.legend(fontsize=8)
    top.grid(alpha=0.3)
    centres = (np.arange(h.bins) + 0.5) / h.bins
    width = 1.0 / h.bins
    bottom.bar(centres, h.negatives, width=width, color="#9bb7d4", label=_("stayed"))
    bottom.bar(centres, h.positives, width=width, bottom=h.negatives, color="#d9822b",
               label=_("left without diploma"))
    bottom.set(xlabel=_("predicted probability"), ylabel=_("students"))
    bottom.legend(fontsize=7)
    return png(figure, lang)


def equity_by_group(groups: Mapping[str, Mapping[str, Mapping[str, Any]]],
                    lang: str = "en") -> bytes:
    """AUC, true- and false-positive rates per reported group, each with its 95 %
    interval."""
    _ = i18n.gettext(lang)
    labels: list[str] = []
    values: dict[str, list[float]] = {"auc": [], "tpr": [], "fpr": []}
    errors: dict[str, list[tuple[float, float]]] = {"auc": [], "tpr": [], "fpr": []}
    for attribute, by_value in groups.items():
        for value, m in by_value.items():
            labels.append(f"{attribute}={value}")
            for key in values:
                v = _number(m.get(key))
                ci = m.get(f"{key}_ci") or [None, None]
                values[key].append(v)
                errors[key].append((v - _number(ci[0]), _number(ci[1]) - v))
    auc, tpr, fpr = values["auc"], values["tpr"], values["fpr"]
    figure = Figure(figsize=(11, 0.42 * len(labels) + 1.4))
    left, right = figure.subplots(1, 2, sharey=True)
    y = np.arange(len(labels))
    left.errorbar(auc, y, xerr=_bars(errors["auc"]), fmt="o", capsize=3)
    left.set(yticks=y, yticklabels=labels, xlabel=_("ROC AUC (95 % CI)"),
             title=_("Discrimination by group"))
    left.invert_yaxis()
    left.grid(alpha=0.3)
    right.barh(y - 0.2, tpr, height=0.4, label=_("true-positive rate"), color="#3a6ea5",
               xerr=_bars(errors["tpr"]), capsize=2)
    right.barh(y + 0.2, fpr, height=0.4, label=_("false-positive rate"), color="#d9822b",
               xerr=_bars(errors["fpr"]), capsize=2)
    right.set(xlabel=_("rate at the operating threshold (95 % CI)"),
              title=_("Error rates by group"), xlim=(0, 1))
    right.legend(fontsize=8)
    right.grid(alpha=0.3)
    return png(figure, lang)


def _bars(errors: list[tuple[float, float]]) -> npt.NDArray[np.float64]:
    """Matplotlib's 2 x N error lengths; a figure without an interval gets none."""
    array = np.array(errors, dtype=np.float64).reshape(-1, 2).T
    return np.clip(np.nan_to_num(array, nan=0.0), 0.0, None)


# The size bands as the figures name them (the data keeps the English keys).
BAND_LABELS = {"small": N_("small"), "medium": N_("medium"), "large": N_("large")}


def epsilon_by_centre(centres: Sequence[Mapping[str, Any]], target: float | None,
                      lang: str = "en") -> bytes:
    """Epsilon spent by each centre, smallest centre first, coloured by size band."""
    _ = i18n.gettext(lang)
    ordered = sorted(centres, key=lambda c: (int(c.get("num_train", 0)) + int(
        c.get("num_test", 0))))
    figure = Figure(figsize=(max(5.0, 0.18 * len(ordered) + 2), 3.2))
    ax = figure.subplots()
    x = np.arange(len(ordered))
    colours = [BAND_COLOURS.get(str(c.get("size_band")), "grey") for c in ordered]
    ax.bar(x, [_number(c.get("epsilon")) for c in ordered], color=colours)
    if target:
        ax.axhline(target, color="grey", linestyle="--")
    handles = [Patch(color=colour, label=_(BAND_LABELS[band]))
               for band, colour in BAND_COLOURS.items()]
    ax.set(xticks=[], xlabel=_("centres, smallest to largest"), ylabel=_("epsilon spent"),
           title=_("Privacy spent by centre (delta as in the run)"))
    ax.legend(handles=handles, fontsize=8, title=_("size band"), title_fontsize=8)
    return png(figure, lang)


def auc_by_size(
    federated: Mapping[str, Any], local_only: Mapping[str, Any] | None, pooled: float,
    lang: str = "en",
) -> bytes:
    """Pooled AUC of each centre-size band, federated and (when measured) local-only."""
    _ = i18n.gettext(lang)
    bands = [b for b in ("small", "medium", "large") if b in federated]
    figure = Figure(figsize=(5.2, 3.4))
    ax = figure.subplots()
    x = np.arange(len(bands))
    width = 0.38 if local_only else 0.6
    ax.bar(x - (width / 2 if local_only else 0), [_number(federated[b]) for b in bands],
           width=width, color=[BAND_COLOURS[b] for b in bands], label=_("federated"))
    if local_only:
        ax.bar(x + width / 2, [_number(local_only.get(b)) for b in bands], width=width,
               color="#b9c2cc", label=_("each centre alone"))
    if not math.isnan(pooled):
        ax.axhline(pooled, color="black", linestyle="--", linewidth=1,
                   label=_("pooled, all"))
    ax.set(xticks=x, xticklabels=[_(BAND_LABELS[b]) for b in bands], ylabel=_("ROC AUC"),
           ylim=(0.5, 1.0), title=_("AUC by centre size (empty: band too small to show)"))
    ax.legend(fontsize=8)
    return png(figure, lang)
