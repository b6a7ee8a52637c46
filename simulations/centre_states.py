"""What the simulated centres' own state folders say, read by the harness only.

In deployment these figures stay at each centre (its audit log and
``perseverance-client ledger``): the records a centre retired for budget are a function
of records with no budget left, so no release carries them. A simulation holds every
centre's state folder, so its summary and model card can show them.
"""

from __future__ import annotations

from pathlib import Path

from client.federation.rounds import state_dir
from client.privacy.student_budget import run_cohorts
from common.config import RunConfig


def records_retired(config: RunConfig, files: list[Path],
                    run_name: str) -> dict[str, dict[str, int]]:
    """Centre (its data file's name) -> records retired for budget in ``run_name``, for
    training (``train``) and federated evaluation (``evaluate``); centres that booked no
    cohort for the run (no DP, refused, no state) are left out."""
    retired: dict[str, dict[str, int]] = {}
    for index, path in enumerate(files):
        folder = state_dir(config, {"partition-id": index})
        if folder is None:
            continue
        cohorts = {c.kind: c.retired for c in run_cohorts(folder, run_name)}
        if cohorts:
            retired[path.stem] = {"train": cohorts.get("train", cohorts.get("size", 0)),
                                  "evaluate": cohorts.get("evaluate", 0)}
    return retired
