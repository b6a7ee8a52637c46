"""The command reference (docs/reference/cli.md, cli.en.md), written from the three typer
apps themselves: every command, its help and its options in each language.

``python -m tests.docs.cli_reference`` writes both files; tests/docs/test_reference.py
fails when they differ from what the code would write (a command, an option or a help
text changed without the reference)."""

from __future__ import annotations

from pathlib import Path

import click
import typer

ROOT = Path(__file__).resolve().parents[2]
FILES = {"fr": ROOT / "docs" / "reference" / "cli.md",
         "en": ROOT / "docs" / "reference" / "cli.en.md"}
PROGRAMS = ("perseverance-client", "perseverance-sim", "perseverance-server")
WORDS = {
    "fr": {"title": "Référence : les commandes", "other": "*English: [cli.en.md](cli.en.md).*",
           "made": "Écrit à partir du code par `python -m tests.docs.cli_reference`; "
                   "`tests/docs/test_reference.py` échoue s'il ne correspond plus aux commandes. "
                   "Chaque commande répond aussi à `--help`.",
           "option": "option", "what": "ce qu'elle fait", "required": "obligatoire",
           "default": "par défaut", "argument": "argument", "commands": "Commandes"},
    "en": {"title": "Reference: the commands", "other": "*Français : [cli.md](cli.md).*",
           "made": "Written from the code by `python -m tests.docs.cli_reference`; "
                   "`tests/docs/test_reference.py` fails when it no longer matches the commands. "
                   "Every command also answers `--help`.",
           "option": "option", "what": "what it does", "required": "required",
           "default": "default", "argument": "argument", "commands": "Commands"},
}


def command(program: str) -> click.Group:
    if program == "perseverance-server":
        from server.cli import app
    elif program == "perseverance-client":
        from client.cli import app
    else:
        from simulations.cli import app
    group = typer.main.get_command(app)
    assert isinstance(group, click.Group)
    return group


def _cell(text: str | None) -> str:
    return " ".join((text or "").split()).replace("|", "\\|").replace("\\[", "[")


def _option(param: click.Parameter, words: dict[str, str]) -> str:
    if isinstance(param, click.Argument):
        return f"`{param.human_readable_name}` ({words['argument']})"
    names = ", ".join(f"`{o}`" for o in (*param.opts, *param.secondary_opts))
    extra = []
    if param.required:
        extra.append(words["required"])
    default = param.default
    if (isinstance(param, click.Option) and not param.is_flag and default not in (None, "", ())
            and not callable(default) and param.show_default is not False):
        extra.append(f"{words['default']} `{default}`")
    return names + (f" ({', '.join(extra)})" if extra else "")


def _walk(cmd: click.Command, path: list[str], words: dict[str, str], out: list[str]) -> None:
    level = "#" * min(len(path) + 1, 4)
    out += [f"{level} `{' '.join(path)}`", ""]
    if cmd.help:
        out += [_cell(p) + "\n" for p in cmd.help.replace("\\[", "[").split("\n\n") if p.strip()]
    params = [p for p in cmd.params if p.name != "help"]
    if params:
        out += [f"| {words['option']} | {words['what']} |", "|---|---|"]
        out += [f"| {_option(p, words)} | {_cell(getattr(p, 'help', ''))} |" for p in params]
        out.append("")
    if isinstance(cmd, click.Group):
        for name in sorted(cmd.commands):
            if not cmd.commands[name].hidden:
                _walk(cmd.commands[name], [*path, name], words, out)


def render(lang: str) -> str:
    from common.i18n.cli import localise

    words = WORDS[lang]
    out = [f"# {words['title']}", "", words["other"], "", words["made"], ""]
    for program in PROGRAMS:
        group = command(program)
        localise(group, lang)
        _walk(group, [program], words, out)
    return "\n".join(out).rstrip() + "\n"


if __name__ == "__main__":
    for lang, path in FILES.items():
        path.write_text(render(lang), encoding="utf-8")
        print(path, len(path.read_text(encoding="utf-8").splitlines()), "lines")
