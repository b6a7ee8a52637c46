"""Scenario files: a federation to simulate, as TOML, never as code.

A scenario has a ``name``, a ``[network]`` table (the synthetic network to generate)
or a ``[data]`` table (real files to federate), a ``[backend]`` table (the simulation
engine's resources), an optional ``[attack]`` table (malicious centres, see
``simulations.attacks``) and any run-configuration key (``rounds``, ``[privacy]``, ...: see
``common.config``). ``--set KEY=VALUE`` overrides any of them, e.g. ``rounds=3``,
``privacy.epsilon=1``, ``network.centres=20``, ``backend.num_cpus=1``.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields, replace
from importlib import resources
from pathlib import Path
from typing import Any

from client.site_policy import PrivacyFloor
from common.config import ConfigError, RunConfig, parse_assignment, unknown_key
from common.i18n.catalogue import N_

SCENARIO_FOLDER = "scenarios"  # inside the simulations package


@dataclass(frozen=True)
class NetworkSpec:
    """The synthetic network: ``centres`` centres, about ``students`` students in all."""

    centres: int = 12
    students: int = 45_000
    seed: int = 7
    include_indigenous_boards: bool = False
    consent_refusal_rate: float = 0.02
    unlabelled_rate: float = 0.0

    def __post_init__(self) -> None:
        if self.centres < 2:
            raise ConfigError(N_("Invalid scenario: network.centres must be at least 2."))
        if self.students < 100 * self.centres:
            raise ConfigError(N_("Invalid scenario: network.students must be >= 100 per "
                                 "centre."))


@dataclass(frozen=True)
class DataSpec:
    """Real files instead of a generated network: ``source`` split into centres by the
    mapping's centre column, each centre's rows mapped by ``mapping``."""

    source: str = ""
    mapping: str = ""


@dataclass(frozen=True)
class BackendSpec:
    """Simulation engine resources. ``address`` empty runs Ray in-process; HOST:PORT
    joins an existing Ray cluster."""

    num_cpus: float = 1.0
    address: str = ""


@dataclass(frozen=True)
class BaselinesSpec:
    """Compute the environment-only and local-only baselines after the federation."""

    enabled: bool = True


ATTACK_KINDS = ("none", "sign-flip", "scale", "random", "label-flip")


@dataclass(frozen=True)
class AttackSpec:
    """A scenario's ``[attack]`` table (see ``simulations.attacks``): ``kind`` (one of
    ``ATTACK_KINDS``), ``fraction`` of the centres that are malicious (0-1), ``scale``
    (the malicious update's size, in honest updates), ``seed`` that chooses the
    malicious centres."""

    kind: str = "none"
    fraction: float = 0.0
    scale: float = 10.0
    seed: int = 1

    def __post_init__(self) -> None:
        if self.kind not in ATTACK_KINDS:
            raise ConfigError(N_("Invalid scenario: attack.kind must be one of %(kinds)s.",
                                 kinds=", ".join(ATTACK_KINDS)))
        if not 0.0 <= self.fraction <= 1.0:
            raise ConfigError(N_("Invalid scenario: attack.fraction must be in [0, 1]."))
        if self.scale <= 0:
            raise ConfigError(N_("Invalid scenario: attack.scale must be positive."))

    @property
    def active(self) -> bool:
        return self.kind != "none" and self.fraction > 0


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    network: NetworkSpec
    data: DataSpec
    backend: BackendSpec
    baselines: BaselinesSpec
    run: RunConfig
    source_file: str = ""
    overrides: dict[str, str] = field(default_factory=dict)
    attack: AttackSpec = field(default_factory=AttackSpec)
    # The simulated centres' privacy floor (their policy.toml's [privacy] table): a
    # research run that lowers it says so (``centre_policy.require_dp=false``, ...).
    centre_policy: PrivacyFloor = field(default_factory=PrivacyFloor)


SECTIONS: dict[str, type] = {
    "network": NetworkSpec, "data": DataSpec, "backend": BackendSpec, "baselines": BaselinesSpec,
    "attack": AttackSpec, "centre_policy": PrivacyFloor,
}


def available_scenarios() -> list[str]:
    folder = resources.files("simulations") / SCENARIO_FOLDER
    return sorted(p.name.removesuffix(".toml") for p in folder.iterdir()
                  if p.name.endswith(".toml"))


def _read_scenario_file(name_or_file: str) -> tuple[dict[str, Any], str]:
    path = Path(name_or_file)
    if path.suffix == ".toml" or path.exists():
        if not path.is_file():
            raise ConfigError(N_("The scenario file %(path)s does not exist.", path=path))
        text, origin = path.read_text(encoding="utf-8"), str(path)
    else:
        candidate = resources.files("simulations") / SCENARIO_FOLDER / f"{name_or_file}.toml"
        if not candidate.is_file():
            known = ", ".join(available_scenarios())
            raise ConfigError(N_("There is no scenario named '%(name)s' (known: %(known)s).",
                                 name=name_or_file, known=known))
        text, origin = candidate.read_text(encoding="utf-8"), name_or_file
    try:
        return tomllib.loads(text), origin
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(N_("The scenario %(name)s is not valid TOML: %(reason)s.",
                             name=origin, reason=str(exc))) from exc


def _flatten(table: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in table.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def build_section(cls: type, values: dict[str, Any]) -> Any:
    known = {f.name: f for f in fields(cls)}
    typed: dict[str, Any] = {}
    for key, value in values.items():
        if key not in known:
            section = next((name for name, kind in SECTIONS.items() if kind is cls),
                           cls.__name__)
            raise unknown_key(f"{section}.{key}", (f"{section}.{name}" for name in known))
        default = getattr(cls(), key)
        try:
            if isinstance(default, bool):
                typed[key] = value if isinstance(value, bool) else str(value).lower() in (
                    "1", "true", "yes", "on")
            elif isinstance(default, int):
                typed[key] = int(value)
            elif isinstance(default, float):
                typed[key] = float(value)
            else:
                typed[key] = str(value)
        except (TypeError, ValueError):
            raise ConfigError(N_("Scenario key '%(key)s' got an invalid value %(value)r.",
                                 key=key, value=value)) from None
    return cls(**typed)


def scenario_keys() -> list[str]:
    """The keys of a scenario's own sections (``network.centres``, ...)."""
    return [f"{section}.{f.name}" for section, kind in SECTIONS.items() for f in fields(kind)]


def load_scenario(name_or_file: str, overrides: list[str] | None = None) -> Scenario:
    """Read a scenario by name (shipped) or path, apply ``KEY=VALUE`` overrides."""
    raw, origin = _read_scenario_file(name_or_file)
    flat = _flatten(raw)
    assignments = dict(parse_assignment(text) for text in overrides or [])
    flat.update(assignments)
    name = str(flat.pop("name", Path(origin).stem))
    description = str(flat.pop("description", ""))
    sections: dict[str, dict[str, Any]] = {key: {} for key in SECTIONS}
    run_flat: dict[str, Any] = {}
    for key, value in flat.items():
        head, _, rest = key.partition(".")
        if head in SECTIONS and rest:
            sections[head][rest] = value
        else:
            run_flat[key] = value
    run_flat.setdefault("scenario", name)
    run_keys = RunConfig().to_flat()
    for key in run_flat:
        if key not in run_keys:  # a mistyped section ("netwrk.centres") is offered too
            raise unknown_key(key, [*run_keys, *scenario_keys()])
    return Scenario(
        name=name,
        description=description,
        network=build_section(NetworkSpec, sections["network"]),
        data=build_section(DataSpec, sections["data"]),
        backend=build_section(BackendSpec, sections["backend"]),
        baselines=build_section(BaselinesSpec, sections["baselines"]),
        run=RunConfig.from_flat(run_flat),
        source_file=origin,
        overrides=assignments,
        attack=build_section(AttackSpec, sections["attack"]),
        centre_policy=build_section(PrivacyFloor, sections["centre_policy"]),
    )


def with_run(scenario: Scenario, **changes: Any) -> Scenario:
    """The same scenario with run-configuration fields replaced."""
    return replace(scenario, run=replace(scenario.run, **changes))
