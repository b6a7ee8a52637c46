"""An argparse command (``perseverance-clientapp``) in the language of the typer ones.

Its help texts stay English in the code and are shown through the catalogue: French
unless ``--lang en`` or the locale says English (:func:`common.i18n.catalogue.choose`);
its errors begin as every command's do ("erreur : ", :func:`common.i18n.cli.error_line`).
argparse's own error sentences ("the following arguments are required") stay English,
as Click's do in the typer commands.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from rich.console import Console

from common.i18n import catalogue as i18n
from common.i18n.catalogue import N_
from common.i18n.cli import LANG_HELP, error_line, help_message, set_language

_HELP_OPTION = N_("Show this message and exit.")
_OPTIONS = N_("Options")
_USAGE = N_("Usage:")


def _language(argv: Sequence[str]) -> str:
    """``--lang`` of the command line (read before the rest, as the typer commands'
    eager option), else the locale, else French."""
    early = argparse.ArgumentParser(add_help=False)
    early.add_argument("--lang", choices=("fr", "en"))
    known, _ = early.parse_known_args(list(argv))
    return i18n.choose(known.lang)


class LocalisedParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose help (description, options' help, "Usage:",
    "Options") is in the command's language and whose errors begin "erreur : "; it
    has the ``--lang`` option of the other commands."""

    def __init__(self, *args: Any, argv: Sequence[str] | None = None, **kwargs: Any) -> None:
        self.lang = set_language(_language(sys.argv[1:] if argv is None else argv))
        lang = self.lang

        class Formatter(argparse.HelpFormatter):
            def add_usage(self, usage: str | None, actions: Any, groups: Any,
                          prefix: str | None = None) -> None:
                super().add_usage(usage, actions, groups,
                                  prefix or i18n.translate(_USAGE, lang) + " ")

        kwargs.setdefault("formatter_class", Formatter)
        if kwargs.get("description"):
            kwargs["description"] = i18n.translate(help_message(kwargs["description"]), lang)
        kwargs["add_help"] = False  # its own -h, its help translated
        super().__init__(*args, **kwargs)
        self._optionals.title = i18n.translate(_OPTIONS, lang)
        self.add_argument("-h", "--help", action="help",
                          help=i18n.translate(_HELP_OPTION, lang))
        self.add_argument("--lang", choices=("fr", "en"), help=i18n.translate(LANG_HELP, lang))

    def add_argument(self, *args: Any, **kwargs: Any) -> argparse.Action:
        text = kwargs.get("help")
        if isinstance(text, str) and text:
            # "%(default)s" is argparse's: kept for it to fill in.
            kwargs["help"] = i18n.translate(help_message(text), self.lang)
        return super().add_argument(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.fail(message)

    def fail(self, message: str, code: int = 2) -> NoReturn:
        """Say ``message`` (a catalogue message, shown in the command's language) as
        every command's error, and exit with ``code``."""
        Console(stderr=True, highlight=False).print(error_line(message, self.lang),
                                                    soft_wrap=True)
        sys.exit(code)
