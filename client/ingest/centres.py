"""Splitting a multi-centre file (a public data set, a research extract) into the
extracts each centre would hold, by the mapping's ``centre_column``."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from client.ingest.errors import IngestError, quote
from client.ingest.extract import IngestResult, ensure_usable, ingest
from client.ingest.mapping import load_mapping
from client.ingest.reading import Extract, read_extract
from client.ingest.values import as_text
from client.site_policy import SitePolicy
from common.i18n.catalogue import N_
from common.schema import is_forbidden


def split_by_centre(
    path: Path | str, mapping_path: Path | str, centre_column: str | None = None
) -> dict[str, pd.DataFrame]:
    """Raw rows of every centre, in the source's own columns and order, by centre name.

    ``centre_column`` overrides the mapping's. Each frame is what that centre would
    export itself (index 0..n-1, so ``row_number()`` in the mapping restarts at 1);
    teacher and class columns are left out. Write a frame with
    ``common.csv_output.write_csv(path, frame)`` and validate it with the same mapping.
    """
    mapping = load_mapping(Path(mapping_path))
    extract = read_extract(Path(path), mapping.hints)
    return _split(extract, centre_column or mapping.centre_column, str(mapping_path))


def prepare_centres(
    path: Path | str, mapping_path: Path | str, policy: SitePolicy, centre_column: str | None = None
) -> dict[str, IngestResult]:
    """Every centre's extract validated as that centre would validate it on its own
    (same mapping and policy): the valid rows and the report, by centre name.

    Useful for a centralised baseline on exactly the rows and student ids the
    federated run sees. Raises ``IngestError`` if any centre's extract is unusable.
    """
    mapping = load_mapping(Path(mapping_path))
    extract = read_extract(Path(path), mapping.hints)
    results = {}
    column = centre_column or mapping.centre_column
    for name, raw in _split(extract, column, str(mapping_path)).items():
        centre = Extract(raw, f"{path} [{name}]", extract.file_format, decimal=extract.decimal)
        result = ingest(centre, mapping, policy, mapping_source=str(mapping_path))
        ensure_usable(result.report)
        results[name] = result
    return results


def _split(extract: Extract, column: str | None, mapping_source: str) -> dict[str, pd.DataFrame]:
    path = extract.source
    if not column:
        raise IngestError(N_(
            "The mapping %(mapping)s names no centre_column, so %(path)s cannot be split "
            "into centres; add centre_column to the mapping.", mapping=mapping_source,
            path=path))
    raw = extract.frame.drop(columns=[c for c in extract.frame.columns if is_forbidden(c)])
    if column not in raw.columns:
        raise IngestError(N_(
            "The file %(path)s has no column %(column)s to split it into centres; correct "
            "centre_column in the mapping.", path=path, column=quote(column)))
    centres = as_text(raw[column])
    if centres.isna().any():
        first = int(centres.index[centres.isna()][0]) + 1
        raise IngestError(N_(
            "Row %(row)s of %(path)s has no value in the centre column %(column)s; every "
            "row must belong to a centre.", row=first, path=path, column=quote(column)))
    return {
        str(name): raw.loc[centres == name].reset_index(drop=True)
        for name in sorted(centres.unique())
    }
