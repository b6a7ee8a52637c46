"""From a centre's file to validated harmonised rows and their quality report.

One path for every caller (the ``validate`` command, ``client.ingest.centre_data.load_centre``
in the
ClientApp, the simulation runner's per-centre extracts): read -> drop teacher/class
columns -> map -> withhold what the policy refuses -> type and validate -> count.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from client.ingest.errors import IngestError, quote
from client.ingest.mapping import Mapping, apply_mapping, identity_mapping, load_mapping
from client.ingest.policy import apply_policy, withheld_columns
from client.ingest.reading import Extract, read_extract
from client.ingest.report import CentreCount, ColumnReport, QualityReport
from client.ingest.source_cells import locate
from client.ingest.validation import validate_rows
from client.site_policy import SitePolicy
from common.i18n.catalogue import N_, word
from common.schema import COLUMNS, CONSENT, LABEL


@dataclass(frozen=True)
class IngestResult:
    """The valid harmonised rows (invalid ones dropped) and the report about all rows."""

    frame: pd.DataFrame
    report: QualityReport


def ingest_file(
    path: Path | str, mapping_path: Path | str | None, policy: SitePolicy
) -> IngestResult:
    """Read, map and validate one extract; raise ``IngestError`` when the file, the
    mapping or the required columns make it unusable as a whole. Row-level problems
    are reported, not raised: see ``ensure_usable``."""
    mapping = load_mapping(Path(mapping_path)) if mapping_path else identity_mapping()
    extract = read_extract(Path(path), mapping.hints)
    source = str(mapping_path) if mapping_path else None
    return ingest(extract, mapping, policy, mapping_source=source)


def ingest(
    extract: Extract, mapping: Mapping, policy: SitePolicy, mapping_source: str | None = None
) -> IngestResult:
    """The same as ``ingest_file`` for an extract already read."""
    mapped = apply_mapping(extract, mapping)
    _require_columns(extract, mapped.frame, mapping_source)
    valid, problems = validate_rows(apply_policy(mapped.frame, policy), extract.decimal)
    problems = locate(mapped.problems + problems, extract.frame, mapped)
    bad = {p.row - 1 for p in problems}
    valid = valid.loc[~valid.index.isin(bad)]
    consent = valid[CONSENT].astype(bool)
    if LABEL in valid.columns:
        label = valid.loc[consent, LABEL]
    else:  # current students only: every row is for scoring
        label = pd.Series(pd.NA, index=valid.index[consent], dtype="boolean")
    usable = label.notna()
    report = QualityReport(
        source=extract.source,
        file_format=extract.file_format,
        encoding=extract.encoding,
        delimiter=extract.delimiter,
        mapping=mapping_source,
        policy=policy,
        rows_read=len(extract.frame),
        rows_invalid=len(bad),
        rows_no_consent=int((~consent).sum()),
        rows_missing_label=int((~usable).sum()),
        rows_usable=int(usable.sum()),
        positives=int(label[usable].astype(bool).sum()),
        problems=tuple(problems),
        columns=_column_reports(valid, policy),
        forbidden_dropped=mapped.forbidden_dropped,
        ignored_columns=mapped.ignored_columns,
        centres=_centre_counts(mapped.centres, label[usable]),
    )
    if LABEL not in valid.columns:  # every harmonised frame has a label column
        valid = valid.assign(**{LABEL: pd.Series(pd.NA, index=valid.index, dtype="boolean")})
    return IngestResult(valid.reset_index(drop=True), report)


def ensure_usable(report: QualityReport) -> None:
    """Raise ``IngestError`` (with the report) when too many rows are invalid."""
    if report.rows_valid == 0:
        raise IngestError(
            N_("No row of %(path)s is valid; correct the values listed below (or the "
               "mapping) and validate again.", path=report.source),
            report=report,
        )
    if report.exceeds_invalid_threshold:
        raise IngestError(
            N_("%(invalid)s of %(read)s rows of %(path)s (%(share)s) have invalid values, "
               "more than the %(limit)s the site policy allows; correct the rows listed "
               "below or raise max_invalid_fraction in the site policy.",
               invalid=report.rows_invalid, read=report.rows_read, path=report.source,
               share=format(report.invalid_fraction, ".1%"),
               limit=format(report.policy.max_invalid_fraction, ".1%")),
            report=report,
        )


def federated_extract(
    path: Path | str, mapping_path: Path | str | None, policy: SitePolicy
) -> IngestResult:
    """The valid rows of a centre's extract for a federated task, and the report.

    Refused (``IngestError``) only as a file: absent, unreadable, a format, header or
    mapping that cannot be read, a required column missing. Never on how many rows are
    invalid (``max_invalid_fraction``, no valid row): such a refusal would leave the
    centre as an exact function of its students' rows (issue 26). Each row's validity is
    a function of that row (and of its student's other rows: a duplicated id drops them
    all), so dropping invalid rows changes nothing of another student's inclusion; the
    operator's ``validate`` command still applies the policy's threshold before
    enrolment. Whether the centre takes part is then decided on its released size
    (``client.privacy.run_plan``).
    """
    return ingest_file(path, mapping_path, policy)


def prepare_extract(
    path: Path | str, mapping_path: Path | str | None, policy: SitePolicy
) -> pd.DataFrame:
    """Validated harmonised rows of a centre's extract, invalid rows removed.

    Rows without consent or label are kept (for local scoring); use
    ``client.ingest.centre_data.usable_for_learning`` before training or evaluating.
    Raises ``IngestError`` (a ``DataError``, exit code 2) when the extract is unusable.
    """
    result = ingest_file(path, mapping_path, policy)
    ensure_usable(result.report)
    return result.frame


def inspect_extract(
    path: Path | str, mapping_path: Path | str | None = None, policy: SitePolicy | None = None
) -> QualityReport:
    """The data-quality report of an extract, even when past the invalid-row threshold."""
    return ingest_file(path, mapping_path, policy or SitePolicy()).report


def _require_columns(extract: Extract, frame: pd.DataFrame, mapping_source: str | None) -> None:
    absent = [c.name for c in COLUMNS if c.required and c.name not in frame.columns]
    if not absent:
        return
    how = (
        N_("add them to the mapping %(mapping)s (a column, an expression or a constant "
           "value)", mapping=mapping_source)
        if mapping_source
        else word(N_("give a mapping (--mapping) saying which of its columns hold them"))
    )
    sentence = (N_("The extract %(path)s lacks the required columns %(names)s; %(how)s.",
                   path=extract.source, names=", ".join(absent), how=how)
                if len(absent) > 1 else
                N_("The extract %(path)s lacks the required column %(names)s; %(how)s.",
                   path=extract.source, names=absent[0], how=how))
    raise IngestError(
        sentence,
        details=[
            N_("required: %(names)s", names=", ".join(c.name for c in COLUMNS if c.required)),
            N_("columns in the file: %(names)s",
               names=", ".join(quote(c) for c in extract.frame.columns)),
        ],
    )


def _column_reports(valid: pd.DataFrame, policy: SitePolicy) -> tuple[ColumnReport, ...]:
    withheld = withheld_columns(policy)
    reports = []
    for column in COLUMNS:
        if column.name in withheld:
            status, missing = withheld[column.name], 1.0
        elif column.name in valid.columns:
            status = "present"
            missing = float(valid[column.name].isna().mean()) if len(valid) else 1.0
        else:
            status, missing = "absent", 1.0
        reports.append(ColumnReport(column.name, column.role.value, status, missing))
    return tuple(reports)


def _centre_counts(centres: pd.Series | None, usable_labels: pd.Series) -> tuple[CentreCount, ...]:
    if centres is None:
        return ()
    names = centres.fillna("(none)")
    usable_names = names.loc[usable_labels.index]
    positives = usable_labels.astype(bool)
    return tuple(
        CentreCount(
            str(name),
            int((names == name).sum()),
            int((usable_names == name).sum()),
            int(positives[usable_names == name].sum()),
        )
        for name in sorted(names.unique())
    )
