"""Deterministic held-out split of a centre's records.

The split depends only on the student's pseudonym and a salt, never on the other
rows: the same student lands on the same side in every run and at every tool
(federated evaluation, centralised reference, benchmarks).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd

SPLIT_SALT = "perseverance-split"  # hash_pandas_object takes a 16-byte key


def held_out_mask(student_ids: pd.Series, test_fraction: float) -> npt.NDArray[np.bool_]:
    """True for the rows held out for evaluation (about ``test_fraction`` of them, 0-1)."""
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be between 0 and 1 (exclusive), got {test_fraction}.")
    key = SPLIT_SALT.ljust(16, "-")[:16]
    hashes = pd.util.hash_pandas_object(
        student_ids.astype("string"), index=False, hash_key=key
    ).to_numpy(dtype=np.uint64)
    uniform = (hashes >> np.uint64(11)).astype(np.float64) / float(1 << 53)
    return np.asarray(uniform < test_fraction, dtype=np.bool_)
