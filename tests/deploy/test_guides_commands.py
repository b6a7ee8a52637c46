"""The commands the deployment's guides and reference give are the commands that exist.

Every ``bash`` block of docs/DEPLOYMENT.md, of the centre's and the ministry's deployment
guides (deploy/*/README*.md) and of the role guides (docs/guides/*.md) is read line by
line; each call of ``perseverance-server``, ``perseverance-client`` or
``perseverance-sim`` (alone, after ``docker compose run ... SERVICE``, after
``--entrypoint``, or inside an operator tunnel's ``-- COMMAND``) must name subcommands
that exist and options that command takes (the click command under typer, introspected:
no process, well under a second). The container test
(tests/deploy/test_container_federation.py) runs the guides' steps themselves; this
catches a synopsis or an option that drifted from the code in ``make test``, where the
container test does not run. ``make`` targets and build steps named there exist too.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest

from tests.docs.cli_reference import command as _command

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "docs" / "DEPLOYMENT.md", *sorted((ROOT / "deploy").glob("*/README*.md")),
        *sorted((ROOT / "docs" / "guides").glob("*.md"))]  # the role guides (issue 28)
PROGRAMS = ("perseverance-server", "perseverance-client", "perseverance-sim")
#: The ministry's guide calls the CA machine's perseverance-server ``$PKI``.
ALIASES = {"$PKI": "perseverance-server"}


def _blocks(path: Path) -> list[tuple[int, str]]:
    """(line number, logical line) of every bash block, continuations joined."""
    text = path.read_text(encoding="utf-8")
    found = []
    for block in re.finditer(r"```bash\n(.*?)```", text, re.S):
        start = text[:block.start(1)].count("\n") + 1
        lines = block.group(1).split("\n")
        number, pending = start, ""
        for offset, line in enumerate(lines):
            if not pending:
                number = start + offset
            if line.rstrip().endswith("\\"):
                pending += line.rstrip()[:-1] + " "
                continue
            logical = (pending + line).strip()
            pending = ""
            if logical and not logical.startswith("#"):
                found.append((number, logical))
    return found


def _calls(words: list[str]) -> list[tuple[str, list[str]]]:
    """Each (program, its arguments) in one shell line's words."""
    calls = []
    words = [ALIASES.get(word, word) for word in words]
    for index, word in enumerate(words):
        if word in PROGRAMS and (index == 0 or words[index - 1] != "--entrypoint"):
            args = words[index + 1:]
            calls.append((word, args[:args.index("--")] if "--" in args else args))
        elif word == "--entrypoint" and index + 1 < len(words) and words[index + 1] in PROGRAMS:
            # docker compose run [options] --entrypoint PROGRAM [options] SERVICE ARGS...
            rest = words[index + 2:]
            while rest and rest[0].startswith("-"):
                rest = rest[2:] if rest[0] in ("-v", "--volume", "-e", "--env") else rest[1:]
            args = rest[1:]  # after the service (or the image)
            calls.append((words[index + 1], args))
    return calls


def _options(words: list[str]) -> list[str]:
    """The long options a synopsis names (``[--dir DIR]``, ``--set=K=V`` included)."""
    found = []
    for word in words:
        for option in re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", word):
            found.append(option)
    return found


def _all_calls() -> list[tuple[str, str, list[str]]]:
    calls = []
    for path in DOCS:
        for number, line in _blocks(path):
            try:
                words = shlex.split(line.replace("$PKI", "'$PKI'"), comments=True)
            except ValueError:  # a synopsis with an unbalanced quote
                words = line.split()
            for program, args in _calls(words):
                calls.append((f"{path.relative_to(ROOT)}:{number}", program, args))
    return calls


CALLS = _all_calls()


def test_the_guides_call_the_three_commands() -> None:
    programs = {program for _, program, _ in CALLS}
    assert programs == set(PROGRAMS), programs
    assert len(CALLS) >= 25, len(CALLS)


@pytest.mark.parametrize(("where", "program", "args"), CALLS,
                         ids=[f"{w} {p} {' '.join(a[:2])}" for w, p, a in CALLS])
def test_each_command_and_option_exists(where: str, program: str, args: list[str]) -> None:
    group = _command(program)
    command: click.Command = group
    path = [program]
    options = {o for p in group.params for o in (*p.opts, *p.secondary_opts)}
    rest = list(args)
    while isinstance(command, click.Group):
        while rest and rest[0].startswith("--") and rest[0] in options:  # --lang en
            rest = rest[2:]
        assert rest, f"{where}: `{' '.join(path)}` needs a subcommand"
        sub = command.commands.get(rest[0])
        assert sub is not None, (
            f"{where}: `{' '.join(path)}` has no subcommand {rest[0]!r} "
            f"(it has {sorted(command.commands)})")
        path.append(rest.pop(0))
        command = sub
        options |= {o for p in command.params for o in (*p.opts, *p.secondary_opts)}
    options.add("--help")
    unknown = [o for o in _options(rest) if o not in options]
    assert not unknown, f"{where}: `{' '.join(path)}` takes no {unknown} ({sorted(options)})"


def test_the_make_targets_and_build_steps_they_name_exist() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    targets = set(re.findall(r"^([a-z][a-z-]*):", makefile, re.M))
    build = (ROOT / "deploy" / "images" / "build.sh").read_text(encoding="utf-8")
    steps = set(re.search(r"steps: ([a-z ]+)", build).group(1).split())  # type: ignore[union-attr]
    for path in DOCS:
        for number, line in _blocks(path):
            words = line.split("#")[0].split()
            if words[:1] == ["make"]:
                assert set(words[1:]) <= targets, f"{path.name}:{number}: {line}"
            if words[:2] == ["bash", "deploy/images/build.sh"]:
                assert set(words[2:]) <= steps, f"{path.name}:{number}: {line}"


def test_a_drifted_option_would_be_found() -> None:
    """The check itself: an option the command does not take, and a missing
    subcommand, are reported."""
    group = _command("perseverance-server")
    enrol = group.commands["enrol"]
    taken = {o for p in enrol.params for o in p.opts}
    assert "--inventory" in taken and "--no-such-option" not in taken
    assert _calls(shlex.split("docker compose run --rm operator perseverance-server enrol "
                              "x --inventory /records/inventory.json")) == [
        ("perseverance-server", ["enrol", "x", "--inventory", "/records/inventory.json"])]
    assert _calls(shlex.split("docker compose run --rm -v /a:/b:ro --entrypoint "
                              "perseverance-client clientapp app hash /review")) == [
        ("perseverance-client", ["app", "hash", "/review"])]
    assert _options(["[--dir", "DIR]", "--set=K=V"]) == ["--dir", "--set"]
