"""The run configuration: read once into a frozen, typed, range-checked object.

The same flat keys are used everywhere: ``[tool.flwr.app.config]`` in pyproject.toml
(the defaults), a scenario TOML file (nested tables), ``--set KEY=VALUE`` and Flower's
``context.run_config`` (flat, dotted keys such as ``privacy.epsilon``).
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any

from common.equity.audit import AUDIT_GROUPS
from common.errors import ExitCode, PerseveranceError
from common.i18n.catalogue import N_, Sentence, word

ConfigValue = bool | int | float | str
#: Keys the harnesses set themselves (the scenario's name, the run and data folders, the
#: centres' state root): accepted, but never offered to a user as known keys.
INTERNAL_KEYS = frozenset({"scenario", "run_dir", "data_dir", "state_root"})


class ConfigError(PerseveranceError, ValueError):
    """A configuration value a user gave is wrong. The message is one sentence."""

    exit_code = ExitCode.UNUSABLE


#: The accountants a run may book with (``privacy.accountant``): names of Opacus's
#: accountants (``opacus.accountants.create_accountant``; common.privacy.accounting makes
#: them). "rdp", the default, is the only Renyi one: the per-student filter
#: (``filter_epsilon``) and the discrete Gaussian's bound are argued in RDP, so a centre's
#: floor refuses the others unless its policy allows them (docs/PRIVACY.md). Adding one
#: Opacus has: its name here, its row in docs/reference/configuration*.md, a test.
ACCOUNTANTS: tuple[str, ...] = ("rdp", "prv")


@dataclass(frozen=True)
class TrainingConfig:
    """Local training. ``batch_size`` 0 picks it from the centre's size.

    ``max_update_norm`` bounds the L2 norm of each centre's update (its new weights minus
    the global weights it received), in every aggregation mode; honest updates of the
    default model measure about 9 (scale the bound with the square root of the number of
    parameters when ``hidden`` grows).
    """

    hidden: str = "64,32"
    learning_rate: float = 0.02
    batch_size: int = 0
    centralized_epochs: int = 8
    max_update_norm: float = 12.0

    @property
    def hidden_sizes(self) -> tuple[int, ...]:
        return tuple(int(part) for part in self.hidden.split(",") if part.strip())


@dataclass(frozen=True)
class PrivacyConfig:
    """Student-level DP-SGD at every centre.

    ``epsilon`` is the target per centre for the whole run (all rounds), at ``delta``,
    with respect to one student's record. ``max_grad_norm`` is the per-sample clipping
    bound. ``dp`` false trains without DP (a reference, never for deployment).
    ``reproducible_noise`` draws batches and noise from the run's seed instead of OS
    entropy, so that two runs can be compared (research only: replayable noise voids
    the guarantee). ``evaluation_noise`` adds Gaussian noise to what centres release
    when they evaluate (histograms, equity counts), within the same epsilon target.

    ``secure_aggregation`` runs the training rounds through Flower's SecAgg+
    (``server.federation.secure``): the ministry learns only the weighted sum of the centres'
    updates. Each centre shares its mask secrets with ``secagg_shares`` of the round's
    centres (a fraction, itself included), and ``secagg_threshold`` of those shares (a
    fraction above one half) are needed to unmask, so up to ``shares - threshold`` of a
    centre's neighbours may drop out mid-round. ``secagg_max_weight`` is the largest
    FedAvg weight (training records) a centre may bring: a bigger centre counts as this
    many, since SecAgg+ would overflow silently past it. ``distributed_noise`` (secure
    mode only) asks each centre for a share of the evaluation noise, so that the SUM
    the ministry sees meets ``epsilon`` (docs/PRIVACY.md, "Distributed noise").
    """

    dp: bool = True
    epsilon: float = 3.0
    delta: float = 1e-6
    max_grad_norm: float = 1.0
    accountant: str = "rdp"
    reproducible_noise: bool = False
    evaluation_noise: bool = True
    secure_aggregation: bool = False
    secagg_shares: float = 1.0
    secagg_threshold: float = 0.67
    secagg_max_weight: int = 30_000
    distributed_noise: bool = False


@dataclass(frozen=True)
class EvaluationConfig:
    """Federated evaluation: score histograms with ``bins`` fixed bins (equal on the
    logit scale, see ``common.metrics``), held-out
    share ``test_fraction``, operating ``threshold`` (probability 0-1) for the equity
    audit's true- and false-positive rates. ``centre_register`` is the ministry's file
    placing centres in administrative regions for the audit's region rows (the inventory
    of enrolled centres, or a simulated network's ``centres.json``; see
    ``server.federation.regions``); empty: no region rows. ``threshold`` is read on the
    recalibrated probabilities school teams read (``common.calibration``): the audit's
    exchange carries its raw-score equivalent. ``progress_every``: the pooled score
    histogram is released after rounds k, 2k, ... (0: none before the final round, which
    is always evaluated); the evaluation budget those rounds do not use goes to the
    final histogram and the audit. ``audit_weights``: how the audit's noise is shared
    between its attributes, ``"imse_band=1.75,sex=1"`` (an attribute it does not name
    weighs 1; empty: all equal): attribute ``a`` gets the noise std
    ``m * sqrt(sum(w) / w[a])``, where ``m`` is the audit's multiplier, so the release's
    privacy is that of the equal shares (``common.privacy.accounting.audit_noise_stds``).
    ``placement``: where the score bins are (issue 30): ``"released"`` (the default)
    places each evaluation's edges at the quantiles of the pooled histogram released
    before it (the first on the fixed bins; ``common.metrics.place_edges``),
    ``"fixed"`` keeps the fixed bins on logit -7..5 throughout (the behaviour before)."""

    bins: int = 20
    test_fraction: float = 0.2
    threshold: float = 0.3
    centre_register: str = ""
    progress_every: int = 1
    audit_weights: str = ""
    placement: str = "released"

    @property
    def audit_weight_map(self) -> dict[str, float]:
        """The weight of each audit attribute (``audit_weights``); raises ValueError
        on a malformed text, a name that is no audit attribute or a weight that is not
        a positive finite number."""
        weights = {group.name: 1.0 for group in AUDIT_GROUPS}
        for part in filter(None, (p.strip() for p in self.audit_weights.split(","))):
            name, sep, value = part.partition("=")
            weight = float(value) if sep else math.nan
            if name.strip() not in weights or not math.isfinite(weight) or weight <= 0:
                raise ValueError(part)
            weights[name.strip()] = weight
        return weights


#: Where the evaluation's score bins are (``EvaluationConfig.placement``).
PLACEMENTS = ("released", "fixed")

AGGREGATIONS = ("fedavg", "trimmed-mean", "median", "krum", "multi-krum")


@dataclass(frozen=True)
class StrategyConfig:
    """How the ministry combines updates: ``aggregation`` is one of ``AGGREGATIONS``
    (every mode but ``fedavg`` sees individual updates, so none is for secure
    aggregation). ``trim_fraction`` (0-0.5) is the share of centres the robust modes
    assume may be malicious: cut from each tail by ``trimmed-mean``, Krum's ``f``."""

    aggregation: str = "fedavg"
    trim_fraction: float = 0.2


