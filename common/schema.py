"""The harmonised student record (one row per student and school year), as versioned code.

This module is the single source of truth for column names, types, ranges and
vocabularies, and for what a predictor is to a reader: its name in French and English,
how its values are written (unit, vocabulary words) and its reference value (the
typical student that explanations compare with). Encoding (``common.encoding``),
validation of centre extracts (``client``), the support report's wording and the
explanations (``client``) and the synthetic generator (``simulations``) all read it;
nothing else may define a column. A predictor that lacks a reader's part is listed by
``reader_gaps`` (and fails a test). Change ``SCHEMA_VERSION`` with any change to the
record (names, kinds, ranges, vocabularies, roles).
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


Reference = bool | int | float | str  # a value of a column, in its schema type


@dataclass(frozen=True)
class Words:
    """A short text for a reader, in French (read first in Québec) and English."""

    fr: str
    en: str

    def of(self, lang: str) -> str:
        """The text in ``lang`` ("fr" or "en")."""
        text: str = getattr(self, lang)
        return text


@dataclass(frozen=True)
class Unit:
    """How a reader sees a number of a numeric column, in French and English.

    ``fr``/``en`` are templates in which ``{n}`` is the number, written with ``decimals``
    decimals in the language's typography; ``fr_plural``/``en_plural`` replace them when
    the number is plural in that language (empty: the words do not change). ``percent``
    writes a 0-1 share as a percentage; ``signed`` puts a plus before a positive number.
    """

    fr: str = "{n}"
    en: str = "{n}"
    fr_plural: str = ""
    en_plural: str = ""
    decimals: int = 0
    percent: bool = False
    signed: bool = False

    def template(self, lang: str, plural: bool) -> str:
        """The template for ``lang``, in its plural form when ``plural`` and there is one."""
        text: str = getattr(self, f"{lang}_plural") if plural else ""
        return text or str(getattr(self, lang))


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

    What a predictor is to a reader (see ``reader_gaps``): ``label``, its name as the
    school team knows it; ``unit``, how a number is written (numeric columns; a boolean
    reads yes/no, a categorical value by its ``value_labels``, one per ``vocabulary``
    entry, in order); ``reference``, the value of the reference student, typical and
    the same everywhere, that explanations (``client.scoring.explain``) measure from and the
    generator's dropout log-odds are centred on.
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
    label: Words | None = None
    unit: Unit | None = None
    value_labels: tuple[Words, ...] = ()
    reference: Reference | None = None

    @property
    def scaling(self) -> tuple[float, float]:
        """Fixed (low, high) used to scale a numeric column to 0-1."""
        low = self.scale_low if self.scale_low is not None else self.low
        high = self.scale_high if self.scale_high is not None else self.high
        assert low is not None and high is not None and high > low, self.name
        return float(low), float(high)

    def value_label(self, value: object) -> Words | None:
        """The reader's words for a categorical ``value`` (None when it has none)."""
        labels = dict(zip(self.vocabulary, self.value_labels, strict=False))
        return labels.get(str(value))


def _num(
    name: str,
    description: str,
    low: float,
    high: float,
    label: Words,
    unit: Unit,
    reference: int | float,
    *,
    integer: bool = False,
    scale_low: float | None = None,
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
        scale_low=scale_low,
        scale_high=scale_high,
        label=label,
        unit=unit,
        reference=reference,
    )


def _bool(
    name: str,
    description: str,
    label: Words | None = None,
    reference: bool | None = None,
    role: Role = Role.PREDICTOR,
) -> Column:
    return Column(name, Kind.BOOLEAN, role, description, label=label, reference=reference)


def _cat(
    name: str,
    description: str,
    vocabulary: tuple[str, ...],
    role: Role,
    value_labels: tuple[Words, ...] = (),
    label: Words | None = None,
    reference: str | None = None,
) -> Column:
    return Column(name, Kind.CATEGORICAL, role, description, vocabulary=vocabulary,
                  value_labels=value_labels, label=label, reference=reference)


# How numbers are written, shared by several columns.
COUNT = Unit()
GRADE = Unit("{n}/100", "{n}/100")
DECILE = Unit("rang décile {n} sur 10", "decile {n} of 10")

