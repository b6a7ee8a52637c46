"""The one HTML path: one Jinja2 environment (escaping, strict names), one stylesheet."""

from __future__ import annotations

import fnmatch
import math
import subprocess
import sys
import tomllib
from pathlib import Path

import jinja2
import pytest

from common import pages

REPO = Path(__file__).resolve().parents[2]
TEMPLATES = REPO / "common" / "templates"
PACKAGES = ("common", "client", "server", "simulations")


def test_every_value_is_escaped() -> None:
    template = pages.environment().from_string('<p title="{{ v }}">{{ v }}</p>')

    out = template.render(v='<script>alert("x")</script>')

    assert out == ('<p title="&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;">'
                   "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;</p>")


def test_a_name_the_template_does_not_receive_is_an_error() -> None:
    with pytest.raises(jinja2.UndefinedError, match="card"):
        pages.render("model_card.html")


def test_the_stylesheet_is_inlined_once_by_the_base_page_only() -> None:
    with_style = sorted(p.name for p in TEMPLATES.glob("*.html") if "<style" in p.read_text())
    assert with_style == ["base.html"]
    assert not [p.name for p in TEMPLATES.iterdir() if "style=" in p.read_text()]
    pages_ = [p for p in TEMPLATES.glob("*.html") if not p.name.startswith(("_", "base"))]
    assert len(pages_) == 4
    assert all('{% extends "base.html" %}' in p.read_text() for p in pages_)


def test_no_module_writes_html_by_hand() -> None:
    offenders = [
        str(path.relative_to(REPO))
        for package in PACKAGES for path in (REPO / package).rglob("*.py")
        if any(s in path.read_text(encoding="utf-8")
               for s in ("<style", "<!DOCTYPE", "html.escape", "import html"))
    ]
    assert offenders == []


def test_the_templates_are_package_data() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = config["tool"]["setuptools"]["package-data"]["common"]
    names = [f"templates/{p.name}" for p in TEMPLATES.iterdir()]
    assert names and all(any(fnmatch.fnmatch(n, pat) for pat in patterns) for n in names)
    assert any(d.startswith("jinja2") for d in config["project"]["dependencies"])


def test_the_pages_module_imports_no_flower_client_or_server_code() -> None:
    code = ("import sys, common.pages; common.pages.environment(); print(sorted({m.split('.')[0]"
            " for m in sys.modules} & {'flwr', 'client', 'server', 'simulations'}))")

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=REPO, check=True, timeout=120).stdout

    assert out.strip() == "[]"


@pytest.mark.parametrize(("value", "digits", "text"), [
    (True, 3, "on"), (False, 3, "off"), (0.78, 3, "0.780"), (1e-6, 3, "1e-06"),
    (0.0, 3, "0.000"), (2.951, 2, "2.95"), (5000, 3, "5000"), ("rdp", 3, "rdp"),
])
def test_figures_are_written_as_before(value: object, digits: int, text: str) -> None:
    assert pages.figure(value, digits) == text


def test_null_and_nan_are_unreported_and_intervals_need_two_finite_bounds() -> None:
    assert pages.is_unreported(None) and pages.is_unreported(math.nan)
    assert not pages.is_unreported(0.0)
    assert pages.is_interval([0.1, 0.2]) and not pages.is_interval([0.1, math.nan])
    assert not pages.is_interval([0.1]) and not pages.is_interval(None)


def test_pages_render_from_a_flower_app_bundle_without_the_template_files(tmp_path) -> None:
    # A FAB carries Python files but no .html or .css: the ServerApp that writes the
    # model card runs from one. The installed distribution's templates are used then.
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    import common

    bundle = tmp_path / "fab"
    shutil.copytree(Path(common.__file__).parent, bundle / "common",
                    ignore=shutil.ignore_patterns("templates", "locale", "__pycache__"))
    code = ("import common.pages as p; assert 'fab' in p.__file__, p.__file__; "
            "from common.files import package_data; print(package_data('templates')); "
            "from common.i18n import catalogue as i18n; assert i18n.gettext('fr')('on') == 'oui'")
    result = subprocess.run([sys.executable, "-c", code], cwd=bundle, capture_output=True,
                            text=True, check=False, env={"PYTHONPATH": str(bundle)})

    assert result.returncode == 0, result.stderr
    assert (Path(result.stdout.strip().splitlines()[0]) / "base.html").is_file()
