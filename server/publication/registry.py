"""The public registry of models in use: an append-only folder of model cards.

Layout of a registry folder::

    index.html, index.json        every published model, newest first (rewritten atomically);
    index.en.html                 index.html is in French, this one in English
    <model-id>/model_card.json    the card, as built from the run folder
    <model-id>/model_card.html    in French; model_card.en.html in English
    <model-id>/weights.sha256     "<hex>  model.pt", checkable with ``sha256sum -c``
    <model-id>/publication.json   when and from which run folder it was published
    apps/<version>/...            the releases of the Flower app (FAB, SHA256SUMS,
                                  publication.json) the centres approve: app_release.py

A model id is never overwritten: publishing an id that exists is refused. A model's
folder is assembled in a hidden staging folder and renamed into place, so a reader never
sees half a model; the index is rebuilt from the folders, so it lists every published
model even after an interrupted publication. One publisher at a time (a lock file).
"""

from __future__ import annotations

import fcntl
import json
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from common import pages
from common.errors import ExitCode, PerseveranceError
from common.files import atomic_write_bytes
from common.i18n.catalogue import N_
from server import run_folder
from server.publication.app_release import (
    PUBLIC_FILE,
    AppRelease,
    AppReleaseError,
    list_apps,
    place_public,
    prepare,
    write_release,
)
from server.publication.model_card import (
    CARD_HTML,
    CARD_HTML_EN,
    CARD_JSON,
    CARD_PAGES,
    build_model_card,
    render_model_card,
)

INDEX_JSON = "index.json"
INDEX_HTML = "index.html"  # French, Québec's language of public administration
INDEX_HTML_EN = "index.en.html"
WEIGHTS_SHA = "weights.sha256"
PUBLICATION = "publication.json"
LOCK = ".lock"
APPS = "apps"  # the app's releases (app_release.py); never a model id


class RegistryError(PerseveranceError, ValueError):
    """The registry cannot take this model (one sentence; exit code 2)."""

    exit_code = ExitCode.UNUSABLE


class AlreadyPublishedError(RegistryError):
    """The model id is in the registry already; entries are never overwritten."""


def publish(run_dir: Path, registry_dir: Path, now: datetime | None = None) -> Path:
    """Add the model of ``run_dir`` to the registry; returns its folder there.

    Raises ``AlreadyPublishedError`` when its id exists, ``ModelCardError`` when the run
    folder cannot give a card, ``RegistryError`` when the registry cannot be written.
    """
    card = build_model_card(run_dir)
    model_id = str(card["model_id"])
    published = (now or datetime.now(UTC)).isoformat(timespec="seconds")
    try:
        registry_dir.mkdir(parents=True, exist_ok=True)
        with _locked(registry_dir):
            target = registry_dir / model_id
            if target.exists():
                raise AlreadyPublishedError(N_(
                    "The model %(model)s is already in the registry %(path)s; published "
                    "models are never replaced.", model=model_id, path=registry_dir))
            staging = Path(tempfile.mkdtemp(dir=registry_dir, prefix=".staging-"))
            try:
                run_folder.write_json(staging / CARD_JSON, card)
                for name, lang in CARD_PAGES:
                    (staging / name).write_text(render_model_card(card, lang), encoding="utf-8")
                (staging / WEIGHTS_SHA).write_text(
                    f"{card['version']['weights_sha256']}  {run_folder.MODEL}\n", encoding="utf-8")
                run_folder.write_json(staging / PUBLICATION, {
                    "model_id": model_id, "published": published, "source_run": run_dir.name})
                place_public(staging, target)
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
            write_index(registry_dir)
    except OSError as exc:
        raise RegistryError(N_(
            "The registry %(path)s cannot be written (%(reason)s); check the path and its "
            "permissions.", path=registry_dir, reason=exc.strerror)) from None
    return target


