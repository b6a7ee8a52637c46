"""The one HTML path of the project: Jinja2 templates in ``common/templates``.

Every page (the centre's support report, the model card, the registry index, the run
report) is a template extending ``base.html``, which inlines the one stylesheet
``style.css``: a page is a single file that loads nothing from anywhere. The
environment escapes every value (``autoescape=True``) and refuses a name the template
does not receive (``StrictUndefined``), so a missing figure is an error in tests, not a
blank cell in a published card.

This module knows no Flower, client or server code: the callers pass plain data.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from functools import cache
from typing import Any

import jinja2

from common.app_approval import refusal_sentence
from common.equity.audit import GAPS
from common.equity.words import attribute_words, cell_words, group_words, label_words
from common.files import package_data
from common.i18n import catalogue as i18n
from common.i18n.catalogue import N_ as N_  # re-exported: the pages mark their messages with it
from common.protocol import refusing_centre
from common.schema import COLUMN_BY_NAME

# A part the run did not produce, in every JSON file and page (never estimated; the
# files keep these words, the pages show them in their language).
NOT_MEASURED = N_("not measured in this run")


# The equity gaps (``common.equity.audit.GAPS``) as the pages name them.
GAP_LABELS = {
    "equal_opportunity_gap": N_("equal opportunity gap"),
    "fpr_gap": N_("fpr gap"),
    "calibration_gap": N_("calibration gap"),
    "auc_gap": N_("auc gap"),
}


def figure(value: Any, digits: int = 3) -> str:
    """A scalar figure as text: booleans as on/off, floats to ``digits`` places (small
    ones to ``digits`` significant digits), anything else as it is."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:.{digits}g}" if abs(value) < 1e-3 and value != 0 else f"{value:.{digits}f}"
    return str(value)


def is_unreported(value: Any) -> bool:
    """JSON ``null`` or NaN: a figure that could not be computed or may not be shown."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def is_not_measured(value: Any) -> bool:
    return isinstance(value, str) and value == NOT_MEASURED


def is_interval(value: Any) -> bool:
    """A ``[low, high]`` pair of finite numbers (a 95 % interval that was computed)."""
    return (isinstance(value, list | tuple) and len(value) == 2
            and all(isinstance(v, int | float) and not is_unreported(v) for v in value))


def gap_names(gaps: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The gaps (in ``common.equity.audit.GAPS`` order) that at least one attribute reports."""
    return [name for name, _ in GAPS if any(name in values for values in gaps.values())]


def build_environment(loader: jinja2.BaseLoader, lang: str = "en") -> jinja2.Environment:
    """A Jinja2 environment with the project's rules (every value escaped, unknown names
    refused), filters and tests, and the translation catalogue (``common.i18n.catalogue``) of
    ``lang`` for ``{% trans %}`` and ``_()``; ``number`` formats in that language.
    Other HTML surfaces (the operations console) pass their own loader."""
    env = jinja2.Environment(
        loader=loader,
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        extensions=["jinja2.ext.i18n"],
    )
    env.install_gettext_translations(i18n.translations(lang), newstyle=True)  # type: ignore[attr-defined]

    gettext = i18n.gettext(lang)

    def number(value: Any, digits: int = 3) -> str:
        if isinstance(value, str):
            return value
        return "—" if is_unreported(value) else i18n.number(value, digits, lang)

    def localised_figure(value: Any, digits: int = 3) -> str:
        if isinstance(value, bool):
            return gettext("on") if value else gettext("off")
        text = figure(value, digits)
        return text.replace(".", ",") if isinstance(value, float) and lang == "fr" else text

    def reason(text: Any) -> str:
        # A centre's refusal as the ministry recorded it ("centre: sentence", or the
        # sentence alone): the protocol's fixed sentence in the page's language.
        name, sentence = refusing_centre(str(text), "")
        shown = i18n.translate(refusal_sentence(sentence), lang)
        return f"{name}{' : ' if lang == 'fr' else ': '}{shown}" if name else shown

    def predictor(name: str) -> str:
        # A column by the name school teams know it (the schema's label), else the
        # audit's words for it, else as it is.
        column = COLUMN_BY_NAME.get(name)
        if column is not None and column.label is not None:
            return column.label.of(lang)
        words = attribute_words(gettext)(name)
        return words[:1].upper() + words[1:]

    # The audit's attributes, groups and size bands in the page's language.
    env.filters["attribute"] = attribute_words(gettext)
    env.filters["predictor"] = predictor
    env.filters["group"] = group_words(gettext)
    env.filters["label"] = label_words(gettext)
    env.filters["cell"] = cell_words(gettext)
    env.filters["number"] = number
    env.filters["figure"] = localised_figure
    env.filters["reason"] = reason
    # A sentence kept with its parameters (``common.i18n.catalogue.Sentence``), in the page's
    # language.
    # (``str()`` of a Sentence would drop its message id: a str is passed as it is.)
    env.filters["translated"] = lambda text: i18n.translate(
        text if isinstance(text, str) else str(text), lang)
    # A sentence kept as a record (``common.i18n.catalogue.to_record``: JSON files), read back.
    env.filters["from_record"] = i18n.from_record
    env.globals["lang"] = lang
    # Between two numbers: French writes decimals with a comma, so lists take ";".
    env.globals["SEP"] = ";" if lang == "fr" else ","
    env.tests["unreported"] = is_unreported
    env.tests["not_measured"] = is_not_measured
    env.tests["interval"] = is_interval
    env.globals["NOT_MEASURED"] = NOT_MEASURED
    env.globals["gap_names"] = gap_names
    env.globals["GAP_LABELS"] = GAP_LABELS
    return env


@cache
def environment(lang: str = "en") -> jinja2.Environment:
    """The environment of the published pages in ``lang`` (built once per language):
    package templates. Pages whose strings are not in the catalogue yet stay English."""
    return build_environment(jinja2.FileSystemLoader(package_data("templates")), lang)


def render(template: str, lang: str = "en", **context: Any) -> str:
    """The page ``template`` (a file name in ``common/templates``) in ``lang`` with
    ``context``."""
    return environment(lang).get_template(template).render(**context)
