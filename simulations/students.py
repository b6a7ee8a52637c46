"""The students of one synthetic centre, as harmonised records.

A student's background (sex, school, socio-economic index, language, immigrant
generation, EHDAA status, family circumstances) shapes a latent academic engagement
and a latent momentum (how this year is going). Grades, absences, failed courses,
retentions, suspensions and extracurricular activity are noisy views of them, so they
are correlated as in administrative data. The dropout log-odds are linear in the
observed predictors (on the scale the model sees, away from the schema's reference
student) plus an unobserved part (sex, family, chance), and each centre's intercept is
solved so that its mean rate equals its base rate. The unobserved part keeps the signal
realistic: a centralised model reaches an AUC of about 0.8, not 0.95. Types,
vocabularies, bounds and reference values come from ``common.schema``; this module
holds only distributions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from common.schema import COLUMN_BY_NAME, COLUMNS, LABEL, Kind
from simulations.centres import PROFILES, CentreProfile

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
Values = dict[str, npt.NDArray[np.generic]]  # one array a predictor, schema types

SCHOOL_YEAR = "2024-2025"
STUDENTS_PER_SCHOOL = 900  # a typical urban public secondary school
LEVEL_SHARES = (0.215, 0.21, 0.20, 0.195, 0.18)  # secondary 1-5: cohorts thin out
BOY_SHARE = 0.512
SEX_X_SHARE = 0.002
SCHOOL_DISADVANTAGE_SD = 0.75  # spread of a centre's schools, standard units
NO_ACTIVITY_RECORD_SHARE = 0.05  # schools that do not record extracurricular activity

# The IMSE deciles are taken against the student-weighted distribution of school
# disadvantage over the full network, so each decile holds about 10 % of students.
_SIZES = np.array([p.size for p in PROFILES], dtype=np.float64)
_MEANS = np.array([p.disadvantage for p in PROFILES], dtype=np.float64)
DISADVANTAGE_MEAN = float(np.average(_MEANS, weights=_SIZES))
DISADVANTAGE_SD = math.sqrt(
    float(np.average((_MEANS - DISADVANTAGE_MEAN) ** 2, weights=_SIZES))
    + SCHOOL_DISADVANTAGE_SD**2
)

# Dropout log-odds per unit of each observed predictor (grade points, absence share
# 0-1, counts, years, deciles) away from the schema's reference student
# (``Column.reference``); a categorical value by its encoded name ("name=value"). Values
# are clipped where the encoding clips them (``Column.scaling``), so the log-odds stay
# linear in what the model sees.
DROPOUT_LOG_ODDS: dict[str, float] = {
    "grade_average": -0.045,
    "grade_french": -0.01,
    "grade_math": -0.01,
    "absence_rate": 5.0,
    "failed_courses": 0.22,
    "grade_retentions": 0.35,
    "age_grade_lag": 0.35,
    "grade_trend": -0.035,
    "suspensions": 0.15,
    "school_changes": 0.15,
    "ehdaa": 0.55,
    "imse_decile": 0.06,
    "extracurricular": -0.3,
    "qualification_path": -0.6,
    "grade_level": -0.05,
    "immigrant_generation=1": 0.25,
    "immigrant_generation=2": -0.2,
}
# Log-odds of what no model sees: being a boy and Indigenous identity (audit only),
# family disadvantage (per standard unit) and the rest (standard deviation).
BOY_LOG_ODDS = 0.40
INDIGENOUS_LOG_ODDS = 0.30
FAMILY_LOG_ODDS = 0.40
UNOBSERVED_SD = 1.0


@dataclass(frozen=True)
class Background:
    """Who a centre's students are (one entry per student).

    ``sex`` and ``language`` and ``generation`` are indexes into the schema's
    vocabularies; ``family`` is the unrecorded family disadvantage (standard units).
    """

    sex: IntArray
    level: IntArray
    school: IntArray
    imse: IntArray
    sfr: IntArray
    activity_recorded: BoolArray
    generation: IntArray
    language: IntArray
    indigenous: BoolArray
    ehdaa: BoolArray
    family: FloatArray

    @property
    def boy(self) -> BoolArray:
        """True for boys (the schema's "M")."""
        return np.asarray(self.sex == 1)


def sigmoid(x: FloatArray) -> FloatArray:
    """Logistic function, elementwise."""
    return np.asarray(1.0 / (1.0 + np.exp(-x)), dtype=np.float64)


def _deciles(disadvantage: FloatArray) -> IntArray:
    """IMSE-like deciles (1-10, 10 = most disadvantaged) of school disadvantage."""
    z = (disadvantage - DISADVANTAGE_MEAN) / DISADVANTAGE_SD
    quantile = np.array([0.5 * (1.0 + math.erf(v / math.sqrt(2.0))) for v in z])
    return np.clip(np.ceil(quantile * 10.0), 1, 10).astype(np.int64)


def _home_language(profile: CentreProfile, generation: IntArray,
                   rng: np.random.Generator) -> IntArray:
    """Home language codes (0 fr, 1 en, 2 other): newcomers speak another language most."""
    other = np.select([generation == 1, generation == 2], [0.65, 0.45], profile.other_home_share)
    english_of_rest = profile.english_home_share / (1.0 - profile.other_home_share)
    u = rng.random(len(generation))
    english = u < other + (1.0 - other) * english_of_rest
    return np.where(u < other, 2, np.where(english, 1, 0)).astype(np.int64)


def draw_background(profile: CentreProfile, n: int, rng: np.random.Generator, *,
                    enrolment: int | None = None) -> Background:
    """Draw the background of ``n`` students of a centre whose schools enrol
    ``enrolment`` students (default ``n``; more students are drawn at once when the
    later years' entrants must attend the same schools, ``simulations.school_years``)."""
    u = rng.random(n)
    sex = np.where(u < SEX_X_SHARE, 2, np.where(u < SEX_X_SHARE + BOY_SHARE, 1, 0))
    level = rng.choice(np.arange(1, 6), size=n, p=np.array(LEVEL_SHARES) / sum(LEVEL_SHARES))
    # Rural centres run several small schools, so a centre has at least two.
    schools = 2 + round((n if enrolment is None else enrolment) / STUDENTS_PER_SCHOOL)
    weights = rng.gamma(4.0, size=schools)
    school = rng.choice(schools, size=n, p=weights / weights.sum())
    disadvantage = profile.disadvantage + SCHOOL_DISADVANTAGE_SD * rng.standard_normal(schools)
    imse = _deciles(disadvantage)
    # SFR and IMSE rank schools by close but different measures of low income.
    sfr = np.clip(imse + np.rint(1.2 * rng.standard_normal(schools)), 1, 10).astype(np.int64)
    activity_recorded = rng.random(schools) >= NO_ACTIVITY_RECORD_SHARE
    standard = (disadvantage[school] - DISADVANTAGE_MEAN) / DISADVANTAGE_SD

    first, second = profile.immigrant_shares
    generation = rng.choice(3, size=n, p=[1.0 - first - second, first, second])
    language = _home_language(profile, generation, rng)
    indigenous = rng.random(n) < profile.indigenous_share
    boy = sex == 1
    # About a third of students have an intervention plan, boys more often.
    ehdaa = rng.random(n) < sigmoid(-1.0 + 0.6 * boy + 0.35 * standard + 0.3 * indigenous)
    # Family disadvantage: partly the school's, mostly the family's own; never recorded.
    family = 0.45 * standard + math.sqrt(1.0 - 0.45**2) * rng.standard_normal(n)
    return Background(sex.astype(np.int64), level.astype(np.int64), school.astype(np.int64),
                      imse[school], sfr[school], activity_recorded[school],
                      generation.astype(np.int64), language, indigenous, ehdaa, family)


def _poisson(rng: np.random.Generator, log_mean: FloatArray, cap: int) -> IntArray:
    return np.minimum(rng.poisson(np.exp(log_mean)), cap).astype(np.int64)


def draw_engagement(background: Background, rng: np.random.Generator) -> FloatArray:
    """Each student's latent academic engagement (standard units): who they are, not
    how this year goes, so it stays with them from year to year."""
    b = background
    boy, newcomer = b.boy.astype(np.float64), (b.generation == 1).astype(np.float64)
    return np.asarray(-0.25 * boy - 0.7 * b.ehdaa - 0.35 * b.family - 0.25 * b.indigenous
                      + 0.1 * (b.generation == 2) - 0.1 * newcomer
                      + rng.standard_normal(len(b.sex)), dtype=np.float64)


def draw_record(background: Background, rng: np.random.Generator,
                engagement: FloatArray | None = None) -> dict[str, FloatArray]:
    """Draw the school record (true values, before any is missing) from engagement.

    ``engagement`` (from ``draw_engagement``) is drawn here when not given. Returns the
    predictors that engagement shapes, keyed by schema column name, as floats in their
    schema units.
    """
    b = background
    n = len(b.sex)
    boy, girl = b.boy.astype(np.float64), (b.sex == 0).astype(np.float64)
    newcomer = (b.generation == 1).astype(np.float64)
    if engagement is None:
        engagement = draw_engagement(b, rng)
    momentum = rng.standard_normal(n)
    # Grading practices differ between schools (a school's grades are a little lenient
    # or severe), one reason grades are not comparable across centres.
    grading = 1.5 * rng.standard_normal(int(b.school.max()) + 1)[b.school]
    average = 73.0 + 8.0 * engagement + 2.0 * momentum + grading + 4.0 * rng.standard_normal(n)
    french = (average + 2.5 * girl - 1.5 * boy - 4.0 * newcomer * (b.language == 2)
              + 5.0 * rng.standard_normal(n))
    math_grade = average + 1.0 * boy + 7.0 * rng.standard_normal(n)
    retentions = _poisson(rng, -3.3 - 0.9 * engagement + 0.3 * b.ehdaa, 5)
    late_entry = rng.random(n) < np.where(newcomer > 0, 0.06, 0.005)
    lag = np.minimum(retentions + late_entry, 3)
    qualification = (b.level >= 2) & (
        rng.random(n) < sigmoid(-5.2 - 1.2 * engagement + 0.9 * lag + 0.8 * b.ehdaa))
    return {
        "grade_average": np.round(np.clip(average, 0, 100), 1),
        "grade_french": np.round(np.clip(french, 0, 100), 1),
        "grade_math": np.round(np.clip(math_grade, 0, 100), 1),
        "grade_trend": np.round(3.5 * momentum + 3.0 * rng.standard_normal(n), 1),
        "absence_rate": np.round(sigmoid(-3.0 - 0.55 * engagement - 0.3 * momentum
                                         + 0.25 * b.family + 0.5 * rng.standard_normal(n)), 3),
        "failed_courses": _poisson(rng, -1.5 - 1.0 * engagement - 0.35 * momentum, 30)
        .astype(np.float64),
        "grade_retentions": retentions.astype(np.float64),
        "age_grade_lag": lag.astype(np.float64),
        "suspensions": _poisson(rng, -2.8 - 0.6 * engagement + 0.6 * boy, 365).astype(np.float64),
        "school_changes": _poisson(rng, -1.6 - 0.25 * engagement + 0.7 * newcomer
                                   + 0.12 * (b.level - 1) + 0.2 * b.family, 50)
        .astype(np.float64),
        "extracurricular": (rng.random(n) < sigmoid(-0.1 + 0.7 * engagement - 0.2 * b.family))
        .astype(np.float64),
        "qualification_path": qualification.astype(np.float64),
    }


def background_predictors(background: Background) -> Values:
    """The predictors a student's background sets, keyed by schema column name, in their
    schema types (categorical values from the vocabularies)."""
    b = background
    return {
        "grade_level": b.level,
        "ehdaa": b.ehdaa,
        "home_language": _vocabulary_values("home_language", b.language),
        "immigrant_generation": _vocabulary_values("immigrant_generation", b.generation),
        "imse_decile": b.imse,
        "sfr_decile": b.sfr,
    }


def observed_from_reference(feature: str, values: Values) -> FloatArray:
    """One observed predictor (or categorical value, "name=value") as the log-odds read
    it: its value minus the reference student's, on the scale the model sees."""
    name, _, category = feature.partition("=")
    column, raw = COLUMN_BY_NAME[name], values[name]
    if column.kind is Kind.CATEGORICAL:
        shifted = (raw == category).astype(np.float64) - float(column.reference == category)
    elif column.kind is Kind.BOOLEAN:
        shifted = raw.astype(np.float64) - float(bool(column.reference))
    else:
        low, high = column.scaling
        reference = float(column.reference)  # type: ignore[arg-type]
        shifted = np.clip(raw.astype(np.float64), low, high) - reference
    return np.asarray(shifted, dtype=np.float64)


def dropout_log_odds(background: Background, record: dict[str, FloatArray],
                     rng: np.random.Generator) -> FloatArray:
    """Dropout log-odds of each student, without the centre's intercept."""
    b = background
    values: Values = {**background_predictors(b), **record}
    log_odds = sum(weight * observed_from_reference(feature, values)
                   for feature, weight in DROPOUT_LOG_ODDS.items())
    unobserved = (BOY_LOG_ODDS * b.boy + INDIGENOUS_LOG_ODDS * b.indigenous
                  + FAMILY_LOG_ODDS * b.family + UNOBSERVED_SD * rng.standard_normal(len(b.sex)))
    return np.asarray(log_odds + unobserved, dtype=np.float64)


def solve_intercept(log_odds: FloatArray, base_rate: float, *, iterations: int = 60) -> float:
    """The intercept (log-odds) that makes the mean dropout probability ``base_rate`` (0-1).

    Bisection: the mean probability increases with the intercept, so halving the
    bracket 60 times pins it far below sampling noise.
    """
    if not 0.0 < base_rate < 1.0:
        raise ValueError(f"base_rate must be strictly between 0 and 1, got {base_rate}.")
    low, high = -30.0, 30.0
    for _ in range(iterations):
        middle = 0.5 * (low + high)
        if float(np.mean(sigmoid(middle + log_odds))) < base_rate:
            low = middle
        else:
            high = middle
    return 0.5 * (low + high)


def missing_masks(background: Background, record: dict[str, FloatArray],
                   rng: np.random.Generator) -> dict[str, BoolArray]:
    """Which recorded values are missing; missingness follows the reasons it has."""
    n = len(background.sex)
    moved = (record["school_changes"] > 0) | (background.generation == 1)
    # No grade for students who missed most evaluations.
    ungraded = rng.random(n) < 0.005 + 0.5 * (record["absence_rate"] > 0.25)
    return {
        # A trend needs last year's grades, often not received for newcomers and movers.
        "grade_trend": rng.random(n) < 0.02 + 0.15 * moved,
        "extracurricular": ~background.activity_recorded | (rng.random(n) < 0.02),
        "grade_french": ungraded | (rng.random(n) < 0.005),
        "grade_math": ungraded | (rng.random(n) < 0.005),
    }


def _vocabulary_values(name: str, codes: IntArray) -> npt.NDArray[np.str_]:
    return np.array(COLUMN_BY_NAME[name].vocabulary)[codes]


def _nullable_boolean(values: BoolArray, missing: BoolArray) -> pd.arrays.BooleanArray:
    return pd.arrays.BooleanArray(values.astype(np.bool_), missing.astype(np.bool_))


def _record_columns(record: Values, missing: dict[str, BoolArray]) -> dict[str, object]:
    """The predictors' columns in their schema types; missing values as NaN or NA."""
    columns: dict[str, object] = {}
    for name, values in record.items():
        column = COLUMN_BY_NAME[name]
        if column.kind is Kind.BOOLEAN and name in missing:
            columns[name] = _nullable_boolean(values.astype(np.float64) > 0.5, missing[name])
        elif column.kind is Kind.BOOLEAN:
            columns[name] = values.astype(np.float64) > 0.5
        elif name in missing:
            columns[name] = np.where(missing[name], np.nan, values)
        else:
            columns[name] = values.astype(np.int64) if column.integer else values
    return columns


def centre_frame(profile: CentreProfile, n: int, rng: np.random.Generator, *,
                 consent_refusal_rate: float, unlabelled_rate: float) -> pd.DataFrame:
    """``n`` harmonised records of a centre, columns in ``common.schema.COLUMNS`` order.

    Dropout is drawn with the centre's intercept solved for its ``base_rate``; then a
    share ``consent_refusal_rate`` (0-1) of records refuse consent and a share
    ``unlabelled_rate`` (0-1) lose their label (current students, scored only).
    """
    background = draw_background(profile, n, rng)
    record = draw_record(background, rng)
    log_odds = dropout_log_odds(background, record, rng)
    intercept = solve_intercept(log_odds, profile.base_rate)
    dropout = rng.random(n) < sigmoid(intercept + log_odds)
    missing = missing_masks(background, record, rng)
    consent = rng.random(n) >= consent_refusal_rate
    unlabelled = rng.random(n) < unlabelled_rate
    return harmonised_frame(profile.centre_id, np.arange(n), background, record, missing,
                            consent=consent, dropout=dropout, unlabelled=unlabelled,
                            school_year=SCHOOL_YEAR)


def harmonised_frame(centre_id: str, numbers: IntArray, background: Background,
                     record: dict[str, FloatArray], missing: dict[str, BoolArray], *,
                     consent: BoolArray, dropout: BoolArray, unlabelled: BoolArray,
                     school_year: str) -> pd.DataFrame:
    """Harmonised records (``common.schema.COLUMNS`` order) of students numbered
    ``numbers`` in the centre (their pseudonym is ``<centre_id>-<number>``), with the
    label ``dropout`` missing where ``unlabelled``. Draws nothing."""
    predictors: Values = {**background_predictors(background), **record}
    number = pd.Series(numbers).astype("str").str.zfill(6)
    school = pd.Series(background.school + 1).astype("str").str.zfill(2)
    columns: dict[str, object] = {
        "student_id": f"{centre_id}-" + number,
        "school_id": f"{centre_id}-s" + school,
        "school_year": school_year,
        "consent": consent,
        LABEL: _nullable_boolean(dropout, unlabelled),
        "sex": _vocabulary_values("sex", background.sex),
        "indigenous": background.indigenous,
        **_record_columns(predictors, missing),
    }
    return pd.DataFrame(columns)[[column.name for column in COLUMNS]]
