"""The individual filter's figure (common.privacy.accounting.filter_epsilon): the best of
a fixed grid of RDP orders, each converted at delta shared among them (the union bound
that makes a filter letting a record in while any one order holds sound), checked order
by order against Opacus's own RDP functions."""

from __future__ import annotations

import pytest
from opacus.accountants.analysis.rdp import compute_rdp, get_privacy_spent

from common.privacy.accounting import (
    FILTER_ORDERS,
    RDP_ORDERS,
    composed_epsilon,
    filter_epsilon,
)

DELTA = 1e-6
HISTORIES = [
    [(1.1, 0.05, 300)],  # a DP-SGD run
    [(1.1, 0.05, 300), (50.0, 1.0, 1), (2.0, 1.0, 2), (0.9, 0.02, 1000)],  # and more
    [(8.0, 1.0, 1)],  # one plain Gaussian count
]


@pytest.mark.parametrize("history", HISTORIES)
def test_the_best_order_of_the_grid_at_delta_over_k(history: list[tuple[float, float, int]]
                                                    ) -> None:
    share = DELTA / len(FILTER_ORDERS)
    each = []
    for order in FILTER_ORDERS:
        rdp = sum(float(compute_rdp(q=q, noise_multiplier=z, steps=t, orders=[order])[0])
                  for z, q, t in history)
        each.append(get_privacy_spent(orders=[order], rdp=[rdp], delta=share)[0])
    assert filter_epsilon(history, DELTA) == pytest.approx(min(each), rel=1e-9)
    # What the filter pays for its union bound: more than the accountant's figure at
    # delta over every order, and not much more.
    assert composed_epsilon(history, DELTA) < filter_epsilon(history, DELTA) \
        < 1.5 * composed_epsilon(history, DELTA)


def test_the_grid_is_fixed_and_among_the_accountant_s_orders() -> None:
    assert len(FILTER_ORDERS) == 21 and list(FILTER_ORDERS) == sorted(set(FILTER_ORDERS))
    assert all(any(abs(order - o) < 1e-9 for o in RDP_ORDERS) for order in FILTER_ORDERS)


def test_nothing_spent_is_zero_and_other_accountants_are_theirs() -> None:
    assert filter_epsilon([], DELTA) == 0.0
    history = HISTORIES[0]
    assert filter_epsilon(history, DELTA, "prv") == composed_epsilon(history, DELTA, "prv")
