"""``summary.json``, a run's main output: its one definition.

Every key has its type and a one-line description here; the reference pages
(``docs/reference/summary-json.md`` and ``.en.md``) and the JSON Schema
(``docs/reference/summary.schema.json``, ``python -m server.summary``) follow from it,
and tests keep the three in step.

Written by ``server.run_folder.update_summary`` only (the ServerApp, then the harness
that adds what only it can compute): a key the type does not know is a programming
error and raises. Read by :func:`summary_of` (``server.run_folder.read_summary``): a
run folder from an older version may lack keys (``None``) or hold keys this version
no longer writes (left out, also when the summary is rewritten), never a reason to
fail. A summary is written in steps
(``secure_aggregation`` when the run opens, the figures after every round, the
harness's at the end), so every key is optional: ``None`` means absent or ``null``
(``NaN`` and infinities are written as ``null``: "not measurable").
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, TypeAdapter, ValidationError
from pydantic.fields import FieldInfo

from common.i18n.catalogue import to_record

_RECORD: TypeAdapter[JsonValue] = TypeAdapter(JsonValue)


class _Strict(BaseModel):
    """Unknown keys refused, values fixed once read."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class CentreTrust(_Strict):
    """How one centre booked its secure evaluation releases (its trust model)."""

    model: str = Field(description="whole-noise, alone or secure-aggregation "
                                   "(common.privacy.secure_release.TRUST_*)")
    colluding: int | None = Field(None, description="secure-aggregation: the colluding "
                                                    "centres it assumes")
    threshold: int | None = Field(None, description="secure-aggregation: the round's "
                                                    "SecAgg+ threshold")


class Attack(_Strict):
    """The simulated poisoning attack of a scenario."""

    kind: str = Field(description="the attack's kind ([attack] kind)")
    fraction: float = Field(description="the share of centres made malicious")
    malicious_centres: list[int] = Field(description="the partitions that attack")


Text = str | None
Count = int | None
Figure = float | None  # NaN and infinities are written as null
Flag = bool | None


def About(description: str) -> FieldInfo:
    """A key's one-line description (the schema's and the reference pages')."""
    description_field: FieldInfo = Field(description=description)
    return description_field


