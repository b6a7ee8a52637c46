"""What a centre allows: its site policy, owned by the centre (``policy.toml`` next to
its data, read by ``client.ingest.policy``), including the privacy floor that every run
must meet whatever the ministry's configuration says (docs/PRIVACY.md, "The centre's
privacy floor")."""

from __future__ import annotations

from dataclasses import dataclass, field

from client.errors import CentreRefusal
from common.config import RunConfig
from common.protocol import SECURE_REGIONS, Reason, Reply

#: The trust models of distributed noise a site policy may name
#: (``PrivacyFloor.distributed_noise_trust``).
TRUST_ALONE, TRUST_SECURE_AGGREGATION = "alone", "secure-aggregation"
TRUST_MODELS = (TRUST_ALONE, TRUST_SECURE_AGGREGATION)


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
    ``allow_prv_accounting``: accept runs booked with the PRV accountant (research only:
    the per-student filter is argued for Renyi accounting; docs/PRIVACY.md, "RDP and PLD").
    ``distributed_noise_trust``: how a share of distributed noise is booked (with
    ``allow_distributed_noise``): ``"alone"`` (the default) what the share costs seen
    alone; ``"secure-aggregation"`` what the SUM of the t - c honest shares that any sum
    the ministry can unmask holds costs (t: the SecAgg+ round's reconstruction threshold,
    c: ``max_colluding_centres``, the most centres the centre assumes collude with an
    honest-but-curious ministry). Under it the centre refuses a SecAgg+ round whose
    threshold does not let its floor hold (``client.privacy.trust``; docs/PRIVACY.md,
    "Distributed noise: what a centre books, and whom it trusts").
    """

    require_dp: bool = True
    delta: float = 1e-6
    max_epsilon_per_run: float = 3.0
    allow_replayable_noise: bool = False
    allow_unnoised_evaluation: bool = False
    allow_distributed_noise: bool = False
    allow_prv_accounting: bool = False
    distributed_noise_trust: str = "alone"
    max_colluding_centres: int = 1

    def honest_shares(self, threshold: int) -> int | None:
        """Under the 'secure-aggregation' trust model, the honest shares any sum of a
        SecAgg+ round of reconstruction threshold ``threshold`` holds (t - c, at most 0
        when c >= t); None under 'alone'."""
        if self.distributed_noise_trust != TRUST_SECURE_AGGREGATION:
            return None
        return threshold - self.max_colluding_centres

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
        # The per-student filter and the discrete Gaussian's bound are Renyi statements:
        # PRV booking across runs is a research option (docs/PRIVACY.md, "RDP and PLD").
        if privacy.dp and privacy.accountant != "rdp" and not self.allow_prv_accounting:
            self._refuse(Reason.FLOOR_ACCOUNTANT)

    @staticmethod
    def _refuse(reason: str, detail: str = "") -> None:
        raise CentreRefusal(f"{reason} ({detail})" if detail else reason, reason, Reply.FLOOR)

    def delta_for(self, config: RunConfig) -> float:
        """The delta noise is calibrated at: the smaller of the run's and the centre's."""
        return min(self.delta, config.privacy.delta)


@dataclass(frozen=True)
class WorkLimits:
    """The most work one run may ask of the centre (``[limits]`` table of the site
    policy), checked against the run's configuration and each instruction BEFORE any
    record is read, any release booked or any model built: a run beyond one limit is
    refused (``Reply.CONFIG``, ``Reason.OUT_OF_LIMITS``), the numbers in the centre's log.

    ``max_hidden_layers`` / ``max_layer_width``: ``training.hidden``;
    ``max_parameters``: weights and biases of the run's model, and elements of the arrays
    an instruction may carry; ``max_rounds``, ``max_local_epochs``, ``max_batch_size``:
    ``rounds``, ``local_epochs``, ``training.batch_size`` (0, automatic, always passes);
    ``max_bins``: ``evaluation.bins``; ``max_regions``: region slots of a secure
    evaluation (``secure.regions``; Québec has 17 administrative regions);
    ``tasks_at_once``: ClientApp tasks the centre's runtime runs at the same time
    (``perseverance-clientapp --max-tasks``).
    """

    max_hidden_layers: int = 4
    max_layer_width: int = 512
    max_parameters: int = 250_000
    max_rounds: int = 100
    max_local_epochs: int = 20
    max_batch_size: int = 4096
    max_bins: int = 200
    max_regions: int = 32
    tasks_at_once: int = 2

    def problems(self, config: RunConfig) -> list[str]:
        """Every value of ``config`` beyond a limit, in words with its numbers (for the
        centre's log only)."""
        hidden = config.training.hidden_sizes
        found = [f"{key} = {value:g}, at most {limit:g}" for key, value, limit in (
            ("number of layers of training.hidden", len(hidden), self.max_hidden_layers),
            ("widest layer of training.hidden", max(hidden, default=0), self.max_layer_width),
            ("rounds", config.rounds, self.max_rounds),
            ("local_epochs", config.local_epochs, self.max_local_epochs),
            ("training.batch_size", config.training.batch_size, self.max_batch_size),
            ("evaluation.bins", config.evaluation.bins, self.max_bins),
        ) if value > limit]
        if not found:  # the widths are bounded: the count is cheap and cannot overflow
            # Imported here: common.model loads torch, which reading a policy (a
            # scenario, a command's options) need not wait for.
            from common.model import ModelConfig

            size = ModelConfig(hidden=hidden).num_parameters
            if size > self.max_parameters:
                found.append(f"the model's parameters = {size}, at most {self.max_parameters}")
        return found

    def check(self, config: RunConfig) -> None:
        """Raise ``CentreRefusal`` (``Reply.CONFIG``) if the run asks for more work."""
        self._refuse(self.problems(config))

    def check_instruction(self, elements: int, regions: int = 0) -> None:
        """Raise ``CentreRefusal`` if an instruction carries more array elements than
        ``max_parameters`` or asks for more region slots than ``max_regions``."""
        self._refuse([f"{key} = {value}, at most {limit}" for key, value, limit in (
            ("array elements of the instruction", elements, self.max_parameters),
            (SECURE_REGIONS, regions, self.max_regions)) if not 0 <= value <= limit])

    @staticmethod
    def _refuse(problems: list[str]) -> None:
        if problems:
            raise CentreRefusal(f"{Reason.OUT_OF_LIMITS} ({'; '.join(problems)})",
                                Reason.OUT_OF_LIMITS, Reply.CONFIG)


@dataclass(frozen=True)
class SitePolicy:
    """What a centre allows. Owned by the centre (a TOML file next to its data).

    ``refused_predictors`` are encoded as missing; ``min_records`` is the number of
    usable labelled, consenting TRAINING records needed to take part in training;
    ``epsilon_cap`` is the centre's lifetime privacy cap (epsilon at ``privacy.delta``,
    the centre's own delta, per student); ``audit_attributes_allowed`` lets
    sex/indigenous be used for equity statistics; ``privacy`` is the privacy floor;
    ``limits`` the most work one run may ask.
    """

    refused_predictors: frozenset[str] = frozenset()
    min_records: int = 50
    epsilon_cap: float = 10.0
    audit_attributes_allowed: bool = True
    max_invalid_fraction: float = 0.05
    privacy: PrivacyFloor = field(default_factory=PrivacyFloor)
    limits: WorkLimits = field(default_factory=WorkLimits)
    extra: dict[str, object] = field(default_factory=dict)
