"""Federated averaging in one process, without Flower: the same centre-side round
(``client.federation.rounds.train_round``, DP-SGD included) and the same weighting, for
references and baselines that need many federations quickly, and for measuring the
framework's own cost against raw compute."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace

import numpy as np
import numpy.typing as npt
import torch

from client.federation.rounds import CentreRefusal, centre_plan, model_config, train_round
from client.ingest.centre_data import CentreData
from common.config import RunConfig
from common.model import RiskModel, build_model, predict_proba, set_weights


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Run with ``count`` intra-op threads, as a Ray actor with that many CPUs does.

    For this small model one thread is the fastest on a small machine: a second one
    spins waiting for a core that other work holds (ten times slower on a loaded
    2-core machine, docs/BENCHMARKS.md)."""
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def federate(config: RunConfig, centres: list[CentreData]) -> RiskModel:
    """``config.rounds`` rounds of FedAvg (weighted by training records) over ``centres``."""
    model = build_model(model_config(config), seed=config.seed)
    weights: OrderedDict[str, torch.Tensor] = OrderedDict(model.state_dict())
    plans = []
    for centre in centres:
        try:  # a centre below its min_records takes no part, as in the federation
            plans.append((centre, centre_plan(config, centre, "in-process", None, None)))
        except CentreRefusal:
            continue
    for server_round in range(1, config.rounds + 1):
        results = []
        for centre, plan in plans:
            try:
                result = train_round(config, centre, weights, server_round, plan)
            except CentreRefusal:
                continue
            results.append(result)
        if not results:
            break
        total = sum(r.num_examples for r in results)
        weights = OrderedDict(
            (key, torch.stack([r.weights[key] * (r.num_examples / total) for r in results]).sum(0))
            for key in weights
        )
    set_weights(model, weights)
    return model


def train_alone(config: RunConfig, centre: CentreData) -> RiskModel:
    """One centre training by itself for the whole run, with the same DP budget."""
    return federate(config, [centre])


def scores(model: RiskModel, centres: list[CentreData]) -> tuple[
    npt.NDArray[np.float64], npt.NDArray[np.float32]
]:
    """Held-out probabilities and labels of all centres, in centre order."""
    probabilities = np.concatenate([predict_proba(model, c.x_test) for c in centres])
    labels = np.concatenate([c.y_test for c in centres])
    return probabilities, labels


def restricted(centres: list[CentreData], predictors: tuple[str, ...]) -> list[CentreData]:
    """The same centres with every other predictor encoded as missing."""
    from common.encoding import keep_only

    return [
        replace(c, x_train=keep_only(c.x_train, predictors), x_test=keep_only(c.x_test, predictors))
        for c in centres
    ]
