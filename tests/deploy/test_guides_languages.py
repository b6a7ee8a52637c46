"""The deployment guides, French first (README.md) and English beside (README.en.md), give
the same steps and the same commands: only the prose and the comments are translated,
so the container test, which runs the French guide's commands, runs the English one's
too."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
SIDES = ("centre", "ministry")


def steps(path: Path) -> dict[str, list[list[str]]]:
    """Each step's number (``4.``, ``5b.``) -> the words of every command of its ``bash``
    blocks (continuations joined, comments dropped)."""
    text = path.read_text(encoding="utf-8")
    found: dict[str, list[list[str]]] = {}
    for section in re.finditer(r"^##+ (\S+)[^\n]*\n(.*?)(?=^##+ |\Z)", text, re.M | re.S):
        commands = []
        for block in re.findall(r"```bash\n(.*?)```", section.group(2), re.S):
            for line in block.replace("\\\n", " ").splitlines():
                words = shlex.split(line, comments=True)
                if words:
                    commands.append(words)
        found[section.group(1)] = commands
    return found


def headings(path: Path) -> list[str]:
    return re.findall(r"^##+ \S+ (.*)$", path.read_text(encoding="utf-8"), re.M)


@pytest.mark.parametrize("side", SIDES)
def test_both_languages_give_the_same_steps_and_commands(side: str) -> None:
    french, english = steps(DEPLOY / side / "README.md"), steps(DEPLOY / side / "README.en.md")

    assert list(french) == list(english)  # the same steps, in the same order
    assert "1." in french and any(french.values())
    for number in french:
        assert french[number] == english[number], (side, number)


@pytest.mark.parametrize("side", SIDES)
def test_the_french_guide_comes_first_and_links_the_english_one(side: str) -> None:
    french, english = DEPLOY / side / "README.md", DEPLOY / side / "README.en.md"

    assert "*English: [README.en.md](README.en.md).*" in french.read_text(encoding="utf-8")
    assert "*Français : [README.md](README.md).*" in english.read_text(encoding="utf-8")
    translated = zip(headings(french), headings(english), strict=True)
    assert all(fr != en for fr, en in translated)  # every heading in its own language
    assert "Configurer" in headings(french)
