"""HTML of a model card and of the registry index: standalone pages, CSS inline,
nothing loaded from anywhere (the registry may be served as static files)."""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Mapping
from typing import Any

from common.equity import GAPS
from server.model_card import NOT_MEASURED

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2rem auto;
max-width:64rem;color:#1d2733;line-height:1.45;padding:0 1rem}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{font-size:1.2rem;margin-top:1.8rem;
border-bottom:1px solid #d8dee6;padding-bottom:.2rem}
table{border-collapse:collapse;margin:.5rem 0;font-size:.92rem}
th,td{border-bottom:1px solid #e3e7ec;padding:.3rem .6rem;text-align:left;vertical-align:top}
th{background:#f4f6f8}td.num{text-align:right;font-variant-numeric:tabular-nums}
.nm{color:#8a5a00;font-style:italic}.muted{color:#5b6775}code{font-size:.85rem}
.note{background:#eef4fb;border-left:4px solid #3a6ea5;padding:.6rem 1rem}
"""


def page(title: str, body: Iterable[str]) -> str:
    """A complete standalone HTML page."""
    return "\n".join([
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body>",
        *body,
        "</body></html>",
    ])


def esc(value: object) -> str:
    return html.escape(str(value), quote=False)


def fmt(value: Any, digits: int = 3) -> str:
    """A figure as HTML: not-measured parts and unmeasurable values said in words."""
    if value == NOT_MEASURED:
        return f'<span class="nm">{NOT_MEASURED}</span>'
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return '<span class="muted">not reported (too few students or centres)</span>'
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:.{digits}g}" if abs(value) < 1e-3 and value != 0 else f"{value:.{digits}f}"
    if isinstance(value, list):
        return ", ".join(fmt(v, digits) for v in value) or "none"
    if isinstance(value, Mapping):
        return ", ".join(f"{esc(k)} {fmt(v, digits)}" for k, v in value.items()) or "none"
    return esc(value)


def rows(pairs: Iterable[tuple[str, str]]) -> str:
    """A two-column table of (label, already formatted HTML)."""
    return "<table>" + "".join(f"<tr><th>{esc(k)}</th><td>{v}</td></tr>" for k, v in pairs) + (
        "</table>")


def render_model_card(card: Mapping[str, Any]) -> str:
    """The model card as a standalone page."""
    version, data, privacy = card["version"], card["data"], card["privacy"]
    training, performance, baselines = card["training"], card["performance"], card["baselines"]
    body = [
        f"<h1>Model card: {esc(card['model_id'])}</h1>",
        f'<p class="muted">Persévérance support-priority model, created {esc(card["created"])}'
        f'. Weights SHA-256 <code>{esc(version["weights_sha256"])}</code>.</p>',
        "<h2>Intended use</h2>", f"<p>{esc(card['intended_use'])}</p>",
        "<h2>Not for</h2><ul>", *(f"<li>{esc(u)}</li>" for u in card["out_of_scope_uses"]),
        "</ul>",
        "<h2>Data</h2>",
        rows([("origin", fmt(data["origin"])), ("records", fmt(data["records"])),
              ("centres (participating / evaluated)",
               f"{fmt(data['centres_total'])} / {fmt(data['centres_evaluated'])}"),
              ("students", fmt(data["students"])),
              ("training / held-out records",
               f"{fmt(data['training_records'])} / {fmt(data['held_out_records'])}"),
              ("period (school years)", fmt(data["period"])), ("label", fmt(data["label"]))]),
        "<h2>Predictors</h2>",
        rows([("used", ", ".join(f"<code>{esc(p['name'])}</code>" for p in
                                 card["predictors"]["used"])),
              ("audit only (equity, never predictors)", fmt(card["predictors"]["audit_only"])),
              ("refused everywhere", fmt(card["predictors"]["forbidden"])),
              ("refused by centres' policies", fmt(card["predictors"]["refused_by_centres"]))]),
        "<h2>Privacy</h2>",
        rows([("student-level differential privacy (DP-SGD)",
               fmt(privacy["differential_privacy"])),
              ("epsilon target / largest spent",
               f"{fmt(privacy['epsilon_target'])} / {fmt(privacy['epsilon_spent_max'])}"),
              ("delta", fmt(privacy["delta"])), ("accountant", fmt(privacy["accountant"])),
              ("unit of privacy", fmt(privacy["unit"])),
              ("clipping bound", fmt(privacy["max_grad_norm"])),
              ("secure aggregation", fmt(privacy["secure_aggregation"]))]),
        "<h2>Training</h2>",
        rows([(k.replace("_", " "), fmt(v)) for k, v in training.items()]),
        "<h2>Performance (held-out records of all centres, pooled)</h2>",
        rows([("ROC AUC", fmt(performance["pooled"]["auc"])),
              ("PR AUC", fmt(performance["pooled"]["pr_auc"])),
              ("Brier score", fmt(performance["pooled"]["brier"])),
              ("calibration error", fmt(performance["pooled"]["calibration_error"])),
              ("ROC AUC by centre size band", fmt(performance["by_centre_size_band"])),
              ("ROC AUC by round", fmt(performance["auc_by_round"]))]),
        "<h2>Baselines (ROC AUC on the same held-out records)</h2>",
        rows([("centralised, without DP (reference)", fmt(baselines["centralized_without_dp"])),
              ("environment only (school indices IMSE, SFR)", fmt(baselines["environment_only"])),
              ("each centre alone (local only)", fmt(baselines["local_only"])),
              ("local only, by centre size band", fmt(baselines["local_only_by_size_band"]))]),
        "<h2>Equity</h2>", equity_html(card["equity"]),
        "<h2>Membership inference</h2>",
        _membership(card["membership_inference"]),
        "<h2>Limitations</h2><ul>", *(f"<li>{esc(n)}</li>" for n in card["limitations"]),
        "</ul>",
        "<h2>Version</h2>",
        rows([(k.replace("_", " "), fmt(v)) for k, v in version.items()]),
    ]
    return page(f"Model card {card['model_id']}", body)


def _membership(mia: Any) -> str:
    if not isinstance(mia, Mapping):
        return f"<p>{fmt(mia)}</p>"
    return rows([("attack", fmt(mia.get("attack", NOT_MEASURED))),
                 ("advantage, TPR − FPR (0 = chance)", fmt(mia.get("advantage"))),
                 ("bound implied by the DP guarantee", fmt(mia.get("dp_bound", NOT_MEASURED)))])


EQUITY_COLUMNS = (("n", "students"), ("positives", "left without diploma"), ("auc", "ROC AUC"),
                  ("tpr", "true-positive rate"), ("fpr", "false-positive rate"),
                  ("calibration_error", "calibration error"),
                  ("mean_predicted", "mean predicted"), ("observed_rate", "observed rate"))


def _interval(values: Mapping[str, Any], key: str) -> str:
    """`` [low, high]`` of ``key``'s 95 % interval when it has one, else nothing."""
    interval = values.get(f"{key}_ci")
    if isinstance(interval, list | tuple) and len(interval) == 2 and all(
            isinstance(v, int | float) and not math.isnan(v) for v in interval):
        return f" [{fmt(interval[0])},&nbsp;{fmt(interval[1])}]"
    return ""


def _metric_cell(metrics: Mapping[str, Any], key: str) -> str:
    """A group's metric, its interval (when it has one) below it."""
    interval = _interval(metrics, key)
    return fmt(metrics.get(key), 3) + (f'<br><span class="muted">{interval.strip()}</span>'
                                       if interval else "")


def _gap_cell(values: Mapping[str, Any], name: str) -> str:
    """A gap, its interval and the two groups behind it."""
    gap = values.get(name)
    if gap is None or (isinstance(gap, float) and math.isnan(gap)):
        return fmt(gap)
    text = fmt(gap) + _interval(values, name)
    groups = values.get(f"{name}_groups")
    if isinstance(groups, list) and len(groups) == 2:
        text += f'<br><span class="muted">{esc(groups[0])} − {esc(groups[1])}</span>'
    return text


def equity_html(equity: Any) -> str:
    """The equity table: one row per reported group, gaps per attribute, suppressed cells."""
    if not isinstance(equity, Mapping):
        return f"<p>{fmt(equity)}</p>"
    out = [f"<p>Operating threshold {fmt(equity.get('threshold'))}; groups of fewer than "
           f"{fmt(equity.get('min_cell'))} students, or from fewer than "
           f"{fmt(equity.get('min_centres_per_cell'))} centres (for a region: centres that "
           "are not Indigenous-governed boards), are not reported. Under each figure, its "
           "95 % interval" + (" (sampling and the DP noise on the counts)"
                               if (equity.get("noise_std") or 0) > 0 else "") + ".</p>",
           "<table><tr><th>attribute</th><th>group</th>",
           *(f"<th>{esc(label)}</th>" for _, label in EQUITY_COLUMNS), "</tr>"]
    for attribute, groups in equity.get("groups", {}).items():
        if not groups:
            out.append(f"<tr><td>{esc(attribute)}</td><td colspan=\"{len(EQUITY_COLUMNS) + 1}\">"
                       '<span class="muted">no group large enough to report</span></td></tr>')
        for value, metrics in groups.items():
            cells = "".join(f'<td class="num">{_metric_cell(metrics, key)}</td>'
                            for key, _ in EQUITY_COLUMNS)
            out.append(f"<tr><td>{esc(attribute)}</td><td>{esc(value)}</td>{cells}</tr>")
    out.append("</table>")
    out.append(gaps_html(equity))
    suppressed = equity.get("suppressed", [])
    out.append(f"<p>Suppressed: {fmt(list(suppressed)) if suppressed else 'none'}.</p>")
    return "".join(out)


def gaps_html(equity: Mapping[str, Any]) -> str:
    """The gaps table of ``equity.json`` (empty when it has none)."""
    out: list[str] = []
    gaps = equity.get("gaps", {})
    names = [name for name, _ in GAPS
             if any(name in values for values in gaps.values())]
    if names:
        out.append("<p>Gaps: largest minus smallest over the reported groups of each "
                   "attribute, with the 95 % interval of the difference between those two "
                   "groups (Newcombe's hybrid score method, adjusted for the pair being the "
                   "extreme one of the groups; with the DP noise on the counts when the "
                   "centres added it) "
                   "and the two groups.</p><table><tr><th>attribute</th>"
                   + "".join(f"<th>{esc(n.replace('_', ' '))}</th>" for n in names) + "</tr>")
        for attribute, values in gaps.items():
            cells = "".join(f'<td class="num">{_gap_cell(values, n)}</td>' for n in names)
            out.append(f"<tr><td>{esc(attribute)}</td>{cells}</tr>")
        out.append("</table>")
    return "".join(out)
