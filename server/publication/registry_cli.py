"""``perseverance-server registry``: publish a run's model card to the public registry.

Exit codes: 0 success; 2 unusable run folder or registry, or a model id already
published (entries are never replaced), after one sentence saying why. Sentences in the
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
    help="The public registry of models in use: model cards, append-only. Exit codes: 0 ok, "
    "2 unusable run folder or registry, or model already published.",
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
