"""The harmonised student record (one row per student and school year), as versioned code.

This module is the single source of truth for column names, types, ranges and
vocabularies. Encoding (``common.encoding``), validation of centre extracts
(``client``) and the synthetic generator (``simulations``) all read it; nothing
else may define a column. Change ``SCHEMA_VERSION`` with any change here.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from enum import StrEnum

SCHEMA_VERSION = "1.0.0"


class Kind(StrEnum):
    """How a column is typed and encoded."""

    NUMERIC = "numeric"  # int or float within [low, high]
    BOOLEAN = "boolean"
    CATEGORICAL = "categorical"  # one of a fixed vocabulary (strings)
    TEXT = "text"  # identifiers only


class Role(StrEnum):
    """What a column is for. Only predictors are ever fed to a model."""

    IDENTIFIER = "identifier"  # never a feature, never leaves the centre
    GOVERNANCE = "governance"  # consent
    LABEL = "label"
    PREDICTOR = "predictor"
    AUDIT = "audit"  # equity measurement only, not a predictor by default


@dataclass(frozen=True)
class Column:
    """One column of the harmonised record.

    ``low``/``high`` are the documented range of a numeric column (values outside it
    are invalid). ``scale_low``/``scale_high`` are the fixed bounds used to scale it
    to 0-1 for the model (values beyond them are clipped); they default to the range.
    """

    name: str
    kind: Kind
    role: Role
    description: str
    low: float | None = None
    high: float | None = None
    integer: bool = False
    vocabulary: tuple[str, ...] = ()
    required: bool = False
    nullable: bool = True
    scale_low: float | None = None
    scale_high: float | None = None

    @property
    def scaling(self) -> tuple[float, float]:
        """Fixed (low, high) used to scale a numeric column to 0-1."""
        low = self.scale_low if self.scale_low is not None else self.low
        high = self.scale_high if self.scale_high is not None else self.high
        assert low is not None and high is not None and high > low, self.name
        return float(low), float(high)


def _num(
    name: str,
    description: str,
    low: float,
    high: float,
    *,
    integer: bool = False,
    scale_high: float | None = None,
) -> Column:
    return Column(
        name,
        Kind.NUMERIC,
        Role.PREDICTOR,
        description,
        low=low,
        high=high,
        integer=integer,
        scale_high=scale_high,
    )


def _bool(name: str, description: str, role: Role = Role.PREDICTOR) -> Column:
    return Column(name, Kind.BOOLEAN, role, description)


def _cat(name: str, description: str, vocabulary: tuple[str, ...], role: Role) -> Column:
    return Column(name, Kind.CATEGORICAL, role, description, vocabulary=vocabulary)


COLUMNS: tuple[Column, ...] = (
    # Identifiers: local pseudonyms, never features, never sent anywhere.
    Column("student_id", Kind.TEXT, Role.IDENTIFIER, "local pseudonym, unique per extract",
           required=True, nullable=False),
    Column("school_id", Kind.TEXT, Role.IDENTIFIER, "local school code", required=True,
           nullable=False),
    Column("school_year", Kind.TEXT, Role.IDENTIFIER, "school year, e.g. 2023-2024",
           required=True, nullable=False),
    # Governance.
    Column("consent", Kind.BOOLEAN, Role.GOVERNANCE,
           "may this record be used for training and federated evaluation", required=True,
           nullable=False),
    # Label: official indicator 'sortie sans diplome ni qualification'; empty for
    # current students who are only scored.
    Column("left_without_diploma", Kind.BOOLEAN, Role.LABEL,
           "left secondary school without a diploma or qualification (empty: not yet known)"),
    # Predictors.
    _num("grade_level", "secondary level, 1-5", 1, 5, integer=True),
    _num("age_grade_lag", "years behind the expected age for the level, 0-3", 0, 3,
         integer=True),
    _bool("ehdaa", "student with a handicap or adjustment/learning difficulty (intervention plan)"),
    _cat("home_language", "language spoken at home", ("fr", "en", "other"), Role.PREDICTOR),
    _cat("immigrant_generation", "0: third generation or more, 1: first, 2: second",
         ("0", "1", "2"), Role.PREDICTOR),
    _num("imse_decile", "school socio-economic index (IMSE) decile, 10 = most disadvantaged",
         1, 10, integer=True),
    _num("sfr_decile", "school low-income index (SFR) decile, 10 = most disadvantaged", 1, 10,
         integer=True),
    _num("absence_rate", "share of school days absent, 0-1", 0.0, 1.0),
    _num("suspensions", "suspensions this year", 0, 365, integer=True, scale_high=10),
    _num("school_changes", "school changes since secondary 1", 0, 50, integer=True,
         scale_high=6),
    _num("grade_french", "French (or language of instruction) grade, 0-100", 0, 100),
    _num("grade_math", "mathematics grade, 0-100", 0, 100),
    _num("grade_average", "average grade over all subjects, 0-100", 0, 100),
    Column("grade_trend", Kind.NUMERIC, Role.PREDICTOR,
           "change of the average grade, points per year", low=-100, high=100,
           scale_low=-25, scale_high=25),
    _num("failed_courses", "courses failed last year", 0, 30, integer=True, scale_high=10),
    _num("grade_retentions", "times a grade was repeated", 0, 5, integer=True, scale_high=3),
    _bool("extracurricular", "takes part in an extracurricular activity"),
    _bool("qualification_path", "enrolled in a qualification path (FMS/FPT)"),
    # Audit-only attributes: measure equity, never predictors by default.
    _cat("sex", "sex as recorded by the school", ("F", "M", "X"), Role.AUDIT),
    _bool("indigenous", "self-declared Indigenous student", Role.AUDIT),
)

COLUMN_BY_NAME: dict[str, Column] = {column.name: column for column in COLUMNS}

PREDICTORS: tuple[str, ...] = tuple(c.name for c in COLUMNS if c.role is Role.PREDICTOR)
IDENTIFIERS: tuple[str, ...] = tuple(c.name for c in COLUMNS if c.role is Role.IDENTIFIER)
AUDIT_ATTRIBUTES: tuple[str, ...] = tuple(c.name for c in COLUMNS if c.role is Role.AUDIT)
LABEL = "left_without_diploma"
CONSENT = "consent"
STUDENT_ID = "student_id"

# Teacher and class data never enter the pipeline, whatever a policy says
# (principle 6: never a tool to watch teachers). The rule works on the *words* of a
# column name, so that any spelling of it is caught: see ``column_words`` and
# docs/DATA-INGESTION.md ("Teacher and class columns") for the rule and its exceptions.
TEACHER_WORDS = frozenset({
    "teacher", "teachers", "instructor", "instructors", "homeroom",
    "enseignant", "enseignante", "enseignants", "enseignantes",
    "prof", "profs", "professeur", "professeure", "professeurs", "professeures",
    "titulaire", "titulaires", "instructeur", "instructrice", "maitre", "maitresse",
})
_GROUP_WORDS = frozenset({"group", "groups", "groupe", "groupes", "grp"})
CLASS_WORDS = frozenset({"class", "classes", "classroom", "classrooms", "classe"}) | _GROUP_WORDS
# A word that names teacher or class data is refused unless the name also holds one of
# these qualifiers, which give it another, legitimate meaning: 'classe sociale' (social
# class), 'classe d'accueil' (the welcoming programme, a student attribute), 'groupe
# d'age', 'titulaire de l'autorite parentale' (the legal guardian), 'titulaire d'un
# diplome'. Kept short on purpose: an unknown compound is refused (principle 6 first),
# and a qualified name that also holds an identifier word ('classe_accueil_no': which
# welcoming class) is refused too.
LEGITIMATE_QUALIFIERS: dict[str, frozenset[str]] = {
    "class": frozenset({"social", "sociale", "accueil", "welcome"}),
    "group": frozenset({"age", "ages", "ethnic", "ethnique", "linguistique", "linguistic",
                        "language", "langue", "income", "revenu", "sanguin", "blood"}),
    "titulaire": frozenset({"autorite", "parentale", "parental", "parent", "parents",
                            "diplome", "permis"}),
}
# Short words glued to a teacher or class word in names written without separators
# ('teacherid', 'noclasse', 'nomprof'); any other glued text makes another word
# ('classement', 'profil', 'professionnel', 'groupage' stay allowed).
_AFFIXES = ("id", "no", "num", "numero", "nom", "name", "code", "cd", "nb")
_FAMILY = {
    **dict.fromkeys(CLASS_WORDS - _GROUP_WORDS, "class"),
    **dict.fromkeys(_GROUP_WORDS, "group"),
    **dict.fromkeys({"titulaire", "titulaires"}, "titulaire"),
}
_CAMEL = re.compile(  # between aB, at AbC's B, and between letters and digits
    r"(?<=[a-z])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])|(?<=[A-Za-z])(?=\d)|(?<=\d)(?=[A-Za-z])"
)
_NOT_ALNUM = re.compile(r"[^0-9a-z]+")
_ELISIONS = frozenset({"l", "d", "de", "du", "des", "la", "le", "les", "of", "the"})


def column_words(column_name: str) -> tuple[str, ...]:
    """The words of a column name: accents removed, camelCase and digits split, lower
    case, any other character a separator, French elisions and articles dropped.

    ``"Nom de l'enseignant"`` -> ``("nom", "enseignant")``; ``"TeacherID"`` ->
    ``("teacher", "id")``; ``"Groupe-repère"`` -> ``("groupe", "repere")``.
    """
    text = unicodedata.normalize("NFKD", str(column_name))
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    text = _CAMEL.sub(" ", text).lower()
    return tuple(w for w in _NOT_ALNUM.split(text) if w and w not in _ELISIONS)


def _forbidden_word(word: str) -> str | None:
    """The teacher or class word ``word`` is, or is glued to an identifier affix of."""
    words = TEACHER_WORDS | CLASS_WORDS
    if word in words:
        return word
    for affix in _AFFIXES:
        for stem in (word.removeprefix(affix), word.removesuffix(affix)):
            if stem != word and stem in words:
                return stem
    return None


def is_forbidden(column_name: str) -> bool:
    """True for teacher or class columns, which are refused everywhere, in any spelling.

    A name is refused when one of its words (``column_words``) is a teacher or class
    word (``TEACHER_WORDS``, ``CLASS_WORDS``), alone or glued to an identifier affix
    ('TeacherID', 'noclasse'), unless the name also holds one of that word's
    ``LEGITIMATE_QUALIFIERS`` ('classe sociale', 'groupe d'age') and no identifier
    word ('id', 'no', 'code', 'nom', ...).
    """
    words = column_words(column_name)
    for word in words:
        found = _forbidden_word(word)
        if found is None:
            continue
        qualifiers = LEGITIMATE_QUALIFIERS.get(_FAMILY.get(found, ""), frozenset())
        if found != word or set(_AFFIXES) & set(words) or not qualifiers & set(words):
            return True
    return False
