"""The equity audit's attributes, groups and centre size bands in words, for the pages.

The audit keys its cells by schema names and codes (``home_language``, ``fr``,
``false``); a page shows them in its language through the catalogue. A name or value
that has no words here (a region's name, a new code) is shown as it is.
"""

from __future__ import annotations

from collections.abc import Callable

from common.equity.audit import UNKNOWN
from common.i18n.catalogue import N_, word

ATTRIBUTES: dict[str, str] = {
    "sex": N_("sex"),
    "ehdaa": N_("EHDAA (handicap, social maladjustment or learning difficulty)"),
    "indigenous": N_("Indigenous"),
    "immigrant_generation": N_("immigrant generation"),
    "home_language": N_("home language"),
    "imse_band": N_("school disadvantage (IMSE deciles)"),
    "region": N_("region"),
}
_YES_NO = {"false": N_("no"), "true": N_("yes")}
GROUPS: dict[str, dict[str, str]] = {
    "sex": {"F": N_("girls"), "M": N_("boys"), "X": N_("X (another or undeclared)")},
    "ehdaa": _YES_NO,
    "indigenous": _YES_NO,
    "immigrant_generation": {"0": N_("not immigrant"), "1": N_("first generation"),
                             "2": N_("second generation")},
    "home_language": {"fr": N_("French"), "en": N_("English"), "other": N_("another language")},
    "imse_band": {"1-3": N_("deciles 1-3 (least disadvantaged)"), "4-7": N_("deciles 4-7"),
                  "8-10": N_("deciles 8-10 (most disadvantaged)")},
}
SIZE_BANDS: dict[str, str] = {"small": N_("small centres"), "medium": N_("medium centres"),
                              "large": N_("large centres")}
_UNKNOWN = N_("unknown or withheld")


def attribute_words(gettext: Callable[[str], str]) -> Callable[[str], str]:
    """``attribute -> words`` in the language of ``gettext``."""
    return lambda name: gettext(ATTRIBUTES[name]) if name in ATTRIBUTES else name


def group_words(gettext: Callable[[str], str]) -> Callable[[object, str], str]:
    """``(value, attribute) -> words`` in the language of ``gettext``."""
    def words(value: object, attribute: str) -> str:
        text = str(value)
        if text == UNKNOWN:
            return gettext(_UNKNOWN)
        known = GROUPS.get(attribute, {})
        return gettext(known[text]) if text in known else text
    return words


def label_words(gettext: Callable[[str], str]) -> Callable[[object], str]:
    """A mapping key of a figure (a centre size band) in words; any other key as it is."""
    return lambda key: gettext(SIZE_BANDS[str(key)]) if str(key) in SIZE_BANDS else str(key)


def cell_words(gettext: Callable[[str], str]) -> Callable[[object], str]:
    """An audit cell ``attribute=value`` (a suppressed group) in words."""
    attribute, group = attribute_words(gettext), group_words(gettext)

    def words(cell: object) -> str:
        name, sep, value = str(cell).partition("=")
        return f"{attribute(name)} : {group(value, name)}" if sep else str(cell)
    return words


def cell_sentence(cell: object) -> str:
    """An audit cell ``attribute=value`` as a sentence kept with its words (translated
    where it is shown: a model card's note, recorded in its JSON); any other text as it
    is."""
    name, sep, value = str(cell).partition("=")
    if not sep:
        return str(cell)
    attribute = word(ATTRIBUTES[name]) if name in ATTRIBUTES else name
    known = GROUPS.get(name, {})
    group = (word(_UNKNOWN) if value == UNKNOWN
             else word(known[value]) if value in known else value)
    return N_("%(attribute)s: %(group)s", attribute=attribute, group=group)
