"""A centre's last replies, kept so that a resumed run costs no privacy twice.

When the ministry's server or SuperLink crashes during a round, the run resumes as a
new Flower run that asks again for the round in progress, with the same model version.
The centre answers with the reply it already computed (and booked in its ledger) for
that run, round and version: sending the same release again reveals nothing new. A
request that does not match (another run, round or model) is new work, booked anew.
Only the last reply of each kind (train, evaluate) is kept, in the state folder.
"""

from __future__ import annotations

import hashlib
import io
import pickle
from pathlib import Path

import torch
from flwr.app import ArrayRecord, ConfigRecord, MetricRecord, RecordDict

from common.files import atomic_write_bytes
from common.protocol import ARRAYS, METRICS

FOLDER = "last-replies"


def _key(run_name: str, server_round: int, version: str) -> str:
    return hashlib.sha256(f"{run_name}\n{server_round}\n{version}".encode()).hexdigest()


class ReplyCache:
    """The centre's last reply per kind, in ``state_dir / last-replies``."""

    def __init__(self, state_dir: Path) -> None:
        self.folder = state_dir / FOLDER

    def get(self, kind: str, run_name: str, server_round: int, version: str) -> RecordDict | None:
        """The reply already made to this exact request, or None."""
        path = self.folder / f"{kind}.pt"
        if not version or not path.is_file():
            return None
        try:
            saved = torch.load(path, map_location="cpu", weights_only=True)
        except (RuntimeError, OSError, EOFError, pickle.UnpicklingError):
            return None  # unreadable (put does not fsync): redone (and booked) instead
        if saved.get("key") != _key(run_name, server_round, version):
            return None
        content = RecordDict()
        if saved.get("arrays") is not None:
            content[ARRAYS] = ArrayRecord(saved["arrays"])
        content[METRICS] = MetricRecord(saved["metrics"])
        for name, values in saved.get("configs", {}).items():
            content[name] = ConfigRecord(values)
        return content

    def put(self, kind: str, run_name: str, server_round: int, version: str,
            content: RecordDict) -> None:
        """Keep ``content`` as the reply to this request (atomic replace, not fsynced).

        Not flushed to disk (issue 32: two fsyncs a task): the cache saves budget, it
        guarantees nothing. The release it holds is booked in the ledger (durable)
        before it was computed, and a request it cannot answer after a crash of the
        centre's machine (old reply, or a file that does not load: ``get`` returns None)
        is new work, booked anew: an over-count, never an under-count (the audit's is
        refused, its ledger row being there: no audit from this centre). What it is
        for, a ministry that crashed and asks again, leaves the centre's machine and its
        written files untouched."""
        if not version:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        arrays = next(iter(content.array_records.values()), None)
        metrics = next(iter(content.metric_records.values()))
        payload = {
            "key": _key(run_name, server_round, version),
            "arrays": arrays.to_torch_state_dict() if arrays is not None else None,
            "metrics": dict(metrics),
            "configs": {name: dict(record) for name, record in content.config_records.items()},
        }
        buffer = io.BytesIO()
        torch.save(payload, buffer)
        atomic_write_bytes(self.folder / f"{kind}.pt", buffer.getvalue(), 0o600,
                           durable=False)
