"""The console's words that come from data (statuses, audit events, node states): marked
for the catalogue here (``N_``), translated where a page shows them (``_()``)."""

from __future__ import annotations

import re
from typing import Any

from common.app_approval import refusal_sentence
from common.i18n import catalogue as i18n
from common.protocol import refusing_centre


def N_(message: str) -> str:
    """Mark ``message`` for the catalogue without translating it now."""
    return message


STATUS = {
    "running": N_("running"),
    "finished": N_("finished"),
    "stopped": N_("stopped early"),
    "failed": N_("failed"),
}

NODE_STATUS = {
    "online": N_("connected"),
    "offline": N_("silent"),
    "registered": N_("registered, never connected"),
    "unregistered": N_("unregistered"),
}

EVENTS = {
    "run_started": N_("run started"),
    "run_resumed": N_("run resumed"),
    "run_finished": N_("run finished"),
    "run_stopped": N_("run stopped"),
    "centres_connected": N_("centres connected"),
    "instructions_sent": N_("instructions sent"),
    "update_accepted": N_("update accepted"),
    "update_rejected": N_("update rejected"),
    "evaluation_rejected": N_("evaluation rejected"),
    "centre_refused": N_("centre refused"),
    "centre_absent": N_("centre absent"),
    "round_aggregated": N_("round aggregated"),
    "checkpoint_saved": N_("checkpoint saved"),
    "centre_records": N_("centre's records"),
    "identity_rejected": N_("identity rejected"),
    "weight_bounded": N_("weight bounded"),
    "audit_pooled": N_("equity audit pooled"),
    "audit_done": N_("equity audit done"),
}

PHASES = {"train": N_("training"), "evaluate": N_("evaluation")}

GAPS = {
    "equal_opportunity_gap": N_("equal-opportunity gap (true-positive rates)"),
    "fpr_gap": N_("false-positive rate gap"),
    "calibration_gap": N_("calibration gap"),
    "auc_gap": N_("ROC AUC gap"),
}

# Baselines of a finished run, in summary.json.
BASELINES = {
    "auc_centralized": N_("centralised training without DP"),
    "auc_local_only": N_("each centre alone"),
    "auc_environment_only": N_("school indices only"),
    "auc_pooled_exact": N_("federated, without evaluation noise"),
}

# The kinds of run (server.console.runs.run_kind): the runs page's sections and the
# federation page's choice.
KINDS = {
    "deployed": N_("deployed federation"),
    "loopback": N_("deployment on loopback"),
    "simulated": N_("simulation"),
}
KIND_TITLES = {
    "deployed": N_("The deployed federation"),
    "loopback": N_("Deployment on loopback (perseverance-sim dev-federation)"),
    "simulated": N_("Simulations (perseverance-sim run, sweep, bench)"),
}

# Reasons the ministry records in English, as the server wrote them (a rejected update,
# a centre that did not answer): read back into a sentence of the catalogue. Anything
# else is shown as recorded.
RECORDED: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"no reply within (?P<seconds>\d+) s"), N_("no reply within %(seconds)s s")),
    (re.compile(r"unavailable"), N_("unavailable")),
    (re.compile(r"its update norm (?P<norm>\S+) is beyond the bound (?P<bound>\S+) "
                r"\(x(?P<times>\S+)\)"),
     N_("its update's norm %(norm)s is beyond the bound %(bound)s (%(times)s times)")),
    (re.compile(r"it answers model version (?P<got>\S+), not the current (?P<want>\S+) "
                r"\(stale\)"),
     N_("it answers model version %(got)s, not the current %(want)s (stale)")),
    (re.compile(r"array (?P<name>\S+) holds NaN or infinite values"),
     N_("its array %(name)s holds NaN or infinite values")),
    (re.compile(r"it reports no training examples"), N_("it reports no training examples")),
)
NUMBER = re.compile(r"-?\d+(\.\d+)?(e[+-]?\d+)?")


def _readable(value: str, lang: str) -> str:
    """A number as the server wrote it (``41``, ``3.2``) in ``lang``'s notation."""
    if not NUMBER.fullmatch(value):
        return value
    mantissa = value.lower().partition("e")[0]
    digits = len(mantissa.partition(".")[2]) if "e" not in value.lower() else 3
    return i18n.number(float(value), digits, lang)


def recorded(text: object, lang: str) -> str:
    """A reason the ministry recorded, in ``lang`` when it is one of :data:`RECORDED`,
    a centre's refusal through the protocol's sentences, else as recorded."""
    value = str(text or "")
    gettext = i18n.gettext(lang)
    for pattern, message in RECORDED:
        match = pattern.fullmatch(value)
        if match:
            return gettext(message) % {k: _readable(v, lang)
                                       for k, v in match.groupdict().items()}
    name, sentence = refusing_centre(value, "")
    colon = " : " if lang == "fr" else ": "
    return (f"{name}{colon}{i18n.translate(refusal_sentence(sentence), lang)}" if name
            else i18n.translate(refusal_sentence(value), lang))


def _nodes(value: Any) -> str:
    return ", ".join(str(n) for n in value) if isinstance(value, list) else str(value)


def _short(value: Any) -> str:
    return str(value)[:12] + "…" if value else "—"


