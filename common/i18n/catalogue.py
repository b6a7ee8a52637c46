"""The project's one translation catalogue: French first, English available.

Every sentence a person reads is written once, in English, in the code or a template
(``_("...")``, ``{% trans %}``), and translated by the catalogue
``common/locale/<lang>/LC_MESSAGES/perseverance.po`` (gettext's format, kept with
Babel's tools: ``pybabel extract -F babel.cfg``). English needs no catalogue: its
messages are the ids. The ``.po`` file is compiled in memory when first used, so no
compiled ``.mo`` file is kept beside it to drift.

The language is chosen once per report or request: ``--lang`` (or a page's switch), else
the locale (``LC_ALL``, ``LC_MESSAGES``, ``LANG``), else French, Québec's language of
public administration. Numbers follow the language (French: ``0,784``; ``12 345``).

A sentence made where the language is not known yet (an error raised deep in a reader,
shown by a command that has its ``--lang``) is marked ``N_("... %(path)s ...",
path=...)``: a :class:`Sentence`, English as a ``str`` (so logs, tests and ``str(error)``
see English), translated when shown with :func:`translate`.
"""

from __future__ import annotations

import gettext as gettext_module
import io
import os
from collections.abc import Callable, Mapping, Sequence
from functools import cache
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal, get_decimal_symbol

from common.files import package_data

DOMAIN = "perseverance"
LANGUAGES: tuple[str, ...] = ("fr", "en")
DEFAULT = "fr"
LOCALE = "locale"
# Babel's locale of each language: Québec's French and Canada's English.
BABEL_LOCALES: Mapping[str, str] = {"fr": "fr_CA", "en": "en_CA"}
#: The variables that choose a language, first set first: the project's own (set by a
#: command for the processes it starts, e.g. the loopback launcher's ServerApp), then
#: the locale's.
LANGUAGE_VARIABLE = "PERSEVERANCE_LANG"
LOCALE_VARIABLES = (LANGUAGE_VARIABLE, "LC_ALL", "LC_MESSAGES", "LANG")


def catalogue_path(lang: str) -> Path:
    """The ``.po`` file of ``lang`` (English has none: its messages are the ids)."""
    return package_data(LOCALE) / lang / "LC_MESSAGES" / f"{DOMAIN}.po"


def normalise(lang: str | None) -> str | None:
    """``"fr_CA.UTF-8"``, ``"fr-CA"`` or ``"FR"`` -> ``"fr"``; None if not one of ours."""
    if not lang:
        return None
    code = lang.strip().replace("-", "_").split(".")[0].split("_")[0].lower()
    return code if code in LANGUAGES else None


def from_environment(environ: Mapping[str, str] | None = None) -> str | None:
    """The language the locale variables ask for (the first one set), if it is ours."""
    env = os.environ if environ is None else environ
    for name in LOCALE_VARIABLES:
        value = env.get(name, "")
        if value:
            return normalise(value)
    return None


def choose(option: str | None = None, environ: Mapping[str, str] | None = None) -> str:
    """The language of a command: ``--lang``, else the locale, else French."""
    return normalise(option) or from_environment(environ) or DEFAULT


def negotiate(accept_language: str | None) -> str | None:
    """The best of our languages in an HTTP ``Accept-Language`` header, if any."""
    best: tuple[float, int, str] | None = None
    for position, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        lang = normalise(tag)
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        if lang is not None and quality > 0:
            rank = (quality, -position, lang)
            if best is None or rank > best:
                best = rank
    return best[2] if best else None


@cache
def translations(lang: str) -> gettext_module.NullTranslations:
    """The translations of ``lang`` (compiled from its ``.po`` once per process)."""
    if normalise(lang) != lang:
        raise ValueError(f"{lang!r} is not one of the languages {LANGUAGES}.")
    path = catalogue_path(lang)
    if not path.is_file():
        return gettext_module.NullTranslations()
    with path.open("rb") as handle:
        catalogue = read_po(handle, locale=BABEL_LOCALES[lang], domain=DOMAIN)
    compiled = io.BytesIO()
    write_mo(compiled, catalogue)
    compiled.seek(0)
    return gettext_module.GNUTranslations(compiled)


def gettext(lang: str) -> Callable[[str], str]:
    """The function that translates one message into ``lang``."""
    return translations(lang).gettext


class Sentence(str):
    """An English sentence with its parameters, translated when shown.

    It is the English text itself (a ``str``), and keeps its message id and parameters
    so that :func:`translate` can render it in another language.
    """

    msgid: str
    params: Mapping[str, object]

    def __new__(cls, msgid: str, params: Mapping[str, object]) -> Sentence:
        sentence = super().__new__(cls, msgid % params if params else msgid)
        sentence.msgid = msgid
        sentence.params = dict(params)
        return sentence

    def __reduce__(self) -> tuple[type[Sentence], tuple[str, Mapping[str, object]]]:
        # pickle and copy rebuild it from its message and parameters, not from the text
        return (Sentence, (self.msgid, self.params))


def word(message: str) -> Sentence:
    """``message`` as a :class:`Sentence` without parameters: a word put into another
    sentence (``N_("... %(kind)s ...", kind=word(N_("comma")))``), translated with it."""
    return Sentence(message, {})


