"""One line of progress per round, for operators and researchers."""

from __future__ import annotations

from rich.console import Console

from server.federation.bookkeeping import RoundLog

console = Console(highlight=False)


def print_round(entry: RoundLog, rounds: int) -> None:
    ev, tr = entry.evaluation, entry.train
    epsilon = tr.get("epsilon_max")
    parts = [
        f"round {entry.round}/{rounds}",
        f"pooled AUC {ev['auc']:.3f}" if "auc" in ev else "no pooled AUC this round",
        f"epsilon max {epsilon:.2f}" if epsilon else "no DP",
        f"centres trained {int(tr.get('centres', 0))}, evaluated {int(ev.get('centres', 0))}",
    ]
    if entry.refusals:
        parts.append(f"{len(entry.refusals)} declined")
    if entry.rejections:
        parts.append(f"{len(entry.rejections)} rejected")
    if entry.absent:
        parts.append(f"{len(entry.absent)} absent")
    if entry.model_version and not entry.updates:
        parts.append("model unchanged")
    console.print("  " + " | ".join(parts), soft_wrap=True)
