"""The language of the three commands: their ``--lang``, their sentences and their help.

One invocation has one language: ``--lang`` (fr or en), else the locale (``LC_ALL``,
``LC_MESSAGES``, ``LANG``), else French (:func:`common.i18n.catalogue.choose`). The root group of
each command is a :class:`LocalisedGroup`: when the command starts, it sets the
language from the locale and translates every help text of its tree (commands' and
options' descriptions, typer's panel titles, Click's "Usage:") through the one
catalogue; ``--lang`` is eager, so ``--lang en --help`` (the option before ``--help``)
shows English help.

The help texts stay English in the code (docstrings of the commands, ``help=`` strings,
``*HELP`` constants); :func:`extract` is the Babel extraction method that puts them in
the catalogue beside the ``_``/``N_`` messages (``babel.cfg``), with their whitespace
made one line per paragraph as :func:`help_message` makes it at run time. Click's own
usage errors ("No such option") stay English: they come from Click's catalogue.
"""

from __future__ import annotations

import ast
import inspect
from collections.abc import Collection, Iterator, Mapping, Sequence
from enum import StrEnum
from typing import IO, Annotated, Any, TypeGuard

import click
import typer
from babel.messages.extract import extract_python
from rich.markup import escape
from rich.text import Text
from typer import rich_utils
from typer.core import TyperGroup

from common.i18n import catalogue as i18n
from common.i18n.catalogue import N_

LANG_HELP = N_("Language of the messages, reports and help (fr or en; before --help); "
               "default: the locale, else French.")
# typer's and Click's words in a help page, and the catalogue messages they are.
_TYPER_WORDS: Mapping[str, str] = {
    "ARGUMENTS_PANEL_TITLE": N_("Arguments"),
    "OPTIONS_PANEL_TITLE": N_("Options"),
    "COMMANDS_PANEL_TITLE": N_("Commands"),
    "DEFAULT_STRING": N_("[default: {}]"),
    "REQUIRED_LONG_STRING": N_("[required]"),
    "ERRORS_PANEL_TITLE": N_("Error"),
    "ABORTED_TEXT": N_("Aborted."),
    "RICH_HELP": N_("Try [blue]'{command_path} {help_option}'[/] for help."),
}
_HELP_OPTION = N_("Show this message and exit.")
_USAGE = N_("Usage:")
ERROR = N_("error:")
_MSGIDS = "_perseverance_msgids"  # where a click object keeps its English help texts


class Language(StrEnum):
    """The languages of ``--lang``."""

    fr = "fr"
    en = "en"


class _Invocation:
    """The language of the running command (one per process); None until a command
    sets it (a process no command of ours started, e.g. a deployed ServerApp's)."""

    lang: str | None = None


def current() -> str:
    """The language of the running command: ``--lang``, else the locale, else French
    (in a process no command set it in, the locale's, else French)."""
    return _Invocation.lang or i18n.choose()


def shown(message: str) -> str:
    """``message`` (a catalogue message or :class:`~common.i18n.catalogue.Sentence`) in the
    running command's language; a text the catalogue does not hold stays as it is."""
    return i18n.translate(message, current())


def error_line(message: str, lang: str | None = None) -> Text:
    """``error: <message>`` in ``lang`` (default: the running command's language), the
    first word in red (a :class:`rich.text.Text`: the message is never read as markup).
    Every command's error begins so ("erreur : " in French)."""
    lang = lang or current()
    return Text.assemble((i18n.translate(ERROR, lang), "bold red"), " ",
                         i18n.translate(message, lang))


def help_message(text: str) -> str:
    """A help text as the catalogue holds it: dedented, one line per paragraph."""
    paragraphs = inspect.cleandoc(text).split("\n\n")
    return "\n\n".join(" ".join(paragraph.split()) for paragraph in paragraphs)


def _translate_attribute(target: object, attribute: str, lang: str) -> None:
    # The English text is kept aside so that --lang can translate again after the locale.
    originals: dict[str, str] = target.__dict__.setdefault(_MSGIDS, {})
    text = originals.get(attribute, getattr(target, attribute, None))
    if isinstance(text, str) and text:
        originals[attribute] = text
        # typer reads help as rich markup: "[support]" is a word of ours, not a style.
        setattr(target, attribute, escape(i18n.translate(help_message(text), lang)))


