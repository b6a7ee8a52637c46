"""The model card of a trained model, built from its run folder (JSON and HTML).

Reads ``summary.json`` and ``model.pt`` (required), ``config.toml`` and ``rounds.jsonl``,
and when present ``equity.json``, ``participation.json``, the baselines in the summary
(``auc_environment_only``, ``auc_local_only``, ``auc_local_only_by_size_band``), the
membership-inference figure (``mia_advantage``) and the centres that refused the run
(``centres_refused``). A part the run did not produce is written as ``NOT_MEASURED``,
never estimated. Only aggregate figures appear: the card is public (see
``server.publication.registry``). The page is the template ``common/templates/model_card.html``.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

from common import pages
from common.encoding import ENCODING_VERSION, NUM_FEATURES
from common.equity.words import cell_sentence
from common.errors import ExitCode, PerseveranceError
from common.files import atomic_write_bytes
from common.i18n import catalogue as i18n
from common.i18n.catalogue import Joined, Number, Sentence, to_record, word
from common.pages import N_
from common.privacy.secure_release import TRUST_ALONE, TRUST_SECURE_AGGREGATION, TRUST_WHOLE
from common.schema import AUDIT_ATTRIBUTES, COLUMN_BY_NAME, PREDICTORS, SCHEMA_VERSION
from server import run_folder
from server.summary import CentreTrust, Summary

NOT_MEASURED = pages.NOT_MEASURED
T = TypeVar("T")
CARD_JSON = "model_card.json"
CARD_HTML = "model_card.html"  # French, Québec's language of public administration
CARD_HTML_EN = "model_card.en.html"
CARD_PAGES = ((CARD_HTML, "fr"), (CARD_HTML_EN, "en"))
CARD_FORMAT = 1
# Local paths of the machine that ran it say nothing about the model.
PRIVATE_CONFIG_KEYS = ("run_dir", "data_dir")

INTENDED_USE = N_(
    "Estimate, for each current secondary student at a participating school service "
    "centre, a support priority (high / moderate / low) with the factors behind it, "
    "computed locally at the centre, so that the school team can offer support earlier. "
    "The priority advises the team's professional judgement."
)
OUT_OF_SCOPE = (
    word(N_("Evaluating, ranking or paying teachers, other staff, classes or schools.")),
    word(N_("Any automated decision about a student (admission, placement, orientation, "
            "discipline, funding): a person decides, with the student and family.")),
    word(N_("Labelling a student: the output is a support priority, never a prediction of "
            "who will leave school.")),
    N_("Use outside Québec public secondary schools, or on records of another schema "
       "version than %(version)s.", version=SCHEMA_VERSION),
    word(N_("Sending student-level scores or factors outside the centre.")),
)
# summary.json's ``privacy_unit`` (written by the ServerApp), for the catalogue.
PRIVACY_UNIT = N_("one student's record, per centre, over the whole run")
# The rows of the card's training and version tables, as the pages name them.
ROW_LABELS = {
    "rounds": N_("rounds"), "rounds_completed": N_("rounds completed"),
    "local_epochs": N_("local epochs"), "learning_rate": N_("learning rate"),
    "fraction_train": N_("fraction of centres per round"), "refusals": N_("refusals"),
    "software": N_("software"), "schema": N_("schema"), "encoding": N_("encoding"),
    "architecture": N_("architecture"), "weights_file": N_("weights file"),
    "weights_sha256": N_("weights SHA-256"), "weights_bytes": N_("weights size (bytes)"),
}
FORBIDDEN_DATA = word(N_("teacher and class data (teacher_*, class_id, classe, groupe, ...)"))


class ModelCardError(PerseveranceError, ValueError):
    """The run folder cannot give a model card (one sentence; exit code 2)."""

    exit_code = ExitCode.UNUSABLE


def weights_sha256(path: Path) -> str:
    """SHA-256 (hex) of the weights file, as ``sha256sum`` prints it."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def model_id(scenario: str, sha256: str) -> str:
    """``<scenario>-<first 12 hex of the weights' SHA-256>``: readable and unique."""
    slug = re.sub(r"[^a-z0-9]+", "-", scenario.lower()).strip("-") or "model"
    return f"{slug}-{sha256[:12]}"


