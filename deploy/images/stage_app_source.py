"""Copy exactly the files of the Flower app (the ones ``flwr build`` puts in its FAB) from
a checkout into the app image's build context, and check that both hash the same.

Usage: python deploy/images/stage_app_source.py CHECKOUT DEST [FAB_OUT]

Flower packages an app folder with its own rules (``*.py``, ``*.toml``, ``*.md``,
``*.yaml``, ``*.json`` ..., minus ``.gitignore`` and the app's include/exclude patterns),
so the image must hold that very set of files, unchanged, for ``perseverance-client app
hash /app/src`` inside the image to equal the hash a centre computes on the reviewed
checkout. The selection uses Flower's own functions (flwr pinned in pyproject.toml), so
it cannot drift from them. Files are copied with their times (the image build's layer
cache stays warm when nothing changed) and files that left the app are removed.
Prints the FAB's SHA-256; writes the FAB to FAB_OUT if given. Exit 1 if the hashes differ.
"""

from __future__ import annotations

import filecmp
import hashlib
import shutil
import sys
from pathlib import Path

import tomli
from flwr.cli.build import build_fab_from_disk, get_filtered_fab_paths
from flwr.cli.utils import collect_files, filter_paths_for_publish

KEEP_ALWAYS = ("pyproject.toml", ".gitignore")


def app_files(checkout: Path) -> list[str]:
    """The relative paths a FAB of ``checkout`` is built from (pyproject.toml included)."""
    files = filter_paths_for_publish(collect_files(checkout.resolve()))
    config = tomli.loads((checkout / "pyproject.toml").read_text(encoding="utf-8"))
    selected = set(get_filtered_fab_paths(dict(files), config))
    selected.update(name for name in KEEP_ALWAYS if (checkout / name).is_file())
    return sorted(selected)


def sync(checkout: Path, dest: Path, relative: list[str]) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    wanted = set(relative)
    for rel in relative:
        source, target = checkout / rel, dest / rel
        if target.is_file() and filecmp.cmp(source, target, shallow=False):
            shutil.copystat(source, target)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
    for path in sorted(dest.rglob("*"), reverse=True):
        rel = path.relative_to(dest).as_posix()
        if path.is_file() and rel not in wanted:
            path.unlink()
        elif path.is_dir() and not any(path.iterdir()):
            path.rmdir()


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3):
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    checkout, dest = Path(argv[0]).resolve(), Path(argv[1]).resolve()
    sync(checkout, dest, app_files(checkout))
    original = build_fab_from_disk(checkout)
    staged = build_fab_from_disk(dest)
    want, got = hashlib.sha256(original).hexdigest(), hashlib.sha256(staged).hexdigest()
    if want != got:
        print(f"stage_app_source: the staged app hashes {got}, the checkout {want}",
              file=sys.stderr)
        return 1
    if len(argv) == 3:
        Path(argv[2]).write_bytes(original)
    print(want)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
