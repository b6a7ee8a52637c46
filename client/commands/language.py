"""The ``--lang`` option of the centre's commands: French unless told otherwise.

The language is the option, else the locale (``LC_ALL``, ``LC_MESSAGES``, ``LANG``),
else French (``common.i18n.choose``): a centre's IT staff work in French.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer

from common import i18n


class Language(StrEnum):
    fr = "fr"
    en = "en"


LangOption = Annotated[
    Language | None,
    typer.Option(
        "--lang",
        help="Language of the report and messages (fr or en); default: the locale, "
        "else French.",
        show_default=False,
    ),
]


def chosen(option: Language | None) -> str:
    """The command's language: ``--lang``, else the locale, else French."""
    return i18n.choose(option.value if option is not None else None)
