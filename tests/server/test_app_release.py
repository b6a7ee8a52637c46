"""Releases of the app: the FAB the centres approve, published with its SHA-256.

The published hash is the one ``perseverance-client app hash`` gives on the same source,
and the one the image build stages (deploy/images/stage_app_source.py); editing a doc,
a test or a deployment file does not change it; a published version is never replaced.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from client.cli import app as client_cli
from server.cli import app as server_cli
from server.publication.app_release import AppAlreadyPublishedError, list_apps
from server.publication.registry import list_models, publish_app, read_index

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the project's app (its packages, pyproject, and the files around them a
    checkout has), frozen: other work in the tree does not move its hash mid-test."""
    folder = tmp_path_factory.mktemp("checkout") / "perseverance"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("common", "client", "server", "simulations", "tools"):
        shutil.copytree(ROOT / name, folder / name, ignore=ignore)
    for name in ("pyproject.toml", ".gitignore", "README.md"):
        shutil.copy2(ROOT / name, folder / name)
    (folder / "docs").mkdir()
    (folder / "docs" / "DEPLOYMENT.md").write_text("# Deployment\n", encoding="utf-8")
    (folder / "deploy").mkdir()
    (folder / "deploy" / "compose.yaml").write_text("services: {}\n", encoding="utf-8")
    (folder / "tests").mkdir()
    (folder / "tests" / "conftest.py").write_text("X = 1\n", encoding="utf-8")
    return folder


def _client_hash(folder: Path) -> str:
    result = runner.invoke(client_cli, ["app", "hash", str(folder)])
    assert result.exit_code == 0, result.output
    return result.output.strip()


def test_publishing_writes_the_fab_its_sha256_and_its_record(checkout: Path,
                                                             tmp_path: Path) -> None:
    registry = tmp_path / "registry"

    result = runner.invoke(server_cli, ["--lang", "en", "registry", "publish-app",
                                        str(checkout), "--registry", str(registry),
                                        "--version", "1.2.0"])

    assert result.exit_code == 0, result.output
    folder = registry / "apps" / "1.2.0"
    fab = (folder / "perseverance.fab").read_bytes()
    digest = hashlib.sha256(fab).hexdigest()
    assert digest in result.output
    assert (folder / "SHA256SUMS").read_text() == f"{digest}  perseverance.fab\n"
    record = json.loads((folder / "publication.json").read_text())
    assert record["version"] == "1.2.0" and record["fab_sha256"] == digest
    assert record["app_version"] == "0.1.0" and record["fab_bytes"] == len(fab)
    assert record["git_commit"] is None and record["published"].startswith("20")
    # The centre's command gives the published hash on the same source.
    assert _client_hash(checkout) == digest
    # The registry's index lists the release; the models are not confused with it.
    assert read_index(registry)["apps"][0]["fab_sha256"] == digest
    assert list_models(registry) == []
    assert digest in (registry / "index.html").read_text()
    assert [r["version"] for r in list_apps(registry)] == ["1.2.0"]


def test_a_published_version_is_never_replaced(checkout: Path, tmp_path: Path) -> None:
    registry = tmp_path / "registry"
    first = publish_app(checkout, registry, "1.0.0")
    before = first.fab.read_bytes(), (first.folder / "publication.json").read_bytes()

    with pytest.raises(AppAlreadyPublishedError, match="never replaced"):
        publish_app(checkout, registry, "1.0.0")
    result = runner.invoke(server_cli, ["--lang", "en", "registry", "publish-app",
                                        str(checkout), "--registry", str(registry),
                                        "--version", "1.0.0"])

    assert result.exit_code == 2
    assert "already published" in result.output and len(result.output.strip().splitlines()) == 1
    assert (first.fab.read_bytes(), (first.folder / "publication.json").read_bytes()) == before
    assert [p.name for p in (registry / "apps").iterdir()] == ["1.0.0"]  # no staging left


def test_the_fab_holds_the_apps_code_only(checkout: Path) -> None:
    from flwr.cli.build import build_fab_from_disk

    with zipfile.ZipFile(io.BytesIO(build_fab_from_disk(checkout))) as fab:
        names = fab.namelist()

    tops = {name.split("/")[0] for name in names}
    assert tops == {"pyproject.toml", ".info", "common", "client", "server"}
    assert all(n.endswith(".py") for n in names if n.split("/")[0] in tops - {".info"}
               and n != "pyproject.toml")
    assert "server/app.py" in names and "client/federation/app.py" in names


def test_editing_a_doc_a_test_or_a_deployment_file_keeps_the_hash(checkout: Path,
                                                                  tmp_path: Path) -> None:
    copy = tmp_path / "perseverance"
    shutil.copytree(checkout, copy)
    before = _client_hash(copy)

    (copy / "README.md").write_text("# Another README\n", encoding="utf-8")
    (copy / "docs" / "DEPLOYMENT.md").write_text("# Edited\n", encoding="utf-8")
    (copy / "docs" / "NEW.md").write_text("# New\n", encoding="utf-8")
    (copy / "deploy" / "compose.yaml").write_text("services: {a: {}}\n", encoding="utf-8")
    (copy / "tests" / "conftest.py").write_text("X = 2\n", encoding="utf-8")
    (copy / "simulations" / "cli.py").write_text("# edited\n", encoding="utf-8")
    assert _client_hash(copy) == before

    with (copy / "server" / "app.py").open("a", encoding="utf-8") as handle:
        handle.write("\n# one more line\n")
    assert _client_hash(copy) != before


def test_the_image_build_stages_the_files_of_the_published_fab(checkout: Path,
                                                               tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location(
        "stage_app_source", ROOT / "deploy" / "images" / "stage_app_source.py")
    assert spec is not None and spec.loader is not None
    stage = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(stage)
    release = publish_app(checkout, tmp_path / "registry", "2.0.0")

    assert stage.main([str(checkout), str(tmp_path / "app-src")]) == 0
    assert _client_hash(tmp_path / "app-src") == release.sha256
    assert not (tmp_path / "app-src" / "docs").exists()


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_the_record_names_the_commit_and_whether_the_apps_files_are_its(
        checkout: Path, tmp_path: Path) -> None:
    repo = tmp_path / "perseverance"
    shutil.copytree(checkout, repo)
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.org"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "release"], check=True)
    commit = subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True,
                            text=True).stdout.strip()
    (repo / "README.md").write_text("# A doc edit\n", encoding="utf-8")

    clean = publish_app(repo, tmp_path / "registry", "1.0.0")
    (repo / "server" / "app.py").write_text("# changed\n", encoding="utf-8")
    result = runner.invoke(server_cli, ["--lang", "en", "registry", "publish-app", str(repo),
                                        "--registry", str(tmp_path / "registry"),
                                        "--version", "1.0.1"])

    assert clean.record["git_commit"] == commit and clean.record["git_clean"] is True
    assert result.exit_code == 0 and "differ from the commit" in result.output
    dirty = json.loads((tmp_path / "registry" / "apps" / "1.0.1" / "publication.json")
                       .read_text())
    assert dirty["git_clean"] is False
