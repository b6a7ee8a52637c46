"""One line of progress per round, for operators and researchers, in the running
command's language (``common.i18n.cli.current``: ``--lang``; in a process no command
of ours started, a deployed ServerApp's, ``PERSEVERANCE_LANG``, else the locale, else
French)."""

from __future__ import annotations

from rich.console import Console

from common.i18n.catalogue import N_, Number, translate
from common.i18n.cli import current
from server.federation.bookkeeping import RoundLog

console = Console(highlight=False)


def round_parts(entry: RoundLog, rounds: int) -> list[str]:
    """The line's parts, as catalogue sentences."""
    ev, tr = entry.evaluation, entry.train
    epsilon = tr.get("epsilon_max")
    parts = [
        N_("round %(round)s/%(rounds)s", round=entry.round, rounds=rounds),
        N_("pooled AUC %(auc)s", auc=Number(ev["auc"], 3)) if "auc" in ev
        else N_("no pooled AUC this round"),
        N_("epsilon max %(epsilon)s", epsilon=Number(epsilon, 2)) if epsilon
        else N_("no DP"),
        N_("centres trained %(trained)s, evaluated %(evaluated)s",
           trained=int(tr.get("centres", 0)), evaluated=int(ev.get("centres", 0))),
    ]
    if entry.refusals:
        parts.append(N_("%(num)s declined", num=len(entry.refusals)))
    if entry.rejections:
        parts.append(N_("%(num)s rejected", num=len(entry.rejections)))
    if entry.absent:
        parts.append(N_("%(num)s absent", num=len(entry.absent)))
    if entry.model_version and not entry.updates:
        parts.append(N_("model unchanged"))
    return parts


def print_round(entry: RoundLog, rounds: int) -> None:
    lang = current()
    console.print("  " + " | ".join(translate(part, lang) for part in round_parts(
        entry, rounds)), soft_wrap=True)