def build_model_card(run_dir: Path) -> dict[str, Any]:
    """The card as a JSON-ready dict. Raises ``ModelCardError`` without a summary or
    weights."""
    summary_path, weights = run_dir / run_folder.SUMMARY, run_dir / run_folder.MODEL
    for path in (summary_path, weights):
        if not path.is_file():
            raise ModelCardError(N_(
                "The run folder %(path)s has no %(file)s; give the folder of a finished run.",
                path=run_dir, file=path.name))
    try:
        summary = run_folder.read_summary(run_dir)
    except ValueError:
        raise ModelCardError(N_("%(path)s is not valid JSON; the run did not finish writing "
                                "it.", path=summary_path)) from None
    config = _read_config(run_dir)
    rounds = run_folder.read_rounds(run_dir)
    equity = _optional_json(run_dir / run_folder.EQUITY)
    participation = _optional_json(run_dir / run_folder.PARTICIPATION)
    sha = weights_sha256(weights)
    scenario = summary.scenario or str(config.get("scenario", "model"))
    return {
        "card_format": CARD_FORMAT,
        "model_id": model_id(scenario, sha),
        "created": datetime.fromtimestamp(weights.stat().st_mtime, UTC).isoformat(
            timespec="seconds"),
        "version": {
            "software": _software_version(),
            "schema": SCHEMA_VERSION,
            "encoding": ENCODING_VERSION,
            "architecture": _architecture(config),
            "weights_file": run_folder.MODEL,
            "weights_sha256": sha,
            "weights_bytes": weights.stat().st_size,
        },
        "intended_use": INTENDED_USE,
        "out_of_scope_uses": list(OUT_OF_SCOPE),
        "data": _data(run_dir, summary, scenario),
        "centres_refused": centres_refused(summary),
        "predictors": _predictors(),
        "privacy": _privacy(summary, config),
        "training": _training(summary, config, rounds),
        "performance": _performance(summary, rounds, participation),
        "baselines": {
            "centralized_without_dp": measured(summary.auc_centralized),
            "environment_only": measured(summary.auc_environment_only),
            "local_only": measured(summary.auc_local_only),
            "local_only_by_size_band": measured(summary.auc_local_only_by_size_band),
        },
        "equity": equity if equity is not None else NOT_MEASURED,
        "membership_inference": (
            {"attack": word(N_("loss threshold (Yeom et al. 2018), final model")),
             "advantage": summary.mia_advantage,
             "dp_bound": measured(summary.mia_advantage_bound)}
            if summary.mia_advantage is not None else NOT_MEASURED
        ),
        "limitations": _limitations(run_dir, summary, equity),
        "run_config": {k: v for k, v in config.items() if k not in PRIVATE_CONFIG_KEYS},
    }


def write_model_card(run_dir: Path) -> tuple[Path, Path]:
    """Write ``model_card.json``, ``model_card.html`` (French) and ``model_card.en.html``
    (English) into the run folder (atomic writes); returns the JSON and the French
    page. Call it once the run folder is complete."""
    card = build_model_card(run_dir)
    json_path = run_dir / CARD_JSON
    run_folder.write_json(json_path, card)
    for name, lang in CARD_PAGES:
        atomic_write_bytes(run_dir / name, render_model_card(card, lang).encode())
    return json_path, run_dir / CARD_HTML


def render_model_card(card: dict[str, Any], lang: str = "fr") -> str:
    """The card as a standalone HTML page in ``lang``, linking to the other language.
    Its words come from the catalogue: the template's, and the card's own sentences
    (:class:`~common.i18n.catalogue.Sentence` values of ``build_model_card``: the limitations, the
    data's origin, ...); a card read back from its JSON has their English text only."""
    other = "en" if lang == "fr" else "fr"
    return pages.render("model_card.html", lang, card=_in_language(card, lang),
                        other_lang=other, row_labels=ROW_LABELS,
                        other_page=CARD_HTML_EN if other == "en" else CARD_HTML)


def _in_language(value: Any, lang: str) -> Any:
    """``value`` (the card or a part of it) with every Sentence in ``lang``."""
    if isinstance(value, Sentence):
        return i18n.translate(value, lang)
    if isinstance(value, dict):
        return {key: _in_language(item, lang) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_in_language(item, lang) for item in value]
    return value


def measured(value: T | None) -> T | str:
    """A figure of the summary, or ``NOT_MEASURED`` when the run did not write it (or
    wrote ``null``: not measurable)."""
    return NOT_MEASURED if value is None else value


def centres_refused(summary: Summary) -> dict[str, str] | str:
    """``centres_refused`` of the summary (centre name -> the fixed reason), sorted by
    name; ``NOT_MEASURED`` when the run did not record it (older runs)."""
    refused = summary.centres_refused
    if refused is None:
        return NOT_MEASURED
    return {name: refused[name] for name in sorted(refused)}


def centres_trust(summary: Summary) -> dict[str, str] | str:
    """``centres_trust`` of the summary in words, by centre: how it booked its secure
    evaluation releases (its policy's trust model of distributed noise, public;
    docs/PRIVACY.md). ``NOT_MEASURED`` in plain mode and for older runs."""
    trust = summary.centres_trust
    if not trust:
        return NOT_MEASURED
    return {name: _trust_words(trust[name]) for name in sorted(trust)}


