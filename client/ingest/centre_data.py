"""What the ClientApp knows of a centre's data: the harmonised, validated records and
the centre's site policy. Reading, mapping and validating an extract lives in
``client.ingest``; this module is the small interface the app and the CLIs call."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import zipfile
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd

from client.errors import CentreRefusal as CentreRefusal  # re-exported for callers
from client.errors import DataError as DataError
from client.ingest import federated_extract, load_policy
from client.site_policy import SitePolicy as SitePolicy
from common.encoding import ENCODING_VERSION, encode, encode_labels
from common.equity.audit import AUDIT_COLUMNS
from common.schema import CONSENT, LABEL, STUDENT_ID
from common.split import held_out_mask

LOG = logging.getLogger(__name__)

@dataclass(frozen=True)
class CentreData:
    """A centre's usable records, encoded once, split into train and held-out test."""

    x_train: npt.NDArray[np.float32]
    y_train: npt.NDArray[np.float32]
    x_test: npt.NDArray[np.float32]
    y_test: npt.NDArray[np.float32]
    policy: SitePolicy
    # Audit attributes of the held-out rows (equity audit only; never model input).
    audit_test: pd.DataFrame = field(default_factory=pd.DataFrame)
    # Pseudonyms of the rows, in order: they stay at the centre (per-student accounting
    # books keyed hashes of them, ``client.privacy.cohorts``).
    ids_train: tuple[str, ...] = ()
    ids_test: tuple[str, ...] = ()

    @property
    def num_train(self) -> int:
        return len(self.y_train)

    @property
    def num_test(self) -> int:
        return len(self.y_test)

    def restricted(self, train: npt.NDArray[np.bool_] | None = None,
                   test: npt.NDArray[np.bool_] | None = None) -> CentreData:
        """The same records with only the training rows where ``train`` and the held-out
        rows where ``test`` (None keeps all): a new object, the cached one unchanged."""
        keep_train = np.ones(self.num_train, bool) if train is None else train
        keep_test = np.ones(self.num_test, bool) if test is None else test
        return replace(
            self, x_train=self.x_train[keep_train], y_train=self.y_train[keep_train],
            x_test=self.x_test[keep_test], y_test=self.y_test[keep_test],
            audit_test=self.audit_test.loc[keep_test].reset_index(drop=True)
            if len(self.audit_test) else self.audit_test,
            ids_train=tuple(np.asarray(self.ids_train, dtype=object)[keep_train]),
            ids_test=tuple(np.asarray(self.ids_test, dtype=object)[keep_test]))


def usable_for_learning(frame: pd.DataFrame) -> pd.DataFrame:
    """Records that may be used for training and federated evaluation:
    consent given and label known."""
    keep = frame[CONSENT].astype(bool) & frame[LABEL].notna()
    return frame.loc[keep]


def split_and_encode(
    frame: pd.DataFrame, policy: SitePolicy, test_fraction: float
) -> CentreData:
    """Encode the usable records and split them by the deterministic held-out rule."""
    usable = usable_for_learning(frame)
    is_test = held_out_mask(usable[STUDENT_ID], test_fraction)
    x = encode(usable, refused=policy.refused_predictors)
    y = encode_labels(usable)
    audit_columns = [c for c in AUDIT_COLUMNS if c in usable.columns]
    audit = usable.loc[is_test, audit_columns].reset_index(drop=True)
    ids = usable[STUDENT_ID].astype(str).to_numpy()
    return CentreData(x[~is_test], y[~is_test], x[is_test], y[is_test], policy, audit,
                      tuple(ids[~is_test]), tuple(ids[is_test]))


def read_harmonised(path: Path) -> pd.DataFrame:
    """Read a file already in the harmonised schema (CSV or Parquet)."""
    if not path.is_file():
        raise DataError(f"The data file {path} does not exist.")
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    return pd.read_csv(path)


# The centres' files, read once per process and version of each file: the simulation
# engine rebuilds the ClientApp for every message, and its actors live across runs (a
# sweep, ``years``), so a cached reading is keyed by each file's size and modification
# time as well as its path: a file changed between two tasks is read again, and what a
# task reads never depends on what ran before it in the same process.
FileVersion = tuple[int, int] | None


def _version(path: str | None) -> FileVersion:
    """(size, modification time in ns) of ``path``; None without a file (or unreadable:
    reading it then says why)."""
    if not path:
        return None
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_size, stat.st_mtime_ns


def centre_policy(policy_path: str | None) -> SitePolicy:
    """The centre's site policy (the defaults without a file), cached per process and
    version of the file. Raises ``DataError`` when the file cannot be used."""
    return _centre_policy(policy_path, _version(policy_path))


@lru_cache(maxsize=128)
def _centre_policy(policy_path: str | None, version: FileVersion) -> SitePolicy:
    return load_policy(Path(policy_path)) if policy_path else SitePolicy()


