"""The years figure of ``perseverance-sim years`` (``years.json``), for the run report.

Three panels by school year: the records (labelled, trained on, retired for budget),
the lifetime epsilon of one student (largest and median, with the centres' lifetime
cap), and the pooled AUC of this year's model beside last year's model on this year's
students. Its words are the catalogue's (``common.i18n.catalogue``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from matplotlib.figure import Figure

from common.i18n import catalogue as i18n
from simulations.report_plots import _number, png


def words(lang: str) -> dict[str, str]:
    """The figure's words in ``lang`` (the catalogue's: French unless English)."""
    _ = i18n.gettext(lang)
    return {
        "heading": _("School years"),
        "caption": _("One federated training a school year, the centres' ledgers kept from "
                     "year to year: records, lifetime epsilon of one student (at the "
                     "centres' delta), and ROC AUC of this year's model and of last year's "
                     "model on this year's students."),
        "records": _("Records"),
        "labelled": _("labelled"),
        "trained": _("trained on"),
        "retired": _("retired (budget)"),
        "epsilon": _("Lifetime epsilon of a student"),
        "largest": _("largest"),
        "median": _("median"),
        "cap": _("lifetime cap"),
        "auc": _("ROC AUC"),
        "pooled": _("this year's model, pooled"),
        "previous": _("last year's model, newest held-out"),
        "newest": _("this year's model, newest held-out"),
        "year": _("school year"),
    }


def years_figure(rows: Sequence[Mapping[str, Any]], epsilon_cap: float | None,
                 lang: str = "fr") -> bytes:
    """The three panels of ``years.json``'s rows, as PNG."""
    w = words(lang)
    figure = Figure(figsize=(11, 3.3))
    axes = figure.subplots(1, 3)
    x = [int(row["year"]) for row in rows]
    panels = (
        (axes[0], w["records"], (("labelled", w["labelled"]), ("students_trained", w["trained"]),
                                 ("retired", w["retired"]))),
        (axes[1], w["epsilon"], (("epsilon_student_max", w["largest"]),
                                 ("epsilon_student_median", w["median"]))),
        (axes[2], w["auc"], (("auc_pooled", w["pooled"]), ("auc_newest", w["newest"]),
                             ("auc_previous_model", w["previous"]))),
    )
    for ax, title, keys in panels:
        for key, label in keys:
            ax.plot(x, [_number(row.get(key)) for row in rows], marker="o", label=label)
        ax.set_title(title)
        ax.set_xlabel(w["year"])
        ax.set_xticks(x)
        ax.grid(alpha=0.3)
    if epsilon_cap:
        axes[1].axhline(epsilon_cap, color="grey", linestyle="--", label=w["cap"])
        axes[1].set_ylim(0, 1.15 * epsilon_cap)
    axes[0].set_ylim(bottom=0)
    axes[2].set_ylim(0.5, 1.0)
    for ax in axes:
        ax.legend(fontsize=7)
    return png(figure, lang)
