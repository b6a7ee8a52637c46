"""The centre's site policy: reading it, and applying it to the harmonised columns.

Teacher and class columns are refused whatever a policy says: they are dropped when
the file is read (``client.ingest.mapping``) and no policy key can bring them back.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import pandas as pd

from client.ingest.errors import IngestError, quote
from client.ingest.toml_files import read_toml
from client.site_policy import (
    TRUST_ALONE,
    TRUST_MODELS,
    PrivacyFloor,
    SitePolicy,
    WorkLimits,
)
from common.i18n.catalogue import N_, word
from common.schema import AUDIT_ATTRIBUTES, PREDICTORS, is_forbidden

# Keys a policy file may set: the SitePolicy fields a centre owns, and the tables that
# other parts of the client read from the same file (kept whole in SitePolicy.extra,
# checked by their readers). A key in neither is refused, so typos never pass silently.
POLICY_FIELDS = tuple(f.name for f in dataclasses.fields(SitePolicy)
                      if f.name not in ("extra", "privacy", "limits"))
POLICY_SECTIONS = ("support",)  # [support]: support-priority thresholds, client.scoring.scores
PRIVACY_KEYS = tuple(f.name for f in dataclasses.fields(PrivacyFloor))
LIMIT_KEYS = tuple(f.name for f in dataclasses.fields(WorkLimits))
POLICY_KEYS = (*POLICY_FIELDS, "privacy", "limits", *POLICY_SECTIONS)


def load_policy(path: Path) -> SitePolicy:
    """Read and check a site policy TOML file; raise ``IngestError`` listing every problem."""
    raw = read_toml(path, N_("The site policy"), N_("correct the file and run again"))
    problems = [
        N_("unknown key %(key)s (known keys: %(known)s)", key=quote(key),
           known=", ".join(POLICY_KEYS))
        for key in sorted(set(raw) - set(POLICY_KEYS))
    ]
    fields: dict[str, Any] = {}
    refused = raw.get("refused_predictors", [])
    if not isinstance(refused, list) or not all(isinstance(p, str) for p in refused):
        problems.append(word(N_("refused_predictors must be a list of predictor names")))
    else:
        for name in refused:
            if name in AUDIT_ATTRIBUTES:
                problems.append(N_(
                    "%(name)s is an audit attribute, not a predictor: use "
                    "audit_attributes_allowed = false to keep it out of equity statistics",
                    name=name))
            elif name not in PREDICTORS and not is_forbidden(name):
                problems.append(N_("refused_predictors names %(name)s, which is not a "
                                   "predictor", name=quote(name)))
        fields["refused_predictors"] = frozenset(n for n in refused if n in PREDICTORS)
    _number(raw, "min_records", fields, problems, int, low=0)
    _number(raw, "epsilon_cap", fields, problems, float, low=0, strict=True)
    _number(raw, "max_invalid_fraction", fields, problems, float, low=0, high=1)
    if "audit_attributes_allowed" in raw:
        if isinstance(raw["audit_attributes_allowed"], bool):
            fields["audit_attributes_allowed"] = raw["audit_attributes_allowed"]
        else:
            problems.append(word(N_("audit_attributes_allowed must be true or false")))
    if "privacy" in raw:
        floor = _privacy_floor(raw["privacy"], problems)
        if floor is not None:
            fields["privacy"] = floor
    if "limits" in raw:
        limits = _work_limits(raw["limits"], problems)
        if limits is not None:
            fields["limits"] = limits
    extra: dict[str, object] = {}
    for section in POLICY_SECTIONS:
        if section in raw and not isinstance(raw[section], dict):
            problems.append(N_("%(section)s must be a table ([%(section)s])",
                               section=section))
        elif section in raw:
            extra[section] = raw[section]
    if extra:
        fields["extra"] = extra
    if problems:
        raise IngestError(
            N_("The site policy %(path)s cannot be used: %(problem)s; correct it and run "
               "again.", path=path, problem=problems[0]),
            details=problems,
        )
    return SitePolicy(**fields)


def _privacy_floor(table: object, problems: list[str]) -> PrivacyFloor | None:
    """The ``[privacy]`` table: the centre's privacy floor (``client.site_policy``)."""
    if not isinstance(table, dict):
        problems.append(word(N_("privacy must be a table ([privacy])")))
        return None
    found = len(problems)
    problems.extend(
        N_("unknown key privacy.%(key)s (known keys: %(known)s)", key=key,
           known=", ".join(PRIVACY_KEYS))
        for key in sorted(set(table) - set(PRIVACY_KEYS))
    )
    values: dict[str, Any] = {}
    for key in ("require_dp", "allow_replayable_noise", "allow_unnoised_evaluation",
                "allow_distributed_noise", "allow_prv_accounting"):
        if key in table:
            if isinstance(table[key], bool):
                values[key] = table[key]
            else:
                problems.append(N_("%(key)s must be true or false", key="privacy." + key))
    numbers: dict[str, Any] = {}
    _number(table, "delta", numbers, problems, float, low=0, high=0.01, strict=True,
            prefix="privacy.")
    _number(table, "max_epsilon_per_run", numbers, problems, float, low=0, strict=True,
            prefix="privacy.")
    _number(table, "max_colluding_centres", numbers, problems, int, low=0,
            prefix="privacy.")
    values.update(numbers)
    trust = table.get("distributed_noise_trust", TRUST_ALONE)
    if trust in TRUST_MODELS:
        values["distributed_noise_trust"] = trust
    else:
        problems.append(N_("privacy.distributed_noise_trust must be %(models)s, not "
                           "%(value)s", models=" or ".join(f'"{m}"' for m in TRUST_MODELS),
                           value=quote(str(trust))))
    return PrivacyFloor(**values) if len(problems) == found else None


