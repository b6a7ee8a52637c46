"""Privacy figures recomputed with Google's dp-accounting, an accountant the project does
not book with: run by ``tests/common/privacy/test_independent_accounting.py`` in a virtual
environment of its own (``make dp-accounting``: dp-accounting pins attrs < 24, which the
project's own environment cannot hold). It imports nothing of the project.

JSON in (standard input)::

    {"rdp_orders": [...], "filter_orders": [...],
     "cases": [{"history": [[noise_multiplier, sample_rate, steps], ...], "delta": 1e-6}]}

JSON out (standard output), one object per case, in order: ``rdp``, the history's epsilon
at ``delta`` with dp-accounting's RDP accountant at ``rdp_orders``; ``pld``, with its PLD
accountant (discretisation 1e-3, pessimistic: 2e-5 from 1e-4's
figures at five times the speed); ``filter``, with its RDP accountant at
``filter_orders`` converted at ``delta`` / their number (the individual filter's figure).
Each row is a Gaussian mechanism composed ``steps`` times, Poisson-subsampled at
``sample_rate`` when below 1.
"""

from __future__ import annotations

import json
import sys
import warnings

import dp_accounting as dpa


def _event(history: list[list[float]]) -> dpa.DpEvent:
    events = []
    for z, q, steps in history:
        if int(steps) <= 0:
            continue
        gaussian = dpa.GaussianDpEvent(float(z))
        event = gaussian if float(q) >= 1 else dpa.PoissonSampledDpEvent(float(q), gaussian)
        events.append(dpa.SelfComposedDpEvent(event, int(steps)))
    return dpa.ComposedDpEvent(events)


def _rdp(history: list[list[float]], orders: list[float], delta: float) -> float:
    accountant = dpa.rdp.RdpAccountant(orders)
    accountant.compose(_event(history))
    return float(accountant.get_epsilon(delta))


def _pld(history: list[list[float]], delta: float) -> float:
    accountant = dpa.pld.PLDAccountant(value_discretization_interval=1e-3)
    accountant.compose(_event(history))
    return float(accountant.get_epsilon(delta))


def main() -> None:
    asked = json.load(sys.stdin)
    orders = [float(a) for a in asked["rdp_orders"]]
    filter_orders = [float(a) for a in asked["filter_orders"]]
    answers = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # dp-accounting's own numpy warnings
        for case in asked["cases"]:
            history, delta = case["history"], float(case["delta"])
            answers.append({"rdp": _rdp(history, orders, delta),
                            "pld": _pld(history, delta),
                            "filter": _rdp(history, filter_orders,
                                           delta / len(filter_orders))})
    json.dump(answers, sys.stdout)


if __name__ == "__main__":
    main()
