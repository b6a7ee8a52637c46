"""``perseverance-server registry``: publish a run's model card to the public registry.

Exit codes: 0 success; 2 unusable run folder or registry, or a model id already
published (entries are never replaced), after one sentence saying why.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from common.errors import ExitCode

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
        err.print(f"[bold red]error:[/] {exc}", soft_wrap=True, markup=True)
        raise typer.Exit(ExitCode.UNUSABLE) from None
    console.print(f"Published {target.name}: {target}. Index: {registry / 'index.html'}",
                  markup=False, soft_wrap=True)


@registry_app.command("list")
def list_command(registry: RegistryDir) -> None:
    """List the published models, newest first."""
    from server.publication.registry import list_models

    models = list_models(registry)
    if not models:
        console.print(f"No model published in {registry}.", markup=False)
        return
    for m in models:
        auc = m["auc_pooled"]
        epsilon = m["epsilon_spent_max"]
        console.print(
            f"{m['model_id']}  published {m['published']}  AUC "
            f"{auc if isinstance(auc, str) else f'{auc:.3f}'}  epsilon "
            f"{'no DP' if epsilon is None else f'{epsilon:.2f}'}  sha256 "
            f"{m['weights_sha256'][:16]}", markup=False, soft_wrap=True)
