"""The ``--lang`` option of the centre's commands: French unless told otherwise.

The language is the option, else the locale (``LC_ALL``, ``LC_MESSAGES``, ``LANG``),
else French (``common.i18n.catalogue.choose``): a centre's IT staff work in French. The option
and the help in that language are the three commands' own (``common.i18n.cli``).
"""

from __future__ import annotations

from common.i18n.cli import LangOption, Language, current

__all__ = ["LangOption", "Language", "chosen"]


def chosen(option: Language | None) -> str:
    """The command's language: its ``--lang``, else the group's (``perseverance-client
    --lang en validate``), else the locale, else French."""
    return option.value if option is not None else current()
