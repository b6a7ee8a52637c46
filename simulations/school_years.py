"""Successive school years of a synthetic network: the same students, year after year.

Year 0 (2023-2024) is drawn as ``simulations.students`` draws one year: each centre's
students at secondary 1-5, their record, and their eventual outcome (leaving without a
diploma or not) from the same dropout log-odds, the centre's intercept solved for its
base rate. Every later year, the students of secondary 1-4 advance a level (a few repeat
it), a future dropout leaves once the law lets them (age 16, so after secondary 4 at
the normal age, earlier when behind; half of them each year, all after secondary 5),
those of secondary 5 who will graduate do so (a few repeat it), and a new secondary 1
enters, drawn like the others, in the same schools. A student keeps their pseudonym
(``student_id``), background, engagement and consent for life; each year's record is
drawn anew from them (grades, absences, ...), with the years they repeated added to
their retentions and age-grade lag.

The extract of year ``t`` (``t`` >= 1; year 1 is 2024-2025, ``students.SCHOOL_YEAR``)
holds, once per student (pseudonyms stay unique in an extract):

- every student enrolled in year ``t``, with this year's record and no label: the
  outcome is not known yet, so they are scored, never trained on;
- every student who left at the end of years 0 to ``t - 1``, with their outcome as the
  label (left without a diploma: true; graduated: false), on the record of the year the
  network first saw them (year 0, or the year they entered secondary 1).

Why the first record, not the last: graduates leave after secondary 5 and future
dropouts mostly earlier, so on the last record the level alone would tell most of the
outcome and the model would learn nothing an early warning can use; on the first
record, the label follows the record exactly as in the one-year generator (same
log-odds, same base rate), which is also what an early warning is asked: from a
student's record at the time, what happened next. Why past years' leavers stay in
the extract: a centre's history does not vanish, so the oldest records keep being
offered to training; their students' privacy budget runs out after a few runs, so
they retire (``client.privacy.student_budget``) while this year's leavers always train. The
scenario's ``unlabelled_rate`` does not apply: who is labelled follows from who left.

Each centre draws from its own streams, one per year, derived from the seed and the
centre's place in the fixed table: the same seed gives identical years, whatever the
number of years asked for (up to ``MAX_YEARS``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, fields, replace

import numpy as np
import pandas as pd

from common.schema import LABEL
from simulations.centres import PROFILES, CentreProfile, allocate_students, select_centres
from simulations.network import CentreInfo, Network
from simulations.students import (
    LEVEL_SHARES,
    Background,
    BoolArray,
    IntArray,
    draw_background,
    draw_engagement,
    draw_record,
    dropout_log_odds,
    harmonised_frame,
    missing_masks,
    sigmoid,
    solve_intercept,
)

MAX_YEARS = 10  # entrants are drawn ahead for this many years
FIRST_CALENDAR_YEAR = 2023  # year 0 is 2023-2024
YEARS_STREAM = 1_000  # spawn keys of the yearly streams, away from the one-year generator's
# A student may leave school at the end of the year they turn 16: secondary 4 at the
# normal age, so when level + age-grade lag reaches this.
LEAVING_LEVEL = 4
DROPOUT_LEAVE_SHARE = 0.5  # of future dropouts allowed to leave, who leave this year
SECONDARY_5_REPEAT_SHARE = 0.04  # future graduates who need a second secondary 5
REPEAT_INTERCEPT, REPEAT_SLOPE = -3.6, -0.9  # log-odds of repeating secondary 1-4


def school_year(year: int) -> str:
    """The school year of simulated year ``year`` (0 is 2023-2024)."""
    start = FIRST_CALENDAR_YEAR + year
    return f"{start}-{start + 1}"


def _take(background: Background, index: IntArray) -> Background:
    return Background(**{f.name: getattr(background, f.name)[index] for f in fields(background)})


@dataclass(frozen=True)
class YearExtract:
    """One school year of the network: ``frames`` (centre -> its extract, harmonised
    schema), ``newest`` (centre -> pseudonyms labelled for the first time this year),
    ``network`` (the same frames as a ``Network``, for ``write_network``)."""

    year: int
    school_year: str
    network: Network
    newest: dict[str, frozenset[str]]

    @property
    def frames(self) -> dict[str, pd.DataFrame]:
        return self.network.frames


class CentreYears:
    """One centre's students over the years; :meth:`advance` moves to the next year.

    ``size`` is the centre's enrolment (students at secondary 1-5 in year 0); each year
    a secondary 1 of the size of the first level enters.
    """

    def __init__(self, profile: CentreProfile, size: int, seed: int, place: int,
                 consent_refusal_rate: float) -> None:
        self.profile, self.seed, self.place = profile, seed, place
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(place, YEARS_STREAM)))
        self.entrants = max(1, round(size * LEVEL_SHARES[0] / sum(LEVEL_SHARES)))
        pool = size + MAX_YEARS * self.entrants
        # Every student the centre will ever have, drawn at once so that they share
        # the same schools; the first ``size`` are enrolled in year 0.
        self.background = draw_background(profile, pool, rng, enrolment=size)
        self.engagement = draw_engagement(self.background, rng)
        self.consent = rng.random(pool) >= consent_refusal_rate
        self.fate = np.zeros(pool, dtype=np.bool_)  # set when a student enters
        self.base_retentions = np.zeros(pool)
        self.base_lag = np.zeros(pool)
        self.intercept = 0.0
        self.year = -1
        self.enrolled = np.arange(0, dtype=np.int64)
        self.level = np.array(self.background.level[:size], dtype=np.int64)
        self.repeats = np.zeros(0, dtype=np.int64)
        self.first_records: list[pd.DataFrame] = []
        self.left = np.zeros(0, dtype=np.int64)  # students who left, in leaving order
        self.newest = np.zeros(0, dtype=np.int64)  # those who left at the end of last year
        self.current = pd.DataFrame()
        self._size = size
        self.advance()

    def _stream(self, step: int) -> np.random.Generator:
        """The random stream of this year's ``step`` (0 its records, 1 its end): each
        draw its own stream, so no two draws share their random bits."""
        return np.random.default_rng(np.random.SeedSequence(
            self.seed, spawn_key=(self.place, YEARS_STREAM, self.year, step)))

    def advance(self) -> None:
        """Move to the next school year: the year's transitions, then its records."""
        if self.year >= MAX_YEARS:
            raise ValueError(f"At most {MAX_YEARS} years can be simulated.")
        if self.year >= 0:
            self._leave_or_advance(self._stream(1))
        self.year += 1
        rng = self._stream(0)
        if self.year == 0:
            entering = np.arange(self._size, dtype=np.int64)
            level = self.level
        else:
            start = self._size + (self.year - 1) * self.entrants
            entering = np.arange(start, start + self.entrants, dtype=np.int64)
            level = np.concatenate([self.level, np.ones(self.entrants, dtype=np.int64)])
        self.enrolled = np.concatenate([self.enrolled, entering])
        self.level = level
        self.repeats = np.concatenate([self.repeats, np.zeros(len(entering), dtype=np.int64)])
        self._draw_year(rng, entering)

    def _draw_year(self, rng: np.random.Generator, entering: IntArray) -> None:
        students = self.enrolled
        background = replace(_take(self.background, students), level=self.level)
        record = draw_record(background, rng, self.engagement[students])
        new = np.isin(students, entering)
        self.base_retentions[entering] = record["grade_retentions"][new]
        self.base_lag[entering] = record["age_grade_lag"][new]
        # The years repeated since entering count; the rest of the record is this year's.
        record["grade_retentions"] = np.minimum(self.base_retentions[students] + self.repeats, 5)
        record["age_grade_lag"] = np.minimum(self.base_lag[students] + self.repeats, 3)
        log_odds = dropout_log_odds(background, record, rng)
        if self.year == 0:
            self.intercept = solve_intercept(log_odds, self.profile.base_rate)
        fate = rng.random(len(students)) < sigmoid(self.intercept + log_odds)
        self.fate[entering] = fate[new]
        missing = missing_masks(background, record, rng)
        frame = harmonised_frame(
            self.profile.centre_id, students, background, record, missing,
            consent=self.consent[students], dropout=self.fate[students],
            unlabelled=np.ones(len(students), dtype=np.bool_),
            school_year=school_year(self.year))
        first = frame.loc[new].copy()
        first[LABEL] = pd.array(self.fate[entering], dtype="boolean")
        first.index = pd.Index(entering)
        self.first_records.append(first)
        self.current = frame

    def _leave_or_advance(self, rng: np.random.Generator) -> None:
        """The end of the year: who leaves (with or without a diploma), who repeats."""
        students, level = self.enrolled, self.level
        fate = self.fate[students]
        lag = np.minimum(self.base_lag[students] + self.repeats, 3)
        u = rng.random(len(students))
        may_leave = level + lag >= LEAVING_LEVEL
        dropout = fate & ((level == 5) | (may_leave & (u < DROPOUT_LEAVE_SHARE)))
        graduate = ~fate & (level == 5) & (u >= SECONDARY_5_REPEAT_SHARE)
        leaving: BoolArray = dropout | graduate
        repeat_share = sigmoid(REPEAT_INTERCEPT + REPEAT_SLOPE * self.engagement[students])
        repeat = ~leaving & ((level == 5) | (rng.random(len(students)) < repeat_share))
        self.newest = students[leaving]
        self.left = np.concatenate([self.left, self.newest])
        stay = ~leaving
        self.enrolled = students[stay]
        self.level = np.where(repeat, level, level + 1)[stay]
        self.repeats = (self.repeats + repeat)[stay]

    def extract(self) -> pd.DataFrame:
        """This year's extract: the enrolled students unlabelled, then every student who
        left, labelled, on their first record."""
        first = pd.concat(self.first_records)
        labelled = first.loc[self.left]
        return pd.concat([self.current, labelled], ignore_index=True)

    def newest_ids(self) -> frozenset[str]:
        """Pseudonyms whose outcome became known at the end of last year."""
        return frozenset(f"{self.profile.centre_id}-{n:06d}" for n in self.newest)