class _Formatter(click.HelpFormatter):
    """Click's formatter with its "Usage:" in the running command's language."""

    def write_usage(self, prog: str, args: str = "", prefix: str | None = None) -> None:
        super().write_usage(prog, args, f"{shown(_USAGE)} " if prefix is None else prefix)


class _Context(click.Context):
    formatter_class = _Formatter


def localise(command: click.Command, lang: str) -> None:
    """Translate the help texts of ``command`` and its subcommands into ``lang``, and
    typer's words of a help page (module settings of ``typer.rich_utils``)."""
    for name, message in _TYPER_WORDS.items():
        setattr(rich_utils, name, i18n.translate(message, lang))
    _localise_tree(command, lang)


def _localise_tree(command: click.Command, lang: str) -> None:
    if command.context_class is click.Context:  # typer's commands use Click's own
        command.context_class = _Context
    for attribute in ("help", "short_help", "epilog"):
        _translate_attribute(command, attribute, lang)
    for param in command.params:
        _translate_attribute(param, "help", lang)
    help_option = command.get_help_option(click.Context(command, **command.context_settings))
    if help_option is not None:
        help_option.help = i18n.translate(_HELP_OPTION, lang)
    if isinstance(command, click.Group):
        for subcommand in command.commands.values():
            _localise_tree(subcommand, lang)


def set_language(lang: str, context: click.Context | None = None) -> str:
    """Make ``lang`` the running command's language (and its help's, from the root)."""
    _Invocation.lang = lang
    if context is not None:
        localise(context.find_root().command, lang)
    return lang


def _remember(ctx: typer.Context, value: Language | None) -> Language | None:
    if value is not None:
        set_language(value.value, ctx)
    return value


# Eager, so that it is read before --help when it comes first on the command line.
LangOption = Annotated[
    Language | None,
    typer.Option("--lang", help=LANG_HELP, is_eager=True, callback=_remember,
                 show_default=False),
]


class LocalisedGroup(TyperGroup):
    """A command's root group: sets the language from the locale when the command
    starts, and shows every help text of its tree in that language."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        _Invocation.lang = i18n.choose(None)
        localise(self, _Invocation.lang)
        return super().main(args, prog_name, complete_var, standalone_mode,
                            windows_expand_args, **extra)


# -- extraction of the help texts for the catalogue (babel.cfg: [cli: ...]) -----------

# app.command(...): a callback's docstring is no help text (the Typer's help= is).
_DECORATORS = ("command",)


def _is_command(node: ast.AST) -> TypeGuard[ast.FunctionDef | ast.AsyncFunctionDef]:
    if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
        return False
    for decorator in node.decorator_list:
        call = decorator.func if isinstance(decorator, ast.Call) else decorator
        if isinstance(call, ast.Attribute) and call.attr in _DECORATORS:
            return True
    return False


def _help_texts(tree: ast.AST) -> Iterator[tuple[int, str]]:
    for node in ast.walk(tree):
        if _is_command(node):
            docstring = ast.get_docstring(node)
            if docstring:
                yield node.lineno, docstring
        elif isinstance(node, ast.keyword) and node.arg == "help":
            if isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
                yield node.value.lineno, node.value.value
        elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
            names = [t.id for t in node.targets if isinstance(t, ast.Name)]
            if isinstance(node.value.value, str) and any(n.endswith("HELP") for n in names):
                yield node.lineno, node.value.value


def extract(
    fileobj: IO[bytes], keywords: Mapping[str, Any], comment_tags: Collection[str],
    options: Any,
) -> Iterator[tuple[Any, ...]]:
    """Babel extraction method of a command's module: its ``_``/``N_`` messages (as the
    ``python`` method finds them) and its help texts (docstrings of the functions under
    an ``@app.command(...)``, ``help=`` strings, ``*HELP`` constants), each as
    :func:`help_message` makes it."""
    source = fileobj.read()
    fileobj.seek(0)
    yield from extract_python(fileobj, keywords, comment_tags, options)
    encoding = str(options.get("encoding", "utf-8"))
    for lineno, text in _help_texts(ast.parse(source.decode(encoding))):
        yield lineno, "", help_message(text), []
