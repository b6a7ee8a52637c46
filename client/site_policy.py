"""What a centre allows: its site policy, owned by the centre (``policy.toml`` next to
its data, read by ``client.ingest.policy``), including the privacy floor that every run
must meet whatever the ministry's configuration says (docs/PRIVACY.md, "The centre's
privacy floor")."""

from __future__ import annotations

from dataclasses import dataclass, field

from client.errors import CentreRefusal
from common.config import RunConfig
from common.protocol import Reason, Reply


@dataclass(frozen=True)
class PrivacyFloor:
    """The least privacy the centre accepts, checked against each run before any data
    is touched (``[privacy]`` table of the site policy).

    ``require_dp``: runs without DP-SGD are refused. ``delta``: the centre's own delta;
    every release is booked, and the lifetime cap and ``max_epsilon_per_run`` checked, at
    it, and noise is calibrated at the smaller of it and the run's delta.
    ``max_epsilon_per_run``: the largest epsilon (at ``delta``, per student) one run may
    spend here, for training and for evaluation each (they compose in parallel).
    ``allow_replayable_noise``: accept noise drawn from the run's seed (research only).
    ``allow_unnoised_evaluation``: accept evaluation releases without noise.
    ``allow_distributed_noise``: in a secure run that asks for it, add only a share of
    the evaluation noise (the SUM meets the run's target; this centre's own release then
    costs more, booked and held to ``max_epsilon_per_run``); without it the centre adds
    the whole noise, as if the sum were not secure (docs/PRIVACY.md, "Distributed noise").
    """

    require_dp: bool = True
    delta: float = 1e-6
    max_epsilon_per_run: float = 3.0
    allow_replayable_noise: bool = False
    allow_unnoised_evaluation: bool = False
    allow_distributed_noise: bool = False

    def check(self, config: RunConfig) -> None:
        """Raise ``CentreRefusal`` (code ``Reply.FLOOR``) if the run is below the floor."""
        privacy = config.privacy
        if self.require_dp and not privacy.dp:
            self._refuse(Reason.FLOOR_NO_DP)
        if privacy.dp and privacy.epsilon > self.max_epsilon_per_run:
            self._refuse(Reason.FLOOR_EPSILON, f"the run asks for epsilon {privacy.epsilon:g}, "
                         f"the floor accepts at most {self.max_epsilon_per_run:g} per run")
        if privacy.reproducible_noise and not self.allow_replayable_noise:
            self._refuse(Reason.FLOOR_REPLAYABLE)
        if privacy.dp and not privacy.evaluation_noise and not self.allow_unnoised_evaluation:
            self._refuse(Reason.FLOOR_EVALUATION)

    @staticmethod
    def _refuse(reason: str, detail: str = "") -> None:
        raise CentreRefusal(f"{reason} ({detail})" if detail else reason, reason, Reply.FLOOR)

    def delta_for(self, config: RunConfig) -> float:
        """The delta noise is calibrated at: the smaller of the run's and the centre's."""
        return min(self.delta, config.privacy.delta)


@dataclass(frozen=True)
class SitePolicy:
    """What a centre allows. Owned by the centre (a TOML file next to its data).

    ``refused_predictors`` are encoded as missing; ``min_records`` is the number of
    usable labelled, consenting TRAINING records needed to take part in training;
    ``epsilon_cap`` is the centre's lifetime privacy cap (epsilon at ``privacy.delta``,
    the centre's own delta, per student); ``audit_attributes_allowed`` lets
    sex/indigenous be used for equity statistics; ``privacy`` is the privacy floor.
    """

    refused_predictors: frozenset[str] = frozenset()
    min_records: int = 50
    epsilon_cap: float = 10.0
    audit_attributes_allowed: bool = True
    max_invalid_fraction: float = 0.05
    privacy: PrivacyFloor = field(default_factory=PrivacyFloor)
    extra: dict[str, object] = field(default_factory=dict)