def load_centre(
    data_path: str,
    mapping_path: str | None = None,
    policy_path: str | None = None,
    test_fraction: float = 0.2,
) -> CentreData:
    """Load, map, validate and encode a centre's data, cached per process and version of
    its files (see above).

    Raises ``DataError`` when the files are unusable as files (``federated_extract``:
    never on a count of invalid rows).
    """
    versions = (_version(data_path), _version(mapping_path), _version(policy_path))
    return _load_centre(data_path, mapping_path, policy_path, test_fraction, versions)


def forget_centres() -> None:
    """Forget this process's readings of the centres' files (data and policies)."""
    _load_centre.cache_clear()
    _centre_policy.cache_clear()


def centres_cache_info() -> tuple[int, int]:
    """(hits, misses) of this process's readings of the centres' data since it last
    forgot them."""
    info = _load_centre.cache_info()
    return info.hits, info.misses


@lru_cache(maxsize=128)
def _load_centre(
    data_path: str,
    mapping_path: str | None,
    policy_path: str | None,
    test_fraction: float,
    versions: tuple[FileVersion, FileVersion, FileVersion],
) -> CentreData:
    policy = centre_policy(policy_path)
    shared = _shared_path(data_path, mapping_path, policy_path, test_fraction)
    if shared is not None and (data := _read_shared(shared, policy)) is not None:
        return data
    result = federated_extract(Path(data_path), Path(mapping_path) if mapping_path else None,
                               policy)
    report = result.report
    if report.rows_valid == 0 or report.exceeds_invalid_threshold:
        # Said here, at the centre, never to the ministry (a refusal on the share would
        # be an exact function of the rows): the task uses the valid rows.
        LOG.warning("%d of %d rows of %s have invalid values (the site policy's "
                    "max_invalid_fraction is %.1f%%); the federated task uses the %d valid "
                    "rows. 'perseverance-client validate' lists the others.",
                    report.rows_invalid, report.rows_read, report.source,
                    100 * policy.max_invalid_fraction, report.rows_valid)
    data = split_and_encode(result.frame, policy, test_fraction)
    if shared is not None:
        _share(shared, data)
    return data


#: A folder where the processes of one simulation engine share the centres' encoded
#: records (the engine sets it for its actors, and removes it when it stops); unset (a
#: centre in deployment, the plain loop), each process reads its extract itself.
EXTRACT_CACHE_ENV = "PERSEVERANCE_EXTRACTS"
_ARRAYS = ("x_train", "y_train", "x_test", "y_test", "ids_train", "ids_test", "audit")


def _digest(path: str | None) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest() if path else ""


def _shared_path(data_path: str, mapping_path: str | None, policy_path: str | None,
                 test_fraction: float) -> Path | None:
    """Where the encoded records of these exact files are shared: named by the digests
    of the extract, its mapping and the policy (which says what is refused as a
    predictor), the held-out share and the encoding, so that a changed file is read
    again, never served from the cache."""
    folder = os.environ.get(EXTRACT_CACHE_ENV)
    if not folder:
        return None
    try:
        key = json.dumps([ENCODING_VERSION, _digest(data_path), _digest(mapping_path),
                          _digest(policy_path), float(test_fraction)])
    except OSError:
        return None  # unreadable: the usual path says why
    return Path(folder) / f"{hashlib.sha256(key.encode()).hexdigest()}.npz"


def _share(path: Path, data: CentreData) -> None:
    from common.files import atomic_write_bytes

    audit = io.BytesIO()
    data.audit_test.to_parquet(audit)
    buffer = io.BytesIO()
    np.savez(buffer, x_train=data.x_train, y_train=data.y_train, x_test=data.x_test,
             y_test=data.y_test, ids_train=np.asarray(data.ids_train, dtype=str),
             ids_test=np.asarray(data.ids_test, dtype=str),
             audit=np.frombuffer(audit.getvalue(), dtype=np.uint8))
    try:
        # Not fsynced (issue 32): the folder is one engine's, removed at its stop and never
        # reused (a crash of the machine ends the engine), and a file that does not load
        # is read from the extract again.
        atomic_write_bytes(path, buffer.getvalue(), 0o600, durable=False)
    except OSError:
        return  # a cache: reading the extract again is always correct


def _read_shared(path: Path, policy: SitePolicy) -> CentreData | None:
    """The records another process of the engine encoded from the same files, or None
    (absent or unreadable: the extract is read instead)."""
    try:
        with np.load(path, allow_pickle=False) as stored:
            if sorted(stored.files) != sorted(_ARRAYS):
                return None
            arrays = {name: stored[name] for name in _ARRAYS}
        audit = pd.read_parquet(io.BytesIO(arrays["audit"].tobytes()))
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None
    return CentreData(arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"],
                      policy, audit, tuple(arrays["ids_train"].tolist()),
                      tuple(arrays["ids_test"].tolist()))
