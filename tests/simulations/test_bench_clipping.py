"""The DP-SGD engines' side-by-side bench (``simulations.bench_clipping``)."""

from __future__ import annotations

from simulations.bench_clipping import compare


def test_the_engines_bench_reports_agreement_and_a_time_for_each():
    row = compare(400, repeats=1)

    assert set(row["epoch_seconds"]) == {"auto", "opacus", "opacus-ghost"}
    assert all(0 < s < 60 for s in row["epoch_seconds"].values())
    assert max(row["max_weight_difference"].values()) < 1e-5
