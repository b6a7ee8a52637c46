"""Words of the local support report, in French (default) and English.

Principle 5: the output is a support priority, never a label. No word here names a
student by an outcome ("décrocheur", "dropout", "at risk"), and nothing refers to
staff or to groups of students: the report is about supporting one student at a time.
A test checks the rendered report against a list of forbidden words.
"""

from __future__ import annotations

import math

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
        "yes": "yes",
        "no": "no",
    },
}

# Predictor names as the school team knows them.
PREDICTOR_NAMES: dict[str, dict[str, str]] = {
    "fr": {
        "grade_level": "Niveau",
        "age_grade_lag": "Retard scolaire",
        "ehdaa": "Plan d'intervention (EHDAA)",
        "home_language": "Langue parlée à la maison",
        "immigrant_generation": "Génération d'immigration",
        "imse_decile": "Milieu socio-économique de l'école (IMSE)",
        "sfr_decile": "Faible revenu, milieu de l'école (SFR)",
        "absence_rate": "Absences",
        "suspensions": "Suspensions cette année",
        "school_changes": "Changements d'école depuis la 1re secondaire",
        "grade_french": "Résultat en français",
        "grade_math": "Résultat en mathématiques",
        "grade_average": "Moyenne générale",
        "grade_trend": "Évolution de la moyenne",
        "failed_courses": "Cours non réussis l'an dernier",
        "grade_retentions": "Années reprises",
        "extracurricular": "Activité parascolaire",
        "qualification_path": "Parcours de formation axée sur l'emploi (FMS/FPT)",
    },
    "en": {
        "grade_level": "Level",
        "age_grade_lag": "Years behind the expected age",
        "ehdaa": "Intervention plan (EHDAA)",
        "home_language": "Language spoken at home",
        "immigrant_generation": "Immigration generation",
        "imse_decile": "School socio-economic setting (IMSE)",
        "sfr_decile": "School low-income setting (SFR)",
        "absence_rate": "Absences",
        "suspensions": "Suspensions this year",
        "school_changes": "School changes since secondary 1",
        "grade_french": "Language of instruction grade",
        "grade_math": "Mathematics grade",
        "grade_average": "Overall average",
        "grade_trend": "Change of the average",
        "failed_courses": "Courses not passed last year",
        "grade_retentions": "Grades repeated",
        "extracurricular": "Extracurricular activity",
        "qualification_path": "Work-oriented training path (FMS/FPT)",
    },
}

CATEGORY_VALUES: dict[str, dict[str, dict[str, str]]] = {
    "fr": {
        "home_language": {"fr": "français", "en": "anglais", "other": "autre langue"},
        "immigrant_generation": {
            "0": "troisième génération ou plus",
            "1": "première génération",
            "2": "deuxième génération",
        },
    },
    "en": {
        "home_language": {"fr": "French", "en": "English", "other": "another language"},
        "immigrant_generation": {
            "0": "third generation or more",
            "1": "first generation",
            "2": "second generation",
        },
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


def describe_value(predictor: str, value: object, lang: str) -> str:
    """A student's value of a predictor in words, with its unit."""
    words = TEXT[lang]
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if predictor in CATEGORY_VALUES[lang]:
        return CATEGORY_VALUES[lang][predictor].get(str(value), str(value))
    if predictor in ("ehdaa", "extracurricular", "qualification_path"):
        return words["yes"] if bool(value) else words["no"]
    number = float(value)  # type: ignore[arg-type]
    fr = lang == "fr"
    if predictor == "absence_rate":
        days = "des jours d'école" if fr else "of school days"
        return f"{_number(100 * number, lang)} % {days}"
    if predictor.startswith("grade_") and predictor not in ("grade_level", "grade_trend",
                                                          "grade_retentions"):
        return f"{_number(number, lang)}/100"
    if predictor == "grade_trend":
        sign = "+" if number > 0 else ""
        per_year = "points par année" if fr else "points a year"
        return f"{sign}{_number(number, lang, 1)} {per_year}"
    if predictor == "grade_level":
        return f"secondaire {int(number)}" if fr else f"secondary {int(number)}"
    if predictor == "age_grade_lag":
        unit = ("an" if number <= 1 else "ans") if fr else ("year" if number == 1 else "years")
        return f"{int(number)} {unit}"
    if predictor in ("imse_decile", "sfr_decile"):
        return f"rang décile {int(number)} sur 10" if fr else f"decile {int(number)} of 10"
    return _number(number, lang)


def describe_factor(predictor: str, value: object, lang: str) -> str:
    """``Name: value`` of one factor (French typography puts a space before the colon)."""
    separator = " : " if lang == "fr" else ": "
    return f"{PREDICTOR_NAMES[lang][predictor]}{separator}{describe_value(predictor, value, lang)}"
