"""Reading the role guides (docs/guides/*.md): their bash blocks, which of them the tests
run, and their links."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GUIDES = ROOT / "docs" / "guides"
#: French guide -> its English twin.
PAIRS = {"centre.md": "centre.en.md", "ministere.md": "ministry.en.md",
         "recherche.md": "research.en.md"}
#: The guides whose blocks run on this machine, without containers.
RUN = ("centre.md", "recherche.md")
#: A block preceded by one of these comments is not run (it says why).
SKIP = ("<!-- pas exécuté", "<!-- not run")


@dataclass(frozen=True)
class Block:
    line: int
    text: str
    runs: bool


def blocks(path: Path) -> list[Block]:
    """Every bash block of a guide, with whether the tests run it."""
    text = path.read_text(encoding="utf-8")
    found = []
    for match in re.finditer(r"^```bash\n(.*?)^```$", text, re.S | re.M):
        before = text[:match.start()].rstrip().rsplit("\n", 1)[-1]
        found.append(Block(text[:match.start()].count("\n") + 2, match.group(1),
                           not before.startswith(SKIP)))
    return found


def commands(block: Block) -> list[str]:
    """A block's lines without its comments: what the two languages share."""
    lines = (re.sub(r"\s+#\s.*$", "", line).rstrip() for line in block.text.splitlines())
    return [line for line in lines if line and not line.lstrip().startswith("#")]


def script(path: Path) -> str:
    """The blocks the tests run, in order, as one bash script that stops at the first
    failing command."""
    parts = ["set -euo pipefail"]
    for block in blocks(path):
        if block.runs:
            parts += [f"# {path.name}, line {block.line}", block.text]
    return "\n".join(parts) + "\n"


def links(path: Path) -> list[tuple[str, Path]]:
    """(link, the file it names) of every relative Markdown link outside code."""
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.S)
    found = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue
        found.append((target, (path.parent / target.split("#")[0]).resolve()))
    return found