def _trust_words(entry: CentreTrust) -> str:
    if entry.model == TRUST_WHOLE:
        return word(N_("the whole noise: its release alone meets the run's target"))
    if entry.model == TRUST_ALONE:
        return word(N_("a share of the noise, booked as if seen alone"))
    if entry.model == TRUST_SECURE_AGGREGATION:
        threshold, colluding = entry.threshold or 0, entry.colluding or 0
        return N_("a share of the noise, booked as the sum of %(honest)s honest shares "
                  "(SecAgg+ threshold %(threshold)s, at most %(colluding)s colluding "
                  "centres)", honest=threshold - colluding, threshold=threshold,
                  colluding=colluding)
    return NOT_MEASURED


def _read_config(run_dir: Path) -> dict[str, Any]:
    path = run_dir / run_folder.CONFIG
    if not path.is_file():
        return {}
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError:
        raise ModelCardError(N_("%(path)s is not valid TOML; the run did not finish writing "
                                "it.", path=path)) from None


def _optional_json(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        return run_folder.read_json(path)
    except ValueError:
        raise ModelCardError(N_("%(path)s is not valid JSON; the run did not finish writing "
                                "it.", path=path)) from None


def _architecture(config: dict[str, Any]) -> str:
    hidden = str(config.get("training.hidden", "?")).replace(",", "-").replace(" ", "")
    layers = f"{NUM_FEATURES}-{hidden}-1"
    return N_("MLP %(layers)s (ReLU), logit output", layers=layers)


def _software_version() -> str:
    try:
        return metadata.version("perseverance")
    except metadata.PackageNotFoundError:
        return word(N_("unknown"))


def _data(run_dir: Path, summary: Summary, scenario: str) -> dict[str, Any]:
    origin: str
    if summary.deployment is not None:
        origin = word(N_("deployment on loopback"))  # the one value the type allows
    elif summary.scenario_file is not None:
        origin = N_("simulation (scenario %(name)s)", name=scenario)
    else:
        origin = word(N_("federated training"))
    synthetic = (run_dir / "data" / "centres.json").is_file()
    return {
        "origin": origin,
        # Kept with its message id, so the registry's index shows it in its language.
        "origin_sentence": to_record(origin),
        "records": word(N_("synthetic Québec network (generated, no real student)"))
        if synthetic else word(N_("the participating centres' extracts")),
        "centres_total": measured(summary.num_centres_total),
        "centres_evaluated": measured(summary.num_centres),
        "students": measured(summary.num_students),
        "training_records": measured(summary.num_train),
        "held_out_records": measured(summary.num_test),
        # One school year for a year of ``perseverance-sim years``; others do not say.
        "period": measured(summary.school_year),
        "label": word(N_("left_without_diploma: left secondary school without a diploma or "
                         "qualification (official indicator)")),
    }


def _predictors() -> dict[str, Any]:
    return {
        "used": [{"name": p, "description": COLUMN_BY_NAME[p].description} for p in PREDICTORS],
        "audit_only": list(AUDIT_ATTRIBUTES),
        "forbidden": FORBIDDEN_DATA,
        # A centre's refused predictors stay at the centre: no run reports them.
        "refused_by_centres": NOT_MEASURED,
    }


def _privacy(summary: Summary, config: dict[str, Any]) -> dict[str, Any]:
    dp = summary.dp if summary.dp is not None else bool(config.get("privacy.dp", False))
    secure = (summary.secure_aggregation if summary.secure_aggregation is not None
              else config.get("privacy.secure_aggregation", NOT_MEASURED))
    return {
        "differential_privacy": dp,
        "epsilon_target": summary.epsilon_target if dp else None,
        "epsilon_spent_max": summary.epsilon_max if dp else None,
        "delta": (summary.delta if summary.delta is not None
                  else config.get("privacy.delta", NOT_MEASURED)),
        "accountant": summary.accountant or config.get("privacy.accountant", NOT_MEASURED),
        "unit": summary.privacy_unit or PRIVACY_UNIT,
        "max_grad_norm": config.get("privacy.max_grad_norm", NOT_MEASURED),
        "secure_aggregation": secure,
        "distributed_noise_trust": centres_trust(summary),
        # Per centre, records retired for budget (each student's lifetime cap): known to a
        # simulation from the centres' own state; in deployment they stay at each centre.
        "records_retired_for_budget": (
            summary.records_retired if summary.records_retired is not None
            else "not released: counted at each centre (its ledger)"),
    }


def _training(
    summary: Summary, config: dict[str, Any], rounds: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "rounds": (summary.rounds if summary.rounds is not None
                   else config.get("rounds", NOT_MEASURED)),
        "rounds_completed": (summary.rounds_completed if summary.rounds_completed is not None
                             else len(rounds)),
        "local_epochs": config.get("local_epochs", NOT_MEASURED),
        "learning_rate": config.get("training.learning_rate", NOT_MEASURED),
        "fraction_train": config.get("fraction_train", NOT_MEASURED),
        "refusals": sum(len(r.get("refusals", [])) for r in rounds),
    }


def _performance(
    summary: Summary, rounds: list[dict[str, Any]], participation: dict[str, Any] | None
) -> dict[str, Any]:
    return {
        "pooled": {
            "auc": measured(summary.auc_pooled),
            "pr_auc": measured(summary.pr_auc_pooled),
            "brier": measured(summary.brier_pooled),
            "calibration_error": measured(summary.calibration_error_pooled),
            # The probabilities the school teams read: after the saved recalibration.
            "calibration_error_calibrated": measured(
                summary.calibration_error_pooled_calibrated),
        },
        "by_centre_size_band": (
            participation.get("auc_by_size_band", NOT_MEASURED) if participation
            else NOT_MEASURED
        ),
        "auc_by_round": [r.get("eval_auc") for r in rounds] if rounds else NOT_MEASURED,
    }


def _limitations(
    run_dir: Path, summary: Summary, equity: dict[str, Any] | None
) -> list[str]:
    notes: list[str] = []
    if (run_dir / "data" / "centres.json").is_file():
        notes.append(N_("Trained and evaluated on synthetic records: its figures describe "
                        "the method, not real Québec students."))
    notes += [
        N_("A probability describes students with similar records, not a certainty about "
           "one student; it is one input to the school team's judgement."),
        N_("Only administrative records are used: family, health, motivation and what the "
           "school team knows are outside the model."),
        N_("Differential privacy costs accuracy, most at small centres; see the local-only "
           "baseline and the performance by centre size."),
        N_("Performance can drift as practices and populations change: re-evaluate every "
           "school year before use."),
    ]
    if summary.epsilon_evaluation is None:
        notes.append(N_("The pooled evaluation statistics (score histograms, equity counts) "
                        "are not differentially private in this version; small cells are "
                        "suppressed."))
    if equity is None:
        notes.append(N_("Equity by group was not measured in this run."))
    else:
        if equity.get("suppressed"):
            notes.append(N_("Groups too small to report without exposing a centre are "
                            "suppressed: %(groups)s.",
                            groups=Joined([cell_sentence(c) for c in equity["suppressed"]])))
        noise = equity.get("noise_std") or 0.0
        if noise > 0:
            notes.append(_noise_note(noise, _too_noisy(equity)))
            stds: dict[str, float] = equity.get("noise_std_by_attribute") or {}
            if stds and max(stds.values()) > min(stds.values()) * (1 + 1e-9):
                first = min(stds, key=lambda name: stds[name])
                last = max(stds, key=lambda name: stds[name])
                notes.append(N_(
                    "The audit shares its noise unequally between its attributes "
                    "(evaluation.audit_weights), with the same privacy guarantee: from each "
                    "centre, std %(low)s per count for %(first)s, the most precise, to "
                    "%(high)s for %(last)s.", low=Number(stds[first], 2), first=first,
                    high=Number(stds[last], 2), last=last))
    # Every note a Sentence, so that the page in each language translates it.
    return [note if isinstance(note, Sentence) else word(note) for note in notes]


def _noise_note(noise: float, vague: list[str]) -> str:
    """What the DP noise on the equity counts does to the audit (``vague``: the groups
    whose AUC it leaves undetermined)."""
    if vague:
        return N_("The equity counts carry differential-privacy noise (std %(std)s per count "
                  "from each centre); every equity interval includes it. At this budget the "
                  "noise leaves the AUC of these groups undetermined (interval wider than "
                  "0.5): %(groups)s.", std=Number(noise, 2),
                  groups=Joined([cell_sentence(group) for group in vague]))
    return N_("The equity counts carry differential-privacy noise (std %(std)s per count "
              "from each centre); every equity interval includes it.", std=Number(noise, 2))


def _too_noisy(equity: dict[str, Any]) -> list[str]:
    """Groups whose AUC interval is wider than 0.5: the noise leaves them unjudgeable."""
    out = []
    for attribute, groups in equity.get("groups", {}).items():
        for value, metrics in groups.items():
            low, high = metrics.get("auc_ci") or (None, None)
            if low is None or high is None or high - low > 0.5:
                out.append(f"{attribute}={value}")
    return out