@dataclass(frozen=True)
class RunConfig:
    """Everything a federated run needs, on both sides.

    ``round_timeout`` (seconds) bounds the wait for the centres' replies in each phase of
    a round; ``min_centres_wait`` (seconds) bounds the wait for ``min_centres`` centres to
    be connected before a round, after which the run stops; ``resume`` continues the run
    whose checkpoint is in ``run_dir`` from its last completed round. ``state_root``
    (simulations only) is the folder under which each simulated centre keeps its
    persistent state (``centre-<partition-id>``: privacy ledger, records key, run plans,
    audit log); empty keeps it in the run folder (``run_dir/state``). Successive runs
    given the same ``state_root`` share their centres' ledgers, as a real centre's
    ledger outlives its runs (``perseverance-sim years``). A deployed SuperNode's
    ``state-dir`` node config takes precedence.
    """

    scenario: str = "default"
    seed: int = 7
    rounds: int = 6
    local_epochs: int = 2
    fraction_train: float = 1.0
    min_centres: int = 2
    run_dir: str = ""
    data_dir: str = ""
    state_root: str = ""
    resume: bool = False
    round_timeout: float = 3600.0
    min_centres_wait: float = 600.0
    training: TrainingConfig = field(default_factory=TrainingConfig)
    privacy: PrivacyConfig = field(default_factory=PrivacyConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    strategy: StrategyConfig = field(default_factory=StrategyConfig)

    def __post_init__(self) -> None:
        _check(self.rounds >= 1, N_("rounds must be at least 1"))
        _check(self.local_epochs >= 1, N_("local_epochs must be at least 1"))
        _check(0.0 < self.fraction_train <= 1.0, N_("fraction_train must be in (0, 1]"))
        _check(self.min_centres >= 1, N_("min_centres must be at least 1"))
        _check(self.round_timeout > 0, N_("round_timeout must be positive (seconds)"))
        _check(self.min_centres_wait >= 0, N_("min_centres_wait must be 0 or more (seconds)"))
        _check(self.training.max_update_norm > 0, N_("training.max_update_norm must be positive"))
        _check(
            self.strategy.aggregation in AGGREGATIONS,
            N_("strategy.aggregation must be one of %(names)s", names=", ".join(AGGREGATIONS)),
        )
        _check(0.0 <= self.strategy.trim_fraction < 0.5,
               N_("strategy.trim_fraction must be in [0, 0.5)"))
        _check(self.training.learning_rate > 0, N_("training.learning_rate must be positive"))
        _check(self.training.batch_size >= 0, N_("training.batch_size must be 0 (auto) or more"))
        _check(self.training.centralized_epochs >= 1,
               N_("training.centralized_epochs must be >= 1"))
        try:
            sizes = self.training.hidden_sizes
        except ValueError:
            sizes = ()
        _check(
            len(sizes) >= 1 and all(s > 0 for s in sizes),
            N_("training.hidden must list layer widths such as \"64,32\""),
        )
        _check(self.privacy.epsilon > 0, N_("privacy.epsilon must be positive"))
        _check(0.0 < self.privacy.delta < 1e-2, N_("privacy.delta must be in (0, 0.01)"))
        _check(self.privacy.max_grad_norm > 0, N_("privacy.max_grad_norm must be positive"))
        _check(self.privacy.accountant in ACCOUNTANTS,
               N_("privacy.accountant must be one of %(names)s",
                  names=", ".join(ACCOUNTANTS)))
        _check(0.0 < self.privacy.secagg_shares <= 1.0,
               N_("privacy.secagg_shares must be in (0, 1]"))
        _check(
            0.5 < self.privacy.secagg_threshold <= 1.0,
            N_("privacy.secagg_threshold must be in (0.5, 1]"),
        )
        _check(self.privacy.secagg_max_weight >= 1, N_("privacy.secagg_max_weight must be >= 1"))
        _check(
            not self.privacy.secure_aggregation or self.strategy.aggregation == "fedavg",
            N_("strategy.aggregation must be fedavg with privacy.secure_aggregation, because "
               "the robust aggregators need the individual updates the server no longer sees"),
        )
        _check(
            not self.privacy.distributed_noise or (self.privacy.secure_aggregation
                                                   and self.privacy.accountant == "rdp"),
            N_("privacy.distributed_noise needs privacy.secure_aggregation and the rdp "
               "accountant, because only SecAgg+ keeps the centres' shares apart and the "
               "sum's bound is a Renyi one"),
        )
        _check(2 <= self.evaluation.bins <= 10_000, N_("evaluation.bins must be in 2-10000"))
        _check(0.0 < self.evaluation.threshold < 1.0,
               N_("evaluation.threshold must be in (0, 1)"))
        _check(self.evaluation.progress_every >= 0,
               N_("evaluation.progress_every must be >= 0"))
        _check(self.evaluation.placement in PLACEMENTS,
               N_("evaluation.placement must be released or fixed"))
        try:
            weights = self.evaluation.audit_weight_map
        except ValueError:
            weights = {}
        _check(bool(weights), N_("evaluation.audit_weights must list attribute=weight pairs "
                                 "such as \"imse_band=1.75,sex=1\", each a positive number "
                                 "for an audit attribute (%(names)s)",
                                 names=", ".join(g.name for g in AUDIT_GROUPS)))
        _check(
            0.0 < self.evaluation.test_fraction < 1.0,
            N_("evaluation.test_fraction must be in (0, 1)"),
        )

    # -- flat view -----------------------------------------------------------------
    def to_flat(self) -> dict[str, ConfigValue]:
        """Flat, dotted keys as in Flower's run config."""
        flat: dict[str, ConfigValue] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if is_dataclass(value):
                for sub in fields(value):
                    flat[f"{f.name}.{sub.name}"] = getattr(value, sub.name)
            else:
                flat[f.name] = value
        return flat

    @classmethod
    def from_flat(cls, flat: Mapping[str, Any]) -> RunConfig:
        """Build from flat dotted keys; unknown keys and wrong types are refused."""
        top: dict[str, Any] = {}
        nested: dict[str, dict[str, Any]] = {}
        defaults = cls().to_flat()
        for key, raw in flat.items():
            if key not in defaults:
                raise unknown_key(key, defaults)
            value = _coerce(key, raw, defaults[key])
            if "." in key:
                section, name = key.split(".", 1)
                nested.setdefault(section, {})[name] = value
            else:
                top[key] = value
        sections = {"training": TrainingConfig, "privacy": PrivacyConfig,
                    "evaluation": EvaluationConfig, "strategy": StrategyConfig}
        for section, section_cls in sections.items():
            top[section] = section_cls(**nested.get(section, {}))
        return cls(**top)


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(N_("Invalid configuration: %(problem)s.", problem=message
                             if isinstance(message, Sentence) else word(message)))


def _coerce(key: str, raw: Any, default: ConfigValue) -> ConfigValue:
    """Coerce a value (possibly a string from ``--set``) to the default's type."""
    try:
        if isinstance(default, bool):
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in ("true", "1", "yes", "on"):
                return True
            if text in ("false", "0", "no", "off"):
                return False
            raise ValueError(raw)
        if isinstance(default, int):
            if isinstance(raw, float) and not raw.is_integer():
                raise ValueError(raw)
            return int(raw)
        if isinstance(default, float):
            return float(raw)
        return str(raw)
    except (TypeError, ValueError):
        kind = {bool: N_("a boolean"), int: N_("an integer"), float: N_("a number")}.get(
            type(default), N_("text"))
        raise ConfigError(N_("Configuration key '%(key)s' needs %(kind)s, got %(value)r.",
                             key=key, kind=word(kind), value=raw)) from None


def unknown_key(key: str, known: Iterable[str]) -> ConfigError:
    """The error for a key that is none of ``known``: the closest known key when one is
    close ("did you mean"), and the known keys but the internal ones
    (:data:`INTERNAL_KEYS`)."""
    offered = sorted(k for k in set(known) if k not in INTERNAL_KEYS)
    close = difflib.get_close_matches(key, offered, n=1, cutoff=0.6)
    if close:
        return ConfigError(N_("Unknown configuration key '%(key)s'; did you mean "
                              "'%(suggestion)s'? Known keys: %(known)s.", key=key,
                              suggestion=close[0], known=", ".join(offered)))
    return ConfigError(N_("Unknown configuration key '%(key)s' (known keys: %(known)s).",
                          key=key, known=", ".join(offered)))


def parse_assignment(text: str) -> tuple[str, str]:
    """Split ``KEY=VALUE`` from the command line."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(N_("'%(text)s' is not of the form KEY=VALUE.", text=text))
    return key.strip(), value.strip()
