"""The aggregation modes (``strategy.aggregation``), built from Flower's strategies.

``fedavg`` is :class:`server.federation.strategy.PooledFedAvg`. The robust modes put
``PooledFedAvg`` first in their bases and Flower's robust strategy second, so that
validation, the quorum and pooled evaluation stay ours and only the combination of
the updates is Flower's:

- ``trimmed-mean``: FedTrimmedAvg, coordinate-wise mean after cutting
  ``strategy.trim_fraction`` of the updates from each tail (Yin et al. 2018);
- ``median``: FedMedian, the coordinate-wise median;
- ``krum``: the one update closest to its ``n - f - 2`` nearest neighbours
  (Blanchard et al. 2017), ``f = floor(trim_fraction * n)``;
- ``multi-krum``: the ``n - f`` best updates by Krum's score, averaged by examples.

The robust modes see every update on its own: they cannot be combined with secure
aggregation, where the ministry only learns the sum. All of them aggregate weights,
which is the same as aggregating updates since every centre started from the same
global model.
"""

from __future__ import annotations

from collections.abc import Iterable

from flwr.app import ArrayRecord, Message, MetricRecord
from flwr.serverapp.strategy import FedMedian, FedTrimmedAvg, Krum, MultiKrum

from common.config import RunConfig
from server.federation.audit_log import ServerAudit
from server.federation.bookkeeping import RoundCallback, RunBook
from server.federation.strategy import PooledFedAvg


class PooledTrimmedAvg(PooledFedAvg, FedTrimmedAvg):
    """Trimmed mean of the valid updates, pooled evaluation."""


class PooledMedian(PooledFedAvg, FedMedian):
    """Coordinate-wise median of the valid updates, pooled evaluation."""


class _KrumFraction:
    """Krum's ``f`` from the share of centres assumed malicious, at each round: how many
    centres reply is only known then."""

    trim_fraction: float
    num_malicious_nodes: int

    def _set_malicious(self, replies: list[Message]) -> int:
        valid = sum(1 for reply in replies if not reply.has_error())
        self.num_malicious_nodes = int(self.trim_fraction * valid)
        return valid


class PooledKrum(_KrumFraction, PooledFedAvg, Krum):
    """Krum over the valid updates, pooled evaluation."""

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        replies = list(replies)
        self._set_malicious(replies)
        return super().aggregate_train(server_round, replies)


class PooledMultiKrum(_KrumFraction, PooledFedAvg, MultiKrum):
    """Multi-Krum over the valid updates (keeps ``n - f``), pooled evaluation."""

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        replies = list(replies)
        valid = self._set_malicious(replies)
        self.num_nodes_to_select = max(1, valid - self.num_malicious_nodes)
        return super().aggregate_train(server_round, replies)


STRATEGIES: dict[str, type[PooledFedAvg]] = {
    "fedavg": PooledFedAvg,
    "trimmed-mean": PooledTrimmedAvg,
    "median": PooledMedian,
    "krum": PooledKrum,
    "multi-krum": PooledMultiKrum,
}


def build_strategy(
    config: RunConfig, on_round: RoundCallback | None = None, audit: ServerAudit | None = None,
    book: RunBook | None = None,
) -> PooledFedAvg:
    """The strategy of ``config.strategy.aggregation``, validating updates against
    ``training.max_update_norm`` and needing ``min_centres`` valid updates to change the
    model. Flower's own wait for nodes has no deadline: the federation waits for
    ``min_centres`` centres itself and hands the strategy only connected ones."""
    name = config.strategy.aggregation
    extra: dict[str, object] = {}
    if name == "trimmed-mean":
        extra["beta"] = config.strategy.trim_fraction
    strategy = STRATEGIES[name](
        book if book is not None else RunBook(config, audit),
        on_round=on_round,
        max_update_norm=config.training.max_update_norm,
        min_updates=config.min_centres,
        fraction_train=config.fraction_train,
        fraction_evaluate=1.0,
        # At least min_centres are connected when a round starts (the federation's wait).
        min_train_nodes=config.min_centres,
        min_evaluate_nodes=1,
        min_available_nodes=1,
        **extra,
    )
    if isinstance(strategy, _KrumFraction):
        strategy.trim_fraction = config.strategy.trim_fraction
    return strategy
