"""The ministry's operations console: a read-only Starlette application.

Pages (French unless the visitor asks for English: the page's switch, ``?lang=``, then
``Accept-Language``): ``/`` the federation (``?federation=deployed|loopback``: whose
runs give the centres' refusals and history), ``/runs`` every run, by kind (deployed,
loopback, simulated, multi-year simulations), ``/runs/<name>`` one run (its live part,
``/runs/<name>/live``, is polled by ``console.js`` while the run goes) or one multi-year
simulation (its years; a year's run is ``/runs/<name>/year-N``), ``/audit/<name>`` the
ministry's audit log and whether it verifies, ``/registry`` the published models.
Every route answers GET only; nothing is written anywhere (the language switch is a
cookie in the visitor's browser). Behind the proxy the console is served under a prefix
(``root_path``), which every link carries.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import jinja2
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.routing import Route

from common import pages
from common.i18n import catalogue as i18n
from server.console import charts, words
from server.console.federation import SuperLinkNodes, federation
from server.console.runs import KINDS, RUNNING, RunDetail, RunFolders
from server.publication import app_release
from server.publication import registry as registry_lib
from server.publication.model_card import CARD_HTML, CARD_HTML_EN
from server.run_folder import stopped_reason, summary_or_empty
from server.summary import Summary

LANG_COOKIE = "lang"
POLL_SECONDS = 2
# Files of a run folder (and of a registry entry) the console serves as they are.
RUN_FILES = ("report.html", "model_card.html", "model_card.en.html")
STATIC = Path(__file__).resolve().parent / "static"
SECURITY_HEADERS = {
    # The pages inline their one stylesheet and load one script of their own.
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "script-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


@dataclass(frozen=True)
class ConsoleSettings:
    """What the console reads: the run folders, and optionally the registry, the
    inventory of enrolled centres and a SuperLink (``host:port`` of a Control API
    reachable without TLS: the operator tunnel's loopback end)."""

    runs: Path
    registry: Path | None = None
    inventory: Path | None = None
    superlink: str | None = None


@cache
def environment(lang: str) -> jinja2.Environment:
    """The console's templates (and the project's base page and stylesheet) in ``lang``."""
    loader = jinja2.ChoiceLoader([jinja2.PackageLoader("server.console", "templates"),
                                  jinja2.PackageLoader("common", "templates")])
    env = pages.build_environment(loader, lang)
    env.globals.update(words=words, POLL_SECONDS=POLL_SECONDS, RUNNING=RUNNING, KINDS=KINDS)
    words.install(env, lang)
    return env


def language(request: Request) -> str:
    """The page's language: ``?lang=``, the switch's cookie, ``Accept-Language``, French."""
    return (i18n.normalise(request.query_params.get("lang"))
            or i18n.normalise(request.cookies.get(LANG_COOKIE))
            or i18n.negotiate(request.headers.get("accept-language"))
            or i18n.DEFAULT)


def render(request: Request, template: str, status_code: int = 200,
           **context: Any) -> HTMLResponse:
    lang = language(request)
    root = request.scope.get("root_path", "").rstrip("/")
    body = environment(lang).get_template(template).render(
        root=root, path=request.url.path[len(root):] or "/", other="en" if lang == "fr" else "fr",
        **context)
    response = HTMLResponse(body, status_code=status_code)
    if i18n.normalise(request.query_params.get("lang")):
        response.set_cookie(LANG_COOKIE, lang, max_age=365 * 86400, samesite="strict",
                            httponly=True, path=root or "/")
    return response


def not_found(request: Request, what: str) -> HTMLResponse:
    return render(request, "console/not_found.html", status_code=404, what=what)


class Console:
    """The pages, over one set of run folders (the app's state)."""

    def __init__(self, settings: ConsoleSettings) -> None:
        self.settings = settings
        self.runs = RunFolders(settings.runs)
        self.superlink = SuperLinkNodes(settings.superlink) if settings.superlink else None

    def federation(self, request: Request) -> Response:
        page = federation(self.settings.inventory, self.runs, self.superlink,
                          request.query_params.get("federation"))
        return render(request, "console/federation.html", page=page, rows=page.rows,
                      error=page.error, view=page.view, inventory=self.settings.inventory,
                      superlink=self.settings.superlink)

    def runs_page(self, request: Request) -> Response:
        return render(request, "console/runs.html", runs=self.runs.overviews(),
                      years_runs=self.runs.years_runs(), root_dir=self.settings.runs)

    def run_page(self, request: Request) -> Response:
        name = request.path_params["name"]
        years = self.runs.years_run(name) if "/" not in name else None
        if years is not None:
            return render(request, "console/years.html", years=years)
        detail = self.runs.detail(name)
        run_dir = self.runs.folder(name)
        if detail is None or run_dir is None:
            return not_found(request, name)
        files = [f for f in RUN_FILES if (run_dir / f).is_file()]
        return render(request, "console/run.html", run=detail, files=files,
                      charts=run_charts(detail, language(request)))

    def run_live(self, request: Request) -> Response:
        detail = self.runs.detail(request.path_params["name"])
        if detail is None:
            return not_found(request, request.path_params["name"])
        response = render(request, "console/_live.html", run=detail,
                          charts=run_charts(detail, language(request)))
        response.headers["X-Run-Status"] = detail.overview.status
        return response

    def run_file(self, request: Request) -> Response:
        run_dir = self.runs.folder(request.path_params["name"])
        name = request.path_params["file"]
        if run_dir is None or name not in RUN_FILES or not (run_dir / name).is_file():
            return not_found(request, name)
        return FileResponse(run_dir / name, media_type="text/html")

    def audit_page(self, request: Request) -> Response:
        found = self.runs.audit(request.path_params["name"])
        if found is None:
            return not_found(request, request.path_params["name"])
        events, check = found
        run_dir = self.runs.folder(request.path_params["name"])
        summary = summary_or_empty(run_dir) if run_dir is not None else Summary()
        return render(request, "console/audit.html", name=request.path_params["name"],
                      events=events, check=check, stopped=stopped_reason(summary),
                      stopped_text=summary.stopped)

    def registry_page(self, request: Request) -> Response:
        models: list[dict[str, Any]] = []
        apps: list[dict[str, Any]] = []
        error = None
        if self.settings.registry is not None:
            try:
                models = registry_lib.list_models(self.settings.registry)
                apps = app_release.list_apps(self.settings.registry)
            except (OSError, ValueError, KeyError) as exc:
                error = f"{self.settings.registry}: {exc}"
        return render(request, "console/registry.html", models=models, apps=apps,
                      error=error, registry=self.settings.registry)

    def registry_card(self, request: Request) -> Response:
        model_id = request.path_params["model_id"]
        folder = self.settings.registry
        name = CARD_HTML_EN if language(request) == "en" else CARD_HTML
        card = folder / model_id / name if folder else None
        if card is not None and not card.is_file():  # published before the English page
            card = folder / model_id / CARD_HTML if folder else None
        if (card is None or model_id.startswith(".") or "/" in model_id
                or not card.is_file()):
            return not_found(request, model_id)
        return FileResponse(card, media_type="text/html")


def run_charts(detail: RunDetail, lang: str) -> list[Any]:
    """The run page's per-round charts."""
    _ = i18n.gettext(lang)
    rounds = [int(r.get("round", i + 1)) for i, r in enumerate(detail.rounds)]

    def values(key: str) -> list[float | None]:
        return [r.get(key) if isinstance(r.get(key), int | float) else None
                for r in detail.rounds]

    return [
        charts.line_chart(_("Pooled ROC AUC by round"), rounds,
                          [charts.Series(_("ROC AUC"), values("eval_auc"))],
                          lambda v: i18n.number(v, 3, lang)),
        charts.line_chart(_("Largest epsilon spent by round"), rounds,
                          [charts.Series(_("epsilon"), values("train_epsilon_max"))],
                          lambda v: i18n.number(v, 2, lang)),
        charts.line_chart(_("Updates aggregated by round"), rounds,
                          [charts.Series(_("updates"), values("updates"))],
                          lambda v: i18n.number(v, 0, lang)),
    ]


async def static_script(request: Request) -> Response:
    return FileResponse(STATIC / "console.js", media_type="text/javascript")


class SecurityHeaders(BaseHTTPMiddleware):
    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response


def create_app(settings: ConsoleSettings) -> Starlette:
    """The console's ASGI application (served by uvicorn: ``server.console.serve``)."""
    console = Console(settings)
    routes = [
        Route("/", console.federation, methods=["GET"]),
        Route("/runs", console.runs_page, methods=["GET"]),
        # A name may be a multi-year simulation's year (``DIR/year-N``): RunFolders.folder
        # resolves it, nothing else.
        Route("/runs/{name:path}/live", console.run_live, methods=["GET"]),
        Route("/runs/{name:path}/files/{file}", console.run_file, methods=["GET"]),
        Route("/runs/{name:path}", console.run_page, methods=["GET"]),
        Route("/audit/{name:path}", console.audit_page, methods=["GET"]),
        Route("/registry", console.registry_page, methods=["GET"]),
        Route("/registry/{model_id}", console.registry_card, methods=["GET"]),
        Route("/static/console.js", static_script, methods=["GET"]),
    ]
    return Starlette(routes=routes, middleware=[Middleware(SecurityHeaders)])