class Summary(_Strict):
    """``summary.json``: one run's figures (every key optional; see the module)."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="summary.json")

    # What ran.
    scenario: Annotated[Text, About("the scenario's name")] = None
    scenario_file: Annotated[Text, About(
        "simulations: the scenario's file (its name when shipped)")] = None
    overrides: Annotated[dict[str, str] | None, About(
        "simulations: the --set KEY=VALUE given")] = None
    school_year: Annotated[Text, About(
        "perseverance-sim years: the school year of this year's run")] = None
    deployment: Annotated[Literal["loopback"] | None, About(
        "'loopback' for perseverance-sim dev-federation, written when the run starts")] = None
    flower_run_id: Annotated[Count, About(
        "loopback deployment: the run id the SuperLink gave the run")] = None
    run_name: Annotated[Text, About("the name the centres' ledgers book the run under")] = None
    rounds: Annotated[Count, About("the rounds planned")] = None
    rounds_completed: Annotated[Count, About(
        "the rounds completed; present once the ServerApp wrote its figures")] = None
    stopped: Annotated[Text, About(
        "why the run stopped early (English sentence); null when it did not")] = None
    stopped_sentence: Annotated[JsonValue, About(
        "the same sentence with its message id and parameters, to show translated")] = None
    # Centres and records.
    num_centres: Annotated[Count, About("the centres evaluated in the last round")] = None
    num_centres_total: Annotated[Count, About(
        "simulations and loopback: the network's centres")] = None
    num_train: Annotated[Count, About("training records")] = None
    num_test: Annotated[Count, About("held-out records")] = None
    num_students: Annotated[Count, About("training and held-out records together")] = None
    # Pooled metrics of the final model.
    auc_pooled: Annotated[Figure, About(
        "ROC AUC on the pooled held-out records, from the centres' DP-noised histograms")] = None
    pr_auc_pooled: Annotated[Figure, About("PR AUC, pooled (uncalibrated scores)")] = None
    brier_pooled: Annotated[Figure, About("Brier score, pooled (uncalibrated scores)")] = None
    calibration_error_pooled: Annotated[Figure, About(
        "calibration error, pooled (uncalibrated scores)")] = None
    calibration_error_pooled_calibrated: Annotated[Figure, About(
        "calibration error of what the centres read (after model.pt's recalibration)")] = None
    auc_pooled_exact: Annotated[Figure, About(
        "simulations: auc_pooled without the evaluation noise")] = None
    calibration_error_pooled_calibrated_exact: Annotated[Figure, About(
        "simulations: calibration_error_pooled_calibrated without the evaluation noise")] = None
    # References and baselines (harnesses only: they see every centre's data).
    auc_centralized: Annotated[Figure, About(
        "the same architecture trained centrally without DP on the same records")] = None
    auc_environment_only: Annotated[Figure, About(
        "simulations: the federation trained on school-level indices only")] = None
    auc_individual_minus_environment: Annotated[Figure, About(
        "simulations: auc_pooled minus auc_environment_only")] = None
    auc_local_only: Annotated[Figure, About(
        "simulations: each centre alone with the same budget, pooled")] = None
    auc_local_only_by_size_band: Annotated[dict[str, float | None] | None, About(
        "simulations: auc_local_only by centre size band (null: too few centres)")] = None
    mia_advantage: Annotated[Figure, About(
        "simulations: a loss-threshold membership-inference attack's advantage")] = None
    mia_advantage_bound: Annotated[Figure, About(
        "simulations: the bound on that advantage the DP guarantee implies")] = None
    # Privacy.
    dp: Annotated[Flag, About("whether the centres trained with DP-SGD")] = None
    epsilon_target: Annotated[Figure, About(
        "the per-centre epsilon target of the run; null without DP")] = None
    epsilon_max: Annotated[Figure, About(
        "the larger of epsilon_train_max and epsilon_evaluation; null without DP")] = None
    epsilon_train_max: Annotated[Figure, About(
        "training epsilon, the largest a centre's ledger booked for the run")] = None
    epsilon_evaluation: Annotated[Figure, About(
        "evaluation epsilon, the largest a centre's ledger booked; null without noise")] = None
    epsilon_evaluation_sum: Annotated[Figure, About(
        "secure mode with distributed noise: what the released sums cost a student")] = None
    delta: Annotated[Figure, About("the guarantee's delta")] = None
    accountant: Annotated[Text, About("the privacy accountant (rdp or prv)")] = None
    privacy_unit: Annotated[Text, About("the protected unit")] = None
    records_retired: Annotated[dict[str, dict[str, int]] | None, About(
        "simulations: per centre, records retired for lifetime budget (train, evaluate)")] = None
    centres_refused: Annotated[dict[str, str] | None, About(
        "centre -> the fixed reason it refused the run; {} when none did")] = None
    centres_trust: Annotated[dict[str, CentreTrust] | None, About(
        "secure mode: per centre, how it booked its evaluation releases")] = None
    secure_aggregation: Annotated[Flag, About(
        "whether the run used SecAgg+ (written when the run opens)")] = None
    equity_audit_done: Annotated[Flag, About(
        "whether the equity audit is done (equity.json)")] = None
    # Robustness.
    aggregation: Annotated[Text, About("the aggregation mode")] = None
    updates_rejected: Annotated[Count, About("updates rejected")] = None
    replies_missing: Annotated[Count, About("replies missing")] = None
    rounds_unchanged: Annotated[Count, About("rounds without a model change")] = None
    attack: Annotated[Attack | None, About(
        "a poisoning scenario: the simulated attack; null otherwise")] = None
    # Time.
    server_seconds: Annotated[Figure, About("the ServerApp's seconds")] = None
    wall_seconds: Annotated[Figure, About("harnesses: the whole command's seconds")] = None
    wall_seconds_split: Annotated[dict[str, float] | None, About(
        "simulations: where the wall time went, by part")] = None
    round_seconds: Annotated[list[float] | None, About(
        "loopback deployment: seconds per round (from Flower's log)")] = None

    def written(self) -> dict[str, JsonValue]:
        """The keys set (given or read), as JSON values."""
        dumped: dict[str, JsonValue] = self.model_dump(mode="json", exclude_unset=True)
        return dumped


KEYS = tuple(Summary.model_fields)


def summary_of(data: Mapping[str, object]) -> Summary:
    """The summary ``data`` holds, read tolerantly: keys this version does not know and
    values of the wrong type (an older or damaged run folder) are left out."""
    known = {key: value for key, value in data.items() if key in Summary.model_fields}
    while True:
        try:
            return Summary.model_validate(known)
        except ValidationError as error:
            bad = {str(e["loc"][0]) for e in error.errors() if e["loc"]}
            if not bad & known.keys():
                raise
            known = {key: value for key, value in known.items() if key not in bad}


def merged(old: Mapping[str, object], *fields: Summary) -> Summary:
    """``old`` (as read) with each of ``fields`` over it in turn, checked against the
    type."""
    keys = summary_of(old).written()
    for part in fields:
        keys.update(part.written())
    return Summary.model_validate(keys)


def sentence_record(text: str) -> JsonValue:
    """``stopped_sentence`` of ``text`` (``common.i18n.catalogue.to_record``)."""
    return _RECORD.validate_python(to_record(text))


def json_schema() -> dict[str, object]:
    """The JSON Schema of ``summary.json`` (draft 2020-12), from :class:`Summary`."""
    schema: dict[str, object] = {"$schema": "https://json-schema.org/draft/2020-12/schema",
                                 **Summary.model_json_schema(mode="serialization")}
    return schema


def schema_text() -> str:
    """:func:`json_schema` as the committed file holds it."""
    return json.dumps(json_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


if __name__ == "__main__":  # python -m server.summary > docs/reference/summary.schema.json
    sys.stdout.write(schema_text())
