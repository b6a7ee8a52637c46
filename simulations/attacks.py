"""Poisoning attacks for simulations: a share of the centres is malicious.

The attack is a Flower client mod that the simulation runner plants in the ClientApp
(``client.federation.app.build_client_app(mods)``); the deployed app never carries it. A
scenario's ``[attack]`` table (or ``--set attack.kind=... --set attack.fraction=...``)
chooses it; ``s`` is ``attack.scale`` (10 by default) and ``u`` the centre's honest
update (its new weights minus the global weights it received):

- ``sign-flip``: the centre sends ``-s * u`` ("sign flip, scaled x10"); with
  ``attack.scale=1`` the flipped update keeps its norm and passes every norm check, so
  that only a robust aggregator resists it;
- ``scale``: the centre sends ``s * u`` (a boosted update);
- ``random``: a random direction, ``s`` times the honest update's norm;
- ``label-flip``: the centre trains honestly on its records with the label flipped
  (data poisoning; its evaluation stays honest so that pooled metrics are comparable).

Boosted updates (``s`` above 1) exceed the centres' update bound and are rejected by
the ministry's validation in every aggregation mode. The malicious centres are drawn
once from ``attack.seed`` (``round(fraction * centres)`` of them).
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from flwr.app import ArrayRecord, Context, Message, RecordDict

from client.flower_compat import ClientAppCallable
from common.schema import LABEL
from simulations.scenario import AttackSpec


def malicious_centres(spec: AttackSpec, num_centres: int) -> list[int]:
    """The partition numbers of the malicious centres (sorted)."""
    if not spec.active:
        return []
    count = min(num_centres, round(spec.fraction * num_centres))
    chosen = np.random.default_rng(spec.seed).choice(num_centres, size=count, replace=False)
    return sorted(int(i) for i in chosen)


def write_flipped_labels(files: list[Path], centres: list[int], folder: Path) -> dict[int, Path]:
    """A copy of each malicious centre's file with the label flipped, in ``folder`` (not
    the honest data folder, whose files are the centres' partitions)."""
    folder.mkdir(parents=True, exist_ok=True)
    flipped = {}
    for index in centres:
        source = files[index]
        frame = pd.read_parquet(source) if source.suffix == ".parquet" else pd.read_csv(source)
        labelled = frame[LABEL].notna()
        frame.loc[labelled, LABEL] = ~frame.loc[labelled, LABEL].astype(bool)
        target = folder / f"{source.stem}.parquet"
        frame.to_parquet(target, index=False)
        flipped[index] = target
    return flipped


def _norm(arrays: dict[str, torch.Tensor]) -> torch.Tensor:
    return torch.sqrt(torch.stack([(a.double() ** 2).sum() for a in arrays.values()]).sum())


def poison(
    kind: str, weights: OrderedDict[str, torch.Tensor], global_weights: dict[str, torch.Tensor],
    scale: float, rng: np.random.Generator,
) -> OrderedDict[str, torch.Tensor]:
    """The malicious weights for an honest result ``weights`` (see the module docstring)."""
    deltas = {k: weights[k].double() - global_weights[k].double() for k in weights}
    if kind == "sign-flip":
        deltas = {k: -scale * d for k, d in deltas.items()}
    elif kind == "scale":
        deltas = {k: scale * d for k, d in deltas.items()}
    elif kind == "random":
        noise = {k: torch.from_numpy(rng.standard_normal(tuple(d.shape)))
                 for k, d in deltas.items()}
        factor = scale * _norm(deltas) / _norm(noise)
        deltas = {k: z * factor for k, z in noise.items()}
    return OrderedDict(
        (k, (global_weights[k].double() + deltas[k]).to(weights[k].dtype)) for k in weights
    )


class PoisonMod:
    """The Flower mod that turns the chosen centres malicious (training replies only)."""

    def __init__(self, spec: AttackSpec, centres: list[int],
                 flipped: dict[int, Path] | None = None) -> None:
        self.spec = spec
        self.centres = frozenset(centres)
        self.flipped = flipped or {}
        self.rng = np.random.default_rng(spec.seed)

    def __call__(self, msg: Message, context: Context, call_next: ClientAppCallable) -> Message:
        partition = int(str(context.node_config.get("partition-id", -1)))
        if partition not in self.centres or msg.metadata.message_type != "train":
            return call_next(msg, context)
        if self.spec.kind == "label-flip":
            previous = context.node_config.get("data-path")
            context.node_config["data-path"] = str(self.flipped[partition])
            try:
                return call_next(msg, context)
            finally:
                if previous is None:
                    del context.node_config["data-path"]
                else:
                    context.node_config["data-path"] = previous
        reply = call_next(msg, context)
        if reply.has_error():
            return reply
        global_weights = msg.content["arrays"].to_torch_state_dict()  # type: ignore[union-attr]
        content = reply.content
        arrays_key = next(iter(content.array_records))
        metrics_key = next(iter(content.metric_records))
        weights = content.array_records[arrays_key].to_torch_state_dict()
        bad = poison(self.spec.kind, weights, global_weights, self.spec.scale, self.rng)
        poisoned = RecordDict({arrays_key: ArrayRecord(bad),
                               metrics_key: content.metric_records[metrics_key]})
        return Message(content=poisoned, reply_to=msg)


def attack_mods(
    spec: AttackSpec, files: list[Path], run_dir: Path
) -> tuple[list[PoisonMod], list[int]]:
    """The mods that make ``spec``'s share of the centres malicious in a simulation of
    ``files`` (one per centre), and which centres they are."""
    centres = malicious_centres(spec, len(files))
    if not centres:
        return [], []
    flipped = (write_flipped_labels(files, centres, run_dir / "attack")
               if spec.kind == "label-flip" else {})
    return [PoisonMod(spec, centres, flipped)], centres