def publish_app(app_dir: Path, registry_dir: Path, version: str | None = None,
                now: datetime | None = None) -> AppRelease:
    """Build the FAB of ``app_dir`` with Flower's build function and publish it as
    ``version`` (default: the app's pyproject version) in ``registry_dir/apps``.

    Raises ``AppAlreadyPublishedError`` when that version exists (nothing is changed),
    ``AppReleaseError`` when the folder is not an app or the registry cannot be written.
    """
    content, record = prepare(app_dir, version, now)
    try:
        registry_dir.mkdir(parents=True, exist_ok=True)
        with _locked(registry_dir):
            release = write_release(registry_dir, content, record)
            write_index(registry_dir)
    except OSError as exc:
        raise AppReleaseError(N_(
            "The registry %(path)s cannot be written (%(reason)s); check the path and its "
            "permissions.", path=registry_dir, reason=exc.strerror)) from None
    return release


def list_models(registry_dir: Path) -> list[dict[str, Any]]:
    """Index entries of every published model, newest first."""
    if not registry_dir.is_dir():
        return []
    entries = []
    for folder in registry_dir.iterdir():
        if (folder.name.startswith(".") or folder.name == APPS
                or not (folder / PUBLICATION).is_file()):
            continue
        card = run_folder.read_json(folder / CARD_JSON)
        publication = run_folder.read_json(folder / PUBLICATION)
        entries.append(_entry(card, publication))
    return sorted(entries, key=lambda e: (e["published"], e["model_id"]), reverse=True)


def write_index(registry_dir: Path) -> None:
    """Rebuild ``index.json`` and ``index.html`` from the model folders (atomic writes)."""
    models, apps = list_models(registry_dir), list_apps(registry_dir)
    run_folder.write_json(registry_dir / INDEX_JSON,
                          {"format": 1, "models": models, "apps": apps})
    for name, lang in ((INDEX_HTML, "fr"), (INDEX_HTML_EN, "en")):
        atomic_write_bytes(registry_dir / name, render_index(models, lang, apps).encode())
    for name in (INDEX_JSON, INDEX_HTML, INDEX_HTML_EN):
        (registry_dir / name).chmod(PUBLIC_FILE)


def _entry(card: dict[str, Any], publication: dict[str, Any]) -> dict[str, Any]:
    privacy, performance = card["privacy"], card["performance"]["pooled"]
    return {
        "model_id": card["model_id"],
        "published": publication["published"],
        "created": card["created"],
        "origin": card["data"]["origin"],
        "origin_sentence": card["data"].get("origin_sentence", card["data"]["origin"]),
        "auc_pooled": performance["auc"],
        "differential_privacy": privacy["differential_privacy"],
        "epsilon_spent_max": privacy["epsilon_spent_max"],
        "delta": privacy["delta"],
        "secure_aggregation": privacy["secure_aggregation"],
        "weights_sha256": card["version"]["weights_sha256"],
        "card": f"{card['model_id']}/{CARD_HTML}",
        "card_en": f"{card['model_id']}/{CARD_HTML_EN}",
    }


def render_index(models: list[dict[str, Any]], lang: str = "fr",
                 apps: list[dict[str, Any]] | None = None) -> str:
    """The registry's public page in ``lang``: one row per model, linking to its card,
    one per release of the app (its FAB and SHA-256), and a link to the same page in the
    other language."""
    other = "en" if lang == "fr" else "fr"
    return pages.render("registry_index.html", lang, models=models, apps=apps or [],
                        other_lang=other,
                        other_page=INDEX_HTML_EN if other == "en" else INDEX_HTML)


@contextmanager
def _locked(registry_dir: Path) -> Iterator[None]:
    with (registry_dir / LOCK).open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def read_index(registry_dir: Path) -> dict[str, Any]:
    """The registry's ``index.json`` (empty when there is none yet)."""
    path = registry_dir / INDEX_JSON
    return dict(json.loads(path.read_text(encoding="utf-8"))) if path.is_file() else {
        "format": 1, "models": [], "apps": []}