def event_details(event: dict[str, Any], lang: str, stopped: str = "") -> str:
    """An audit event's details as a sentence in ``lang`` (the columns of the audit page
    give its time, event, round, phase and node); ``stopped`` the run's reason for
    stopping as its summary keeps it (translated; its audit line holds the English)."""
    translations = i18n.translations(lang)
    _, ngettext = translations.gettext, translations.ngettext
    kind = event.get("event")

    def number(key: str, digits: int = 2) -> str:
        value = event.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float):
            return "—"
        return i18n.number(value, 0 if isinstance(value, int) else digits, lang)

    def count(key: str) -> int:
        value = event.get(key)
        if isinstance(value, list):
            return len(value)
        return value if isinstance(value, int) and not isinstance(value, bool) else 0

    def yes(key: str) -> str:
        return _("yes") if event.get(key) else _("no")

    if kind in ("run_started", "run_resumed"):
        return _("Run %(run)s: %(rounds)s rounds planned, from round %(start)s; "
                 "aggregation %(aggregation)s; secure aggregation: %(secure)s; at least "
                 "%(min)s centres; Flower run %(flower)s.") % {
            "run": event.get("run_name", "—"), "rounds": event.get("rounds", "—"),
            "start": event.get("from_round", "—"), "aggregation": event.get("aggregation", "—"),
            "secure": yes("secure_aggregation"), "min": event.get("min_centres", "—"),
            "flower": event.get("flower_run_id", "—")}
    if kind == "centres_connected":
        text = ngettext("%(num)s node connected: %(nodes)s.", "%(num)s nodes connected: "
                        "%(nodes)s.", count("nodes")) % {"num": count("nodes"),
                                                          "nodes": _nodes(event.get("nodes"))}
        if count("joined"):
            text += " " + _("Joined: %(nodes)s.") % {"nodes": _nodes(event.get("joined"))}
        if count("left"):
            text += " " + _("Left: %(nodes)s.") % {"nodes": _nodes(event.get("left"))}
        return text
    if kind == "instructions_sent":
        return ngettext("Model %(version)s sent to %(num)s node: %(nodes)s.",
                        "Model %(version)s sent to %(num)s nodes: %(nodes)s.",
                        count("nodes")) % {"version": event.get("model_version", "—"),
                                           "num": count("nodes"),
                                           "nodes": _nodes(event.get("nodes"))}
    if kind == "centre_records":
        return _("Records of %(centre)s: its audit log at %(lines)s lines (head %(head)s), "
                 "its ledger at %(rows)s rows (head %(ledger)s).") % {
            "centre": event.get("centre") or event.get("actor") or "—",
            "lines": number("audit_lines"), "head": _short(event.get("audit_head")),
            "rows": number("ledger_rows"), "ledger": _short(event.get("ledger_head"))}
    if kind == "update_accepted":
        return _("Update's norm %(norm)s.") % {"norm": number("norm")}
    if kind == "update_rejected":
        return _("Update's norm %(norm)s; rejected: %(reason)s.") % {
            "norm": number("norm"), "reason": recorded(event.get("reason"), lang)}
    if kind in ("evaluation_rejected", "centre_absent", "centre_refused"):
        return recorded(event.get("reason"), lang)
    if kind == "identity_rejected":
        return _("Declared %(declared)s: %(reason)s") % {
            "declared": event.get("declared") or "—",
            "reason": recorded(event.get("reason"), lang)}
    if kind == "weight_bounded":
        return _("Weight reported %(reported)s, bounded to %(weight)s.") % {
            "reported": number("reported", 0), "weight": number("weight", 0)}
    if kind == "round_aggregated":
        text = ngettext("%(num)s update aggregated", "%(num)s updates aggregated",
                        count("updates")) % {"num": count("updates")}
        text += ", " + ngettext("%(num)s update rejected", "%(num)s updates rejected",
                                count("rejected")) % {"num": count("rejected")}
        text += "; " + (_("the model changed.") if event.get("model_changed")
                        else _("the model is unchanged."))
        if event.get("reason"):
            text += " " + recorded(event.get("reason"), lang)
        return text
    if kind == "checkpoint_saved":
        return _("Checkpoint written: the run can resume after this round.")
    if kind == "audit_pooled":
        return ngettext("Equity audit pooled over %(num)s centre (threshold %(threshold)s).",
                        "Equity audit pooled over %(num)s centres (threshold %(threshold)s).",
                        count("centres")) % {"num": count("centres"),
                                             "threshold": number("threshold_raw", 3)}
    if kind == "audit_done":
        return (_("Equity audit released.") if event.get("released")
                else _("Equity audit not released."))
    if kind == "run_finished":
        return ngettext("%(num)s round completed.", "%(num)s rounds completed.",
                        count("rounds_completed")) % {"num": count("rounds_completed")}
    if kind == "run_stopped":
        text = ngettext("Stopped after %(num)s round.", "Stopped after %(num)s rounds.",
                        count("rounds_completed")) % {"num": count("rounds_completed")}
        reason = stopped or (recorded(event.get("reason"), lang) if event.get("reason") else "")
        return f"{text} {reason}" if reason else text
    return ""


def install(env: Any, lang: str) -> None:
    """The console's filters of recorded words, in ``lang``."""
    env.filters["recorded"] = lambda text: recorded(text, lang)
    env.globals["event_details"] = lambda event, stopped="": event_details(event, lang, stopped)
