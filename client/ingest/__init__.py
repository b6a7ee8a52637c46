"""Turning a centre's extract into validated harmonised records (placeholder until the
ingestion work lands: harmonised files only, minimal checks)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pandas as pd

from client.data import DataError, SitePolicy, read_harmonised
from common.schema import COLUMNS


def load_policy(path: Path) -> SitePolicy:
    """Read a site policy TOML file."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise DataError(f"The site policy {path} cannot be read: {exc}.") from exc
    return SitePolicy(
        refused_predictors=frozenset(raw.get("refused_predictors", [])),
        min_records=int(raw.get("min_records", 50)),
        epsilon_cap=float(raw.get("epsilon_cap", 10.0)),
        audit_attributes_allowed=bool(raw.get("audit_attributes_allowed", True)),
    )


def prepare_extract(path: Path, mapping: Path | None, policy: SitePolicy) -> pd.DataFrame:
    """Read a harmonised extract and check its required columns."""
    frame = read_harmonised(path)
    missing = [c.name for c in COLUMNS if c.required and c.name not in frame.columns]
    if missing:
        raise DataError(f"The extract {path} lacks the required columns {', '.join(missing)}.")
    return frame
