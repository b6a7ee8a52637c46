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

import importlib.metadata
import json
import math
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import jinja2

from common.equity import GAPS

# A part the run did not produce, in every JSON file and page (never estimated).
NOT_MEASURED = "not measured in this run"


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
    """The gaps (in ``common.equity.GAPS`` order) that at least one attribute reports."""
    return [name for name, _ in GAPS if any(name in values for values in gaps.values())]


TEMPLATES = "templates"
DISTRIBUTION = "perseverance"


def template_folder() -> Path:
    """Where the templates are: beside this module, or, when this module runs from a
    Flower app bundle (a FAB carries only Python, TOML, Markdown, YAML and JSON files:
    the ServerApp writing a model card runs from one), in the installed distribution's
    copy of ``common`` (a regular install, or the source folder of an editable one)."""
    here = Path(__file__).parent / TEMPLATES
    if here.is_dir():
        return here
    try:
        dist = importlib.metadata.distribution(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        dist = None
    candidates = []
    if dist is not None:
        candidates.append(Path(str(dist.locate_file(f"common/{TEMPLATES}"))))
        origin = json.loads(dist.read_text("direct_url.json") or "{}")
        if str(origin.get("url", "")).startswith("file://"):
            candidates.append(Path(origin["url"][len("file://"):]) / "common" / TEMPLATES)
    for folder in candidates:
        if folder.is_dir():
            return folder
    raise FileNotFoundError(f"The page templates are neither in {here} nor in the installed "
                            f"{DISTRIBUTION} package: reinstall it.")


@cache
def environment() -> jinja2.Environment:
    """The project's Jinja2 environment (built once): the project's templates, every
    value escaped, unknown names refused."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(template_folder()),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["figure"] = figure
    env.tests["unreported"] = is_unreported
    env.tests["not_measured"] = is_not_measured
    env.tests["interval"] = is_interval
    env.globals["NOT_MEASURED"] = NOT_MEASURED
    env.globals["gap_names"] = gap_names
    return env


def render(template: str, **context: Any) -> str:
    """The page ``template`` (a file name in ``common/templates``) with ``context``."""
    return environment().get_template(template).render(**context)
