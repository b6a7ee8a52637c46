"""The public registry: append-only, refuses overwrites, the index lists every model."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from server.cli import app
from server.publication.registry import AlreadyPublishedError, list_models, publish, read_index
from tests.server.run_fixtures import write_run_folder

runner = CliRunner()


def _two_runs(tmp_path: Path) -> tuple[Path, Path]:
    first = write_run_folder(tmp_path / "run-1")
    second = write_run_folder(tmp_path / "run-2", summary_extra={"scenario": "other"})
    return first, second


def test_publish_copies_the_card_and_the_weights_hash(tmp_path: Path) -> None:
    run = write_run_folder(tmp_path / "run")

    folder = publish(run, tmp_path / "registry")

    sha = hashlib.sha256((run / "model.pt").read_bytes()).hexdigest()
    assert folder.name == f"fixture-{sha[:12]}"
    assert (folder / "weights.sha256").read_text() == f"{sha}  model.pt\n"
    assert json.loads((folder / "model_card.json").read_text())["model_id"] == folder.name
    assert (folder / "model_card.html").is_file()


def test_publishing_an_existing_model_id_is_refused(tmp_path: Path) -> None:
    run = write_run_folder(tmp_path / "run")
    publish(run, tmp_path / "registry")
    before = (tmp_path / "registry" / read_index(tmp_path / "registry")["models"][0]["card"])
    text = before.read_text()

    with pytest.raises(AlreadyPublishedError, match="published models are never replaced"):
        publish(run, tmp_path / "registry")
    assert before.read_text() == text


def test_earlier_entries_are_kept_when_a_model_is_added(tmp_path: Path) -> None:
    first, second = _two_runs(tmp_path)
    registry = tmp_path / "registry"
    one = publish(first, registry, now=datetime(2026, 1, 1, tzinfo=UTC))
    card_before = (one / "model_card.json").read_bytes()

    publish(second, registry, now=datetime(2026, 2, 1, tzinfo=UTC))

    assert (one / "model_card.json").read_bytes() == card_before


def test_the_index_lists_every_published_model_newest_first(tmp_path: Path) -> None:
    first, second = _two_runs(tmp_path)
    registry = tmp_path / "registry"
    one = publish(first, registry, now=datetime(2026, 1, 1, tzinfo=UTC))
    two = publish(second, registry, now=datetime(2026, 2, 1, tzinfo=UTC))

    index = read_index(registry)
    page = (registry / "index.html").read_text(encoding="utf-8")

    assert [m["model_id"] for m in index["models"]] == [two.name, one.name]
    assert f'href="{one.name}/model_card.html"' in page
    assert f'href="{two.name}/model_card.html"' in page


def test_the_index_is_rebuilt_from_the_model_folders(tmp_path: Path) -> None:
    first, second = _two_runs(tmp_path)
    registry = tmp_path / "registry"
    publish(first, registry)
    (registry / "index.json").unlink()  # e.g. an interrupted rewrite

    publish(second, registry)

    assert len(read_index(registry)["models"]) == 2 == len(list_models(registry))


def test_the_cli_publishes_then_refuses_with_exit_2(tmp_path: Path) -> None:
    run = write_run_folder(tmp_path / "run")
    registry = tmp_path / "registry"

    publish = ["--lang", "en", "registry", "publish", str(run), "--registry", str(registry)]
    first = runner.invoke(app, publish)
    again = runner.invoke(app, publish)
    listed = runner.invoke(app, ["--lang", "en", "registry", "list", "--registry", str(registry)])

    assert first.exit_code == 0, first.output
    assert again.exit_code == 2
    assert "already in the registry" in again.output and "Traceback" not in again.output
    assert listed.stdout.startswith("fixture-")


def test_the_cli_refuses_a_folder_that_is_not_a_run(tmp_path: Path) -> None:
    result = runner.invoke(app, ["--lang", "en", "registry", "publish", str(tmp_path),
                                 "--registry", str(tmp_path / "registry")])

    assert result.exit_code == 2
    assert "has no summary.json" in result.output
    assert not (tmp_path / "registry").exists()


def test_a_value_holding_markup_is_escaped_in_the_index_and_the_card(tmp_path: Path) -> None:
    # A scenario's name is free text (a researcher's file): it reaches the card's origin.
    run = write_run_folder(tmp_path / "run", summary_extra={
        "scenario": "<script>alert(1)</script>"})

    folder = publish(run, tmp_path / "registry")

    # The index reads the card's JSON, where the origin is kept as a sentence: French too.
    for page, origin in ((tmp_path / "registry" / "index.html", "simulation (scénario {})"),
                         (tmp_path / "registry" / "index.en.html", "simulation (scenario {})"),
                         (folder / "model_card.html", "simulation (scénario {})")):
        text = page.read_text(encoding="utf-8")
        assert "<script" not in text
        assert origin.format("&lt;script&gt;alert(1)&lt;/script&gt;") in text


def test_the_index_is_french_with_its_english_beside_it(tmp_path: Path) -> None:
    publish(write_run_folder(tmp_path / "run"), tmp_path / "registry")

    french = (tmp_path / "registry" / "index.html").read_text(encoding="utf-8")
    english = (tmp_path / "registry" / "index.en.html").read_text(encoding="utf-8")

    assert '<html lang="fr">' in french and "registre public des modèles" in french
    assert ">0,780<" in french and 'href="index.en.html"' in french
    assert '<html lang="en">' in english and "public registry of models" in english
    assert ">0.780<" in english and 'href="index.html"' in english
