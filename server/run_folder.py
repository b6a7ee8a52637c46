"""The run folder: what a run leaves behind, written so that nothing is half written.

Layout: ``config.toml`` (the resolved run configuration), ``rounds.jsonl`` (one line of
metrics per round), ``model.pt`` (final weights beside the model and run configuration),
``evaluation.json`` (the final pooled histogram), ``equity.json`` (the federated equity
audit of the final model), ``participation.json`` (centres' sizes, epsilon spent, AUC by
size band), ``summary.json``.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import tomli_w
import torch

from common.calibration import Calibration
from common.config import RunConfig
from common.files import atomic_write_bytes
from common.i18n.catalogue import N_, from_record
from common.model import ModelConfig
from server.summary import Summary, merged, summary_of

SUMMARY = "summary.json"
MODEL = "model.pt"
ROUNDS = "rounds.jsonl"
CONFIG = "config.toml"
EVALUATION = "evaluation.json"
EQUITY = "equity.json"
PARTICIPATION = "participation.json"


def default_run_dir(scenario: str, base: Path = Path("runs")) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return base / f"{scenario}-{stamp}"


def resolve_run_dir(config: RunConfig) -> Path:
    run_dir = Path(config.run_dir) if config.run_dir else default_run_dir(config.scenario)
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


def _finite(value: Any) -> Any:
    """NaN and infinities are not JSON: write them as null ("not measurable")."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def write_json(path: Path, payload: Mapping[str, Any]) -> None:
    text = json.dumps(_finite(payload), indent=2, sort_keys=True, allow_nan=False)
    atomic_write_bytes(path, (text + "\n").encode())


def read_json(path: Path) -> dict[str, Any]:
    return dict(json.loads(path.read_text(encoding="utf-8")))


def stopped_reason(summary: Summary) -> str:
    """Why the run of ``summary`` stopped early ("" if it did not): the sentence with its
    parameters when the summary keeps them (to be shown translated), else its text."""
    if summary.stopped_sentence:
        return from_record(summary.stopped_sentence)
    return summary.stopped or ""


def stopped_early(summary: Summary, rounds: int, run_dir: Path) -> str:
    """The sentence a launcher ends with when the run of ``summary`` did not complete its
    ``rounds`` rounds (with why, when the summary says)."""
    reason = stopped_reason(summary)
    done = summary.rounds_completed or 0
    if reason:
        return N_("The federation stopped after %(done)s of %(rounds)s rounds (%(reason)s); "
                  "see %(run_dir)s.", done=done, rounds=rounds, reason=reason,
                  run_dir=str(run_dir))
    return N_("The federation stopped after %(done)s of %(rounds)s rounds; see %(run_dir)s.",
              done=done, rounds=rounds, run_dir=str(run_dir))


def update_summary(run_dir: Path, *fields: Summary) -> Summary:
    """Set ``fields`` (the keys given to each :class:`~server.summary.Summary`, the
    later over the earlier) in ``summary.json``: read, merge, check against the type,
    atomic rewrite. The one writer of the summary; returns it as written."""
    path = run_dir / SUMMARY
    summary = merged(read_json(path) if path.exists() else {}, *fields)
    write_json(path, summary.written())
    return summary


def read_summary(run_dir: Path) -> Summary:
    """The summary of ``run_dir`` (:func:`server.summary.summary_of`: tolerant of an
    older run folder). Raises ``FileNotFoundError`` without one and ``ValueError`` when
    it is not a JSON object (being written by another version, or damaged)."""
    data = json.loads((run_dir / SUMMARY).read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{run_dir / SUMMARY} is not a JSON object")
    return summary_of(data)


def summary_or_empty(run_dir: Path) -> Summary:
    """The summary of ``run_dir``, or an empty one when it has none (yet) or it cannot
    be read as it is being replaced: what a reader that must not fail (the console) uses."""
    try:
        return read_summary(run_dir)
    except (OSError, ValueError):
        return Summary()


def write_config(run_dir: Path, config: RunConfig) -> None:
    atomic_write_bytes(run_dir / CONFIG, tomli_w.dumps(config.to_flat()).encode())


def append_round(run_dir: Path, entry: Mapping[str, Any]) -> None:
    with (run_dir / ROUNDS).open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(entry, sort_keys=True) + "\n")


def read_rounds(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / ROUNDS
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def save_model(
    run_dir: Path,
    state_dict: Mapping[str, torch.Tensor],
    model_config: ModelConfig,
    config: RunConfig,
    calibration: Calibration | None = None,
) -> Path:
    """Save the final weights with the configuration needed to rebuild and audit them,
    and the calibration fitted on the final pooled evaluation."""
    path = run_dir / MODEL
    buffer = io.BytesIO()
    torch.save(
        {
            "state_dict": dict(state_dict),
            "model_config": model_config.to_dict(),
            "run_config": config.to_flat(),
            "calibration": (calibration or Calibration()).to_dict(),
        },
        buffer,
    )
    atomic_write_bytes(path, buffer.getvalue())
    return path