# The reference student (``Column.reference``): middle of secondary, no lag, no plan, no
# suspension, grades near the Québec averages, no trend; docs/TRANSPARENCY.md says why.
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
    # Predictors: record, then reader (name, unit, reference value).
    _num("grade_level", "secondary level, 1-5", 1, 5,
         Words("Niveau", "Level"), Unit("secondaire {n}", "secondary {n}"), 3, integer=True),
    _num("age_grade_lag", "years behind the expected age for the level, 0-3", 0, 3,
         Words("Retard scolaire", "Years behind the expected age"),
         Unit("{n} an", "{n} year", fr_plural="{n} ans", en_plural="{n} years"), 0,
         integer=True),
    _bool("ehdaa", "student with a handicap or adjustment/learning difficulty (intervention plan)",
          Words("Plan d'intervention (EHDAA)", "Intervention plan (EHDAA)"), False),
    _cat("home_language", "language spoken at home", ("fr", "en", "other"), Role.PREDICTOR,
         (Words("français", "French"), Words("anglais", "English"),
          Words("autre langue", "another language")),
         Words("Langue parlée à la maison", "Language spoken at home"), "fr"),
    _cat("immigrant_generation", "0: third generation or more, 1: first, 2: second",
         ("0", "1", "2"), Role.PREDICTOR,
         (Words("troisième génération ou plus", "third generation or more"),
          Words("première génération", "first generation"),
          Words("deuxième génération", "second generation")),
         Words("Génération d'immigration", "Immigration generation"), "0"),
    _num("imse_decile", "school socio-economic index (IMSE) decile, 10 = most disadvantaged",
         1, 10, Words("Milieu socio-économique de l'école (IMSE)",
                      "School socio-economic setting (IMSE)"), DECILE, 5, integer=True),
    _num("sfr_decile", "school low-income index (SFR) decile, 10 = most disadvantaged", 1, 10,
         Words("Faible revenu, milieu de l'école (SFR)", "School low-income setting (SFR)"),
         DECILE, 5, integer=True),
    _num("absence_rate", "share of school days absent, 0-1", 0.0, 1.0,
         Words("Absences", "Absences"),
         Unit("{n} % des jours d'école", "{n} % of school days", percent=True), 0.05),
    _num("suspensions", "suspensions this year", 0, 365,
         Words("Suspensions cette année", "Suspensions this year"), COUNT, 0, integer=True,
         scale_high=10),
    _num("school_changes", "school changes since secondary 1", 0, 50,
         Words("Changements d'école depuis la 1re secondaire",
               "School changes since secondary 1"), COUNT, 0, integer=True, scale_high=6),
    _num("grade_french", "French (or language of instruction) grade, 0-100", 0, 100,
         Words("Résultat en français", "Language of instruction grade"), GRADE, 74.0),
    _num("grade_math", "mathematics grade, 0-100", 0, 100,
         Words("Résultat en mathématiques", "Mathematics grade"), GRADE, 72.0),
    _num("grade_average", "average grade over all subjects, 0-100", 0, 100,
         Words("Moyenne générale", "Overall average"), GRADE, 74.0),
    _num("grade_trend", "change of the average grade, points per year", -100, 100,
         Words("Évolution de la moyenne", "Change of the average"),
         Unit("{n} points par année", "{n} points a year", decimals=1, signed=True), 0.0,
         scale_low=-25, scale_high=25),
    _num("failed_courses", "courses failed last year", 0, 30,
         Words("Cours non réussis l'an dernier", "Courses not passed last year"), COUNT, 0,
         integer=True, scale_high=10),
    _num("grade_retentions", "times a grade was repeated", 0, 5,
         Words("Années reprises", "Grades repeated"), COUNT, 0, integer=True, scale_high=3),
    _bool("extracurricular", "takes part in an extracurricular activity",
          Words("Activité parascolaire", "Extracurricular activity"), False),
    _bool("qualification_path", "enrolled in a qualification path (FMS/FPT)",
          Words("Parcours de formation axée sur l'emploi (FMS/FPT)",
                "Work-oriented training path (FMS/FPT)"), False),
    # Audit-only attributes: measure equity, never predictors by default.
    _cat("sex", "sex as recorded by the school", ("F", "M", "X"), Role.AUDIT),
    _bool("indigenous", "self-declared Indigenous student", role=Role.AUDIT),
)

COLUMN_BY_NAME: dict[str, Column] = {column.name: column for column in COLUMNS}

PREDICTORS: tuple[str, ...] = tuple(c.name for c in COLUMNS if c.role is Role.PREDICTOR)
IDENTIFIERS: tuple[str, ...] = tuple(c.name for c in COLUMNS if c.role is Role.IDENTIFIER)
AUDIT_ATTRIBUTES: tuple[str, ...] = tuple(c.name for c in COLUMNS if c.role is Role.AUDIT)
LABEL = "left_without_diploma"
CONSENT = "consent"
STUDENT_ID = "student_id"


def reader_gaps(column: Column) -> list[str]:
    """What a predictor lacks for a reader, one phrase each (empty when it lacks nothing).

    A predictor needs a name in French and English (``label``), a reference value of its
    type within its range or vocabulary (``reference``); a numeric one a ``unit`` whose
    templates hold ``{n}``; a categorical one French and English words for every
    vocabulary value (``value_labels``). Other columns are never shown: nothing lacks.
    """
    if column.role is not Role.PREDICTOR:
        return []
    gaps = []
    if column.label is None or not (column.label.fr and column.label.en):
        gaps.append("a name in French and English (label)")
    unit = column.unit
    if column.kind is Kind.NUMERIC and (unit is None or any(
            "{n}" not in text
            for text in (unit.fr, unit.en, unit.fr_plural or "{n}", unit.en_plural or "{n}"))):
        gaps.append("a unit whose French and English templates hold {n} (unit)")
    if column.kind is Kind.CATEGORICAL and (
            len(column.value_labels) != len(column.vocabulary)
            or not all(words.fr and words.en for words in column.value_labels)):
        gaps.append("French and English words for every vocabulary value (value_labels)")
    if not _valid_reference(column):
        gaps.append("a reference value of its type, in its range or vocabulary (reference)")
    return gaps


def _valid_reference(column: Column) -> bool:
    value = column.reference
    if column.kind is Kind.BOOLEAN:
        return isinstance(value, bool)
    if column.kind is Kind.CATEGORICAL:
        return isinstance(value, str) and value in column.vocabulary
    if not isinstance(value, int | float) or isinstance(value, bool):
        return False
    assert column.low is not None and column.high is not None, column.name
    return column.low <= value <= column.high and (not column.integer or float(value).is_integer())

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