def network_years(*, years: int, centres: int = 72, students: int = 369_000, seed: int = 7,
                  include_indigenous_boards: bool = True,
                  consent_refusal_rate: float = 0.02) -> Iterator[YearExtract]:
    """The extracts of years 1 to ``years`` (at most ``MAX_YEARS``) of the network that
    ``simulations.network.generate_network`` draws with the same arguments (same
    centres and sizes; the draws differ). ``students`` is the year-0 enrolment."""
    if not 1 <= years <= MAX_YEARS:
        raise ValueError(f"years must be between 1 and {MAX_YEARS}, got {years}.")
    profiles = select_centres(centres, include_indigenous_boards=include_indigenous_boards)
    sizes = allocate_students(profiles, students)
    place = {profile.centre_id: i for i, profile in enumerate(PROFILES)}
    history = [CentreYears(profile, size, seed, place[profile.centre_id], consent_refusal_rate)
               for profile, size in zip(profiles, sizes, strict=True)]
    for year in range(1, years + 1):
        frames: dict[str, pd.DataFrame] = {}
        infos: list[CentreInfo] = []
        for centre in history:
            centre.advance()
            p = centre.profile
            frames[p.centre_id] = centre.extract()
            infos.append(CentreInfo(p.centre_id, p.name, p.region, p.sector,
                                    p.indigenous_governed, len(frames[p.centre_id]),
                                    p.base_rate))
        yield YearExtract(year, school_year(year), Network(tuple(infos), frames, seed),
                          {c.profile.centre_id: c.newest_ids() for c in history})