def N_(message: str, **params: object) -> str:
    """Mark ``message`` for the catalogue; it is translated when shown. With ``params``
    (``%(name)s`` in the message), a :class:`Sentence`; without, the message itself."""
    return Sentence(message, params) if params else message


class Number(str):
    """A number put into a sentence (``N_("... %(std)s ...", std=Number(0.5, 2))``): the
    English notation as a ``str`` (``0.50``), the language's when translated (``0,50``).
    ``digits`` None writes it as ``:g`` does (:func:`compact`: ``0.5``, ``1e-06``)."""

    value: float
    digits: int | None

    def __new__(cls, value: float, digits: int | None = 3) -> Number:
        shown = super().__new__(cls, _written(value, digits, "en"))
        shown.value, shown.digits = value, digits
        return shown

    def __reduce__(self) -> tuple[type[Number], tuple[float, int | None]]:
        return (Number, (self.value, self.digits))


class Joined(str):
    """Sentences put into one parameter, each translated, joined by ``separator`` (a list
    of centres and their reasons): the English text as a ``str``."""

    parts: tuple[str, ...]
    separator: str

    def __new__(cls, parts: Sequence[str], separator: str = "; ") -> Joined:
        joined = super().__new__(cls, separator.join(parts))
        joined.parts, joined.separator = tuple(parts), separator
        return joined

    def __reduce__(self) -> tuple[type[Joined], tuple[tuple[str, ...], str]]:
        return (Joined, (self.parts, self.separator))


def to_record(text: str) -> object:
    """``text`` as JSON can hold it, its message id and parameters kept: a plain string
    stays a string; a :class:`Sentence` becomes ``{"msgid", "params"}``, a
    :class:`Number` ``{"number", "digits"}``, :class:`Joined` ``{"joined", "separator"}``
    (what :func:`from_record` reads back, for a page or command to translate later)."""
    if isinstance(text, Sentence):
        return {"msgid": text.msgid,
                "params": {name: to_record(value) if isinstance(value, str) else value
                           for name, value in text.params.items()}}
    if isinstance(text, Number):
        return {"number": text.value, "digits": text.digits}
    if isinstance(text, Joined):
        return {"joined": [to_record(part) for part in text.parts],
                "separator": text.separator}
    return str(text)


def from_record(record: object) -> str:
    """The text :func:`to_record` wrote (anything else it cannot have written: its
    ``str``, shown as it is)."""
    if isinstance(record, Mapping):
        if isinstance(record.get("msgid"), str) and isinstance(record.get("params"), Mapping):
            params = {str(name): from_record(value) if isinstance(value, Mapping | str)
                      else value for name, value in record["params"].items()}
            try:
                record["msgid"] % params
            except (KeyError, TypeError, ValueError):
                return str(record["msgid"])
            return Sentence(record["msgid"], params)
        if isinstance(record.get("number"), int | float) and not isinstance(
                record.get("number"), bool):
            digits = record.get("digits")
            return Number(float(record["number"]), digits if isinstance(digits, int) else None)
        if isinstance(record.get("joined"), list):
            separator = record.get("separator")
            return Joined([from_record(part) for part in record["joined"]],
                          separator if isinstance(separator, str) else "; ")
    return str(record) if record is not None else ""


def _written(value: float, digits: int | None, lang: str) -> str:
    return compact(value, lang) if digits is None else number(value, digits, lang)


def _parameter(value: object, lang: str) -> object:
    # A parameter that is itself a sentence (a word chosen by the code) is translated, a
    # Number is written in the language's notation; any other (a path, a value from the
    # file) is shown as it is.
    if isinstance(value, Sentence):
        return translate(value, lang)
    if isinstance(value, Number):
        return _written(value.value, value.digits, lang)
    if isinstance(value, Joined):
        return value.separator.join(translate(part, lang) for part in value.parts)
    return value


def sentence(error: BaseException) -> str:
    """The sentence ``error`` was raised with: its :class:`Sentence` (with its parameters,
    for :func:`translate`) when it has one, else ``str(error)``."""
    first = error.args[0] if error.args else None
    return first if isinstance(first, str) else str(error)


def translate(text: str, lang: str) -> str:
    """``text`` in ``lang``: a :class:`Sentence` with its parameters, a plain message
    through the catalogue (a text the catalogue does not hold stays as it is)."""
    if not text:
        return text  # gettext's empty message id is the catalogue's header
    if isinstance(text, Sentence):
        params = {name: _parameter(value, lang) for name, value in text.params.items()}
        return gettext(lang)(text.msgid) % params
    return gettext(lang)(text)


def number(value: float | int, digits: int = 3, lang: str = DEFAULT) -> str:
    """``value`` with ``digits`` decimals in the language's notation (``0,784``)."""
    pattern = "#,##0" + ("." + "0" * digits if digits > 0 else "")
    return str(format_decimal(value, format=pattern, locale=BABEL_LOCALES[lang]))


def compact(value: float | int, lang: str = DEFAULT) -> str:
    """``value`` as ``:g`` writes it (``0.5``, ``1e-06``) with the language's decimal mark
    (``0,5``): a parameter (epsilon, delta) shown as the user wrote it."""
    return f"{value:g}".replace(".", get_decimal_symbol(BABEL_LOCALES[lang]))
