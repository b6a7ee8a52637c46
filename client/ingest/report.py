"""The data-quality report of one extract: what was read, what can be used, and why not."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from client.site_policy import SitePolicy


@dataclass(frozen=True)
class RowProblem:
    """One invalid cell; its row is excluded.

    ``row`` counts records from 1 (the first row after the header, line 2 of a CSV).
    ``column`` and ``value`` are what was checked: a harmonised column and its value
    after the mapping, or the source column an expression or a unit change read.
    ``target`` is the harmonised column it was for (empty: ``column``); ``cells`` the
    source cells behind it as the file holds them (column, text; None when empty), and
    ``student`` the row's student id as read (``client.ingest.source_cells`` fills both).
    """

    row: int
    column: str
    value: str
    reason: str
    target: str = ""
    cells: tuple[tuple[str, str | None], ...] = ()
    student: str | None = None

    @property
    def harmonised(self) -> str:
        """The harmonised column the problem is about."""
        return self.target or self.column


@dataclass(frozen=True)
class ColumnReport:
    """One harmonised column: where it stands and how often it is empty."""

    name: str
    role: str
    status: str  # "present", "absent", "refused by policy", "audit use not allowed"
    missing_fraction: float  # share (0-1) of valid rows without a value; 1.0 when not present


@dataclass(frozen=True)
class CentreCount:
    """Rows of one centre of a multi-centre file (the mapping's ``centre_column``)."""

    centre: str
    rows_read: int
    rows_usable: int
    positives: int


@dataclass(frozen=True)
class QualityReport:
    """Counts for one extract; every row read is counted once, under its first reason.

    Reasons in order: invalid values (the row is dropped), no consent (kept for local
    scoring, never used for training or federated evaluation), missing label (kept for
    scoring only). ``rows_usable`` rows are valid, consenting and labelled.
    """

    source: str
    file_format: str
    encoding: str | None
    delimiter: str | None
    mapping: str | None
    policy: SitePolicy
    rows_read: int
    rows_invalid: int
    rows_no_consent: int
    rows_missing_label: int
    rows_usable: int
    positives: int
    problems: tuple[RowProblem, ...]
    columns: tuple[ColumnReport, ...]
    forbidden_dropped: tuple[str, ...] = ()
    ignored_columns: tuple[str, ...] = ()
    centres: tuple[CentreCount, ...] = ()

    def line_of(self, row: int) -> int:
        """The number a reader finds record ``row`` under: its line in a CSV file, the
        header being line 1 (as a spreadsheet numbers its rows), or its record number
        in a Parquet file."""
        return row + 1 if self.file_format == "csv" else row

    @property
    def rows_valid(self) -> int:
        """Rows kept after validation (usable for local scoring)."""
        return self.rows_read - self.rows_invalid

    @property
    def invalid_fraction(self) -> float:
        """Share (0-1) of rows read that were excluded for invalid values."""
        return self.rows_invalid / self.rows_read if self.rows_read else 0.0

    @property
    def label_rate(self) -> float | None:
        """Share (0-1) of usable rows whose label is true; None without usable rows."""
        return self.positives / self.rows_usable if self.rows_usable else None

    @property
    def takes_part_in_training(self) -> bool:
        """Enough usable rows for the site policy's ``min_records``."""
        return self.rows_usable >= self.policy.min_records

    @property
    def exceeds_invalid_threshold(self) -> bool:
        return self.invalid_fraction > self.policy.max_invalid_fraction

    @property
    def excluded(self) -> dict[str, int]:
        """Rows excluded from learning, by reason."""
        return {
            "invalid values": self.rows_invalid,
            "no consent": self.rows_no_consent,
            "missing label": self.rows_missing_label,
        }

    @property
    def absent_predictors(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.role == "predictor" and c.status == "absent")

    def problem_summary(self) -> list[tuple[str, str, int]]:
        """(column, reason, rows) for every kind of invalid value, most frequent first:
        the file's columns the value came from (else the harmonised column)."""
        counts = Counter((", ".join(c for c, _ in p.cells) or p.harmonised, p.reason)
                         for p in self.problems)
        return [(column, reason, n) for (column, reason), n in counts.most_common()]
