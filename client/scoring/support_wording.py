"""Words of the local support report, in French (default) and English.

Principle 5: the output is a support priority, never a label. No word here names a
student by an outcome ("décrocheur", "dropout", "at risk"), and nothing refers to
staff or to groups of students: the report is about supporting one student at a time.
A test checks the rendered report against a list of forbidden words.

What a predictor is called and how its values are written belong to its column in
``common.schema`` (``label``, ``unit``, ``value_labels``); this module holds the
report's own sentences and the languages' typography (decimal comma, plurals).
"""

from __future__ import annotations

import math

from common.schema import COLUMN_BY_NAME, Kind

LANGUAGES = ("fr", "en")

TEXT: dict[str, dict[str, str]] = {
    "fr": {
        "title": "Priorités de soutien : rapport local",
        "intro": (
            "Ce rapport aide l'équipe-école à repérer les élèves à qui offrir un soutien "
            "en priorité. Il conseille le jugement professionnel ; il ne le remplace pas. "
            "Un niveau de priorité n'est ni une étiquette ni une décision, et ce rapport "
            "ne sert jamais à évaluer le personnel ni les écoles."
        ),
        "local": (
            "Produit et conservé au centre : aucun renseignement de ce rapport n'est "
            "transmis au ministère ni ailleurs. Les pseudonymes restent locaux."
        ),
        "levels_heading": "Niveaux de priorité de soutien",
        "thresholds": (
            "Seuils fixés par le centre (politique du site) : priorité élevée à partir "
            "d'une probabilité estimée de {high}, modérée à partir de {moderate}."
        ),
        "students": "élèves",
        "how_heading": "Comment lire les facteurs",
        "how": (
            "Les facteurs viennent d'une méthode d'attribution (gradients intégrés) : ils "
            "disent ce qui, dans le dossier de l'élève, a le plus augmenté ou diminué la "
            "priorité par rapport à un élève de référence typique. Ce sont des pistes de "
            "soutien, pas des causes. Une information absente n'est jamais un facteur."
        ),
        "no_explain": "Facteurs non calculés pour ce rapport (option --no-explain).",
        "student": "Élève (pseudonyme)",
        "school": "École",
        "year": "Année scolaire",
        "level": "Priorité",
        "raising": "Ce qui augmente la priorité de soutien",
        "protective": "Points d'appui (facteurs de protection)",
        "none": "aucun facteur marqué",
        "show_low": "Afficher les élèves de priorité faible ({count})",
        "low_in_csv": "Trop nombreux pour cette page : ils figurent dans {csv}.",
        "generated": "Produit le {date} avec le modèle {model} (empreinte SHA-256).",
        "high": "Priorité de soutien élevée",
        "moderate": "Priorité de soutien modérée",
        "low": "Priorité de soutien faible",
        "left_out_one": (
            "{count} élève sur les {read} de l'extraction n'a pas de priorité : sa ligne a "
            "une valeur invalide. Le service informatique du centre en trouve la ligne dans "
            "{csv}, pour la corriger."
        ),
        "left_out_many": (
            "{count} élèves sur les {read} de l'extraction n'ont pas de priorité : leur "
            "ligne a une valeur invalide. Le service informatique du centre en trouve la "
            "liste dans {csv}, pour les corriger."
        ),
        "yes": "oui",
        "no": "non",
    },
    "en": {
        "title": "Support priorities: local report",
        "intro": (
            "This report helps the school team see which students to offer support to "
            "first. It advises professional judgement; it does not replace it. A priority "
            "level is neither a label nor a decision, and this report is never used to "
            "evaluate staff or schools."
        ),
        "local": (
            "Produced and kept at the centre: nothing in this report is sent to the "
            "ministry or anywhere else. Pseudonyms stay local."
        ),
        "levels_heading": "Support-priority levels",
        "thresholds": (
            "Thresholds set by the centre (site policy): high priority from an estimated "
            "probability of {high}, moderate from {moderate}."
        ),
        "students": "students",
        "how_heading": "How to read the factors",
        "how": (
            "The factors come from an attribution method (Integrated Gradients): they say "
            "what in the student's record raised or lowered the priority most, compared "
            "with a typical reference student. They are leads for support, not causes. "
            "Missing information is never a factor."
        ),
        "no_explain": "Factors not computed for this report (--no-explain).",
        "student": "Student (pseudonym)",
        "school": "School",
        "year": "School year",
        "level": "Priority",
        "raising": "What raises the support priority",
        "protective": "Strengths (protective factors)",
        "none": "no marked factor",
        "show_low": "Show low-priority students ({count})",
        "low_in_csv": "Too many for this page: they are listed in {csv}.",
        "generated": "Produced on {date} with model {model} (SHA-256 fingerprint).",
        "high": "High support priority",
        "moderate": "Moderate support priority",
        "low": "Low support priority",
        "left_out_one": (
            "{count} of the {read} students of the extract has no priority: their row has "
            "an invalid value. The centre's IT finds the row in {csv}, to correct it."
        ),
        "left_out_many": (
            "{count} of the {read} students of the extract have no priority: their rows "
            "have an invalid value. The centre's IT finds the list in {csv}, to correct "
            "them."
        ),
        "yes": "yes",
        "no": "no",
    },
}

FORBIDDEN_WORDS = (
    "décrocheur",
    "décrocheuse",
    "dropout",
    "drop-out",
    "at risk",
    "at-risk",
    "à risque",
    "enseignant",
    "teacher",
)


def _number(value: float, lang: str, decimals: int = 0) -> str:
    text = f"{value:.{decimals}f}"
    return text.replace(".", ",") if lang == "fr" else text


def _plural(number: float, lang: str) -> bool:
    """French writes 0 and 1 in the singular ("0 an", "1 an"), English only 1."""
    return abs(number) >= 2 if lang == "fr" else number != 1


def describe_value(predictor: str, value: object, lang: str) -> str:
    """A student's value of a predictor in words, as the schema's column says to write
    it (``Column.unit``, ``Column.value_labels``; a boolean is yes or no)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    column = COLUMN_BY_NAME[predictor]
    if column.kind is Kind.CATEGORICAL:
        words = column.value_label(value)
        return words.of(lang) if words is not None else str(value)
    if column.kind is Kind.BOOLEAN:
        return TEXT[lang]["yes"] if bool(value) else TEXT[lang]["no"]
    assert column.unit is not None, f"{predictor} has no unit (common.schema.reader_gaps)"
    unit, number = column.unit, float(value)  # type: ignore[arg-type]
    shown = 100 * number if unit.percent else number
    sign = "+" if unit.signed and number > 0 else ""
    text = sign + _number(shown, lang, unit.decimals)
    return unit.template(lang, _plural(number, lang)).format(n=text)


def predictor_name(predictor: str, lang: str) -> str:
    """The predictor's name as the school team knows it (``Column.label``)."""
    label = COLUMN_BY_NAME[predictor].label
    assert label is not None, f"{predictor} has no label (common.schema.reader_gaps)"
    return label.of(lang)


def describe_factor(predictor: str, value: object, lang: str) -> str:
    """``Name: value`` of one factor (French typography puts a space before the colon)."""
    separator = " : " if lang == "fr" else ": "
    return f"{predictor_name(predictor, lang)}{separator}{describe_value(predictor, value, lang)}"