def _work_limits(table: object, problems: list[str]) -> WorkLimits | None:
    """The ``[limits]`` table: the most work one run may ask (``client.site_policy``)."""
    if not isinstance(table, dict):
        problems.append(word(N_("limits must be a table ([limits])")))
        return None
    found = len(problems)
    problems.extend(
        N_("unknown key limits.%(key)s (known keys: %(known)s)", key=key,
           known=", ".join(LIMIT_KEYS))
        for key in sorted(set(table) - set(LIMIT_KEYS))
    )
    values: dict[str, Any] = {}
    for key in LIMIT_KEYS:
        _number(table, key, values, problems, int, low=1, prefix="limits.")
    return WorkLimits(**values) if len(problems) == found else None


def _number(
    raw: dict[str, Any],
    key: str,
    fields: dict[str, Any],
    problems: list[str],
    kind: type,
    *,
    low: float,
    high: float = math.inf,
    strict: bool = False,
    prefix: str = "",
) -> None:
    if key not in raw:
        return
    value = raw[key]
    valid_type = isinstance(value, int) if kind is int else isinstance(value, int | float)
    if isinstance(value, bool) or not valid_type or not math.isfinite(value):
        problems.append(N_("%(key)s must be a whole number", key=prefix + key) if kind is int
                        else N_("%(key)s must be a number", key=prefix + key))
    elif value < low or value > high or (strict and value == low):
        shown = {"key": prefix + key, "low": format(low, "g"), "high": format(high, "g"),
                 "value": value}
        if math.isinf(high):
            problems.append(N_("%(key)s must be above %(low)s, not %(value)s", **shown)
                            if strict else
                            N_("%(key)s must be at least %(low)s, not %(value)s", **shown))
        else:
            problems.append(
                N_("%(key)s must be above %(low)s and at most %(high)s, not %(value)s",
                   **shown) if strict else
                N_("%(key)s must be at least %(low)s and at most %(high)s, not %(value)s",
                   **shown))
    else:
        fields[key] = kind(value)


def withheld_columns(policy: SitePolicy) -> dict[str, str]:
    """Harmonised columns the policy keeps out of the pipeline, with the reason."""
    withheld = {name: "refused by policy" for name in sorted(policy.refused_predictors)}
    if not policy.audit_attributes_allowed:
        withheld |= {name: "audit use not allowed" for name in AUDIT_ATTRIBUTES}
    return withheld


def apply_policy(frame: pd.DataFrame, policy: SitePolicy) -> pd.DataFrame:
    """Drop the columns the policy withholds, before they are validated or used."""
    return frame.drop(columns=[c for c in withheld_columns(policy) if c in frame.columns])
