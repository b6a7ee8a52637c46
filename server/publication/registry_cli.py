"""``perseverance-server registry``: publish a run's model card, or a release of the app
(its FAB and SHA-256, which the centres approve), to the public registry.

Exit codes: 0 success; 2 unusable run folder, app folder or registry, or a model id or
app version already published (entries are never replaced), after one sentence saying
why. Sentences in the
language of ``perseverance-server --lang`` (``common.i18n.cli``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from common.errors import ExitCode
from common.i18n.catalogue import N_, number, sentence
from common.i18n.cli import current, error_line, shown

registry_app = typer.Typer(
    no_args_is_help=True,
    help="The public registry: model cards and the app's releases (FAB and SHA-256), "
    "append-only. Exit codes: 0 ok, 2 unusable run folder, app folder or registry, or "
    "model or app version already published.",
)
console = Console(highlight=False)
err = Console(stderr=True, highlight=False)

RegistryDir = Annotated[Path, typer.Option(
    "--registry", help="The registry folder (created on the first publication).",
    show_default=False)]


@registry_app.command("publish")
def publish_command(
    run_dir: Annotated[Path, typer.Argument(help="The run folder (summary.json, model.pt, ...).",
                                            show_default=False)],
    registry: RegistryDir,
) -> None:
    """Append the run's model card and the weights' SHA-256 to the registry; refuses a
    model id that is already there. Rewrites index.html and index.json."""
    from server.publication.model_card import ModelCardError
    from server.publication.registry import RegistryError, publish

    try:
        target = publish(run_dir, registry)
    except (ModelCardError, RegistryError) as exc:
        err.print(error_line(sentence(exc)), soft_wrap=True)
        raise typer.Exit(ExitCode.UNUSABLE) from None
    console.print(shown(N_("Published %(model)s: %(path)s. Index: %(index)s",
                           model=target.name, path=target, index=registry / "index.html")),
                  markup=False, soft_wrap=True)


@registry_app.command("list")
def list_command(registry: RegistryDir) -> None:
    """List the published models, newest first."""
    from server.publication.registry import list_models

    models = list_models(registry)
    if not models:
        console.print(shown(N_("No model published in %(path)s.", path=registry)),
                      markup=False)
        return
    lang = current()
    for m in models:
        auc = m["auc_pooled"]
        epsilon = m["epsilon_spent_max"]
        console.print(shown(N_(
            "%(model)s  published %(published)s  AUC %(auc)s  epsilon %(epsilon)s  sha256 "
            "%(sha)s", model=m["model_id"], published=m["published"],
            auc=shown(auc) if isinstance(auc, str) else number(auc, 3, lang),
            epsilon=shown(N_("no DP")) if epsilon is None else number(epsilon, 2, lang),
            sha=m["weights_sha256"][:16])), markup=False, soft_wrap=True)


@registry_app.command("publish-app")
def publish_app_command(
    registry: RegistryDir,
    app_dir: Annotated[Path, typer.Argument(
        help="The app's folder (a checkout of the reviewed commit).")] = Path("."),
    version: Annotated[str | None, typer.Option(
        "--version", help="The release's version (default: the app's pyproject version).",
        show_default=False)] = None,
) -> None:
    """Build the app's FAB with Flower's build function and publish it as
    apps/VERSION/NAME.fab with its SHA-256 (SHA256SUMS) and publication.json (version,
    git commit, date, hash); a published version is never replaced (exit code 2). The
    centres approve that SHA-256 after computing it on the same source."""
    from server.publication.app_release import AppReleaseError
    from server.publication.registry import publish_app

    try:
        release = publish_app(app_dir, registry, version)
    except AppReleaseError as exc:
        err.print(error_line(sentence(exc)), soft_wrap=True)
        raise typer.Exit(ExitCode.UNUSABLE) from None
    console.print(shown(N_("Published the app %(version)s: %(path)s, SHA-256 %(hash)s.",
                           version=release.record["version"], path=release.fab,
                           hash=release.sha256)), markup=False, soft_wrap=True)
    if release.record["git_clean"] is False:
        err.print(shown(N_("Warning: the app's files differ from the commit %(commit)s; a "
                           "centre reviewing that commit gets another SHA-256.",
                           commit=release.record["git_commit"])), markup=False,
                  soft_wrap=True)


@registry_app.command("list-apps")
def list_apps_command(registry: RegistryDir) -> None:
    """List the published releases of the app, newest first, with their SHA-256."""
    from server.publication.app_release import list_apps

    releases = list_apps(registry)
    if not releases:
        console.print(shown(N_("No release of the app published in %(path)s.",
                               path=registry)), markup=False)
        return
    for r in releases:
        console.print(shown(N_("%(version)s  published %(published)s  commit %(commit)s  "
                               "sha256 %(hash)s", version=r["version"],
                               published=r["published"], commit=r["git_commit"] or "-",
                               hash=r["fab_sha256"])), markup=False, soft_wrap=True)
