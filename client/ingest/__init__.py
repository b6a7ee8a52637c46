"""Turning a centre's extract into validated harmonised records.

``reading`` (CSV/Parquet, any delimiter and encoding) -> ``mapping`` (the centre's
renames, recodes, units, constants and derived fields) -> ``policy`` (what the centre
withholds) -> ``validation`` (pandera, built from ``common.schema``) -> ``report``.
``extract`` chains them; the ``validate`` command and ``client.ingest.centre_data.load_centre`` both
call it, so a centre checks its data exactly as the ClientApp will use them (the
ClientApp, ``federated_extract``, does not refuse on a count of invalid rows: it uses the
valid ones; ``validate`` applies the policy's threshold).
"""

from client.ingest.centres import prepare_centres, split_by_centre
from client.ingest.errors import IngestError
from client.ingest.extract import (
    IngestResult,
    ensure_usable,
    federated_extract,
    ingest,
    ingest_file,
    inspect_extract,
    prepare_extract,
)
from client.ingest.mapping import Mapping, load_mapping
from client.ingest.policy import load_policy
from client.ingest.report import QualityReport, RowProblem

__all__ = [
    "IngestError",
    "IngestResult",
    "Mapping",
    "QualityReport",
    "RowProblem",
    "ensure_usable",
    "federated_extract",
    "ingest",
    "ingest_file",
    "inspect_extract",
    "load_mapping",
    "load_policy",
    "prepare_centres",
    "prepare_extract",
    "split_by_centre",
]
