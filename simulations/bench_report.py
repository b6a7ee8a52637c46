"""The benchmark's report: the machine, issue 8's targets, the printed table."""

from __future__ import annotations

import os
import platform
from typing import Any

from common.i18n.catalogue import N_

# Targets of issue 8 for the full network (quebec-72, 20 rounds, DP), on 2 cores.
TARGETS = {
    "sim_dp_wall_seconds_max": 15 * 60.0,
    "overhead_ratio_max": 1.5,
    "dp_ratio_local_epoch_max": 2.0,
    "scoring_students_per_second_min": 100_000.0,
    "peak_rss_bytes_max": 4 * 1024**3,
}


def machine() -> dict[str, Any]:
    """The machine and the versions the figures were measured with."""
    from importlib.metadata import version

    return {
        "cpus": os.cpu_count(),
        "memory_bytes": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        **{name: version(name) for name in ("torch", "flwr", "opacus", "ray")},
        "load_average": [round(v, 2) for v in os.getloadavg()],
    }


def targets_met(report: dict[str, Any]) -> dict[str, bool]:
    """Which of issue 8's targets this run meets (they are set for ``quebec-72``)."""
    return {
        "sim_dp_under_15_minutes":
            report["wall_seconds"]["sim_dp"] <= TARGETS["sim_dp_wall_seconds_max"],
        "overhead_ratio_at_most_1.5": report["overhead_ratio"] <= TARGETS["overhead_ratio_max"],
        "dp_ratio_local_epoch_at_most_2":
            report["dp_ratio_local_epoch"] <= TARGETS["dp_ratio_local_epoch_max"],
        "scoring_at_least_100k_per_second":
            report["scoring_students_per_second"] >= TARGETS["scoring_students_per_second_min"],
        "peak_memory_under_4_gb":
            report["peak_memory"]["rss_bytes"] < TARGETS["peak_rss_bytes_max"],
    }


def table_rows(report: dict[str, Any]) -> list[tuple[str, str]]:
    """(figure, value) pairs for the printed table and docs/BENCHMARKS.md: the figures'
    names are catalogue messages (the command shows them in its language)."""
    w, mem = report["wall_seconds"], report["peak_memory"]
    parallel = report.get("parallel", {})  # reports before issue 32 have none
    gib = 1024**3
    return [
        (N_("centres / students / rounds"),
         f"{report['num_centres']} / {report['num_students']:,} / {report['rounds']}"),
        (N_("raw loop, DP (s)"), f"{w['raw_dp']:.1f}"),
        (N_("simulation engine, DP (s)"), f"{w['sim_dp']:.1f}"),
        (N_("raw loop, no DP (s)"), f"{w['raw_no_dp']:.1f}"),
        (N_("simulation engine, no DP (s)"), f"{w['sim_no_dp']:.1f}"),
        (N_("parallel efficiency: pure training / (engine wall x workers)"),
         f"{parallel.get('parallel_efficiency', float('nan')):.2f} "
         f"({parallel.get('workers')} workers)"),
        (N_("speed-up from 1 worker to all (same run)"),
         f"{_number(parallel.get('speedup')):.2f} "
         f"({_number(parallel.get('one_worker_wall_seconds')):.1f} s / {w['sim_dp']:.1f} s)"),
        (N_("overhead_ratio (sim / raw, DP)"), f"{report['overhead_ratio']:.2f}"),
        (N_("overhead_ratio without DP"), f"{report['overhead_ratio_no_dp']:.2f}"),
        (N_("raw_compute_seconds: pure local training, DP (s)"),
         f"{report['raw_compute_seconds']:.1f}"),
        (N_("compute_ratio (sim DP / pure training)"), f"{report['compute_ratio']:.2f}"),
        (N_("engine start, once for both simulated phases (s)"),
         f"{report['engine_start_seconds']:.1f}"),
        (N_("compute_ratio / overhead_ratio, engine start included"),
         f"{report['compute_ratio_with_engine_start']:.2f} / "
         f"{report['overhead_ratio_with_engine_start']:.2f}"),
        (N_("raw loop DP / pure training"), f"{report['raw_compute_ratio']:.2f}"),
        (N_("dp_ratio (raw DP / raw no DP)"), f"{report['dp_ratio']:.2f}"),
        (N_("dp_ratio, local training in the loops"), f"{report['dp_ratio_local_training']:.2f}"),
        (N_("dp_ratio, local epoch (best of 3)"), f"{report['dp_ratio_local_epoch']:.2f}"),
        (N_("bytes sent per centre per round"),
         f"{report['bytes_sent_per_centre_per_round']:,.0f}"),
        (N_("bytes received per centre per round"),
         f"{report['bytes_received_per_centre_per_round']:,.0f}"),
        (N_("peak memory, process tree RSS (GiB)"), f"{mem['rss_bytes'] / gib:.2f}"),
        (N_("peak memory, process tree PSS (GiB)"), f"{mem['pss_bytes'] / gib:.2f}"),
        (N_("local scoring (students/s)"), f"{report['scoring_students_per_second']:,.0f}"),
        (N_("pooled AUC raw DP / sim DP"),
         f"{report['auc_pooled']['raw_dp']:.3f} / {report['auc_pooled']['sim_dp']:.3f}"),
        (N_("load average before / after (1, 5, 15 min)"),
         f"{_load(report['load_average']['before'])} / {_load(report['load_average']['after'])}"),
    ]


def _number(value: object) -> float:
    """A figure of the report, NaN when absent (older reports, or none measured)."""
    return float(value) if isinstance(value, int | float) else float("nan")


def _load(averages: list[float]) -> str:
    return " ".join(f"{v:.1f}" for v in averages)
