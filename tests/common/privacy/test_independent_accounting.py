"""A ledger's figures recomputed with an accountant the project does not use to book:
Google's dp-accounting (a dev dependency; skipped where it is not installed). Its RDP
accountant must agree with the ledger's (Opacus's RDP, ``common.privacy.accounting``) to
four decimals; its PLD accountant must give less (the slack docs/PRIVACY.md, "RDP and
PLD", measures)."""

from __future__ import annotations

from pathlib import Path

import pytest

from client.privacy.ledger import PrivacyLedger
from client.privacy.run_plan import plan_for, run_history, size_release
from client.site_policy import SitePolicy
from common.config import RunConfig
from common.privacy.accounting import RDP_ORDERS, calibrate_evaluation_noise, composed_epsilon

dpa = pytest.importorskip("dp_accounting")

DELTA = 1e-6
CONFIG = RunConfig.from_flat({"rounds": 6, "privacy.epsilon": 3.0, "privacy.delta": DELTA,
                              "evaluation.progress_every": 2})


def _event(history: list[tuple[float, float, int]]) -> object:
    events = []
    for z, q, steps in history:
        gaussian = dpa.GaussianDpEvent(z)
        event = gaussian if q >= 1 else dpa.PoissonSampledDpEvent(q, gaussian)
        events.append(dpa.SelfComposedDpEvent(event, steps))
    return dpa.ComposedDpEvent(events)


def _independent(history: list[tuple[float, float, int]]) -> tuple[float, float]:
    """(RDP, PLD) epsilons at DELTA from dp-accounting."""
    rdp = dpa.rdp.RdpAccountant(list(RDP_ORDERS))
    rdp.compose(_event(history))
    pld = dpa.pld.PLDAccountant(value_discretization_interval=1e-3)
    pld.compose(_event(history))
    return rdp.get_epsilon(DELTA), pld.get_epsilon(DELTA)


@pytest.mark.filterwarnings("ignore")  # dp-accounting's own numpy warnings
def test_a_booked_training_run_is_recomputed_by_dp_accounting(tmp_path: Path) -> None:
    """The demo's training at a centre of 3,000 released records: the size release and
    six rounds of DP-SGD, booked as a centre books them, read back from the ledger."""
    plan = plan_for(3000, CONFIG, SitePolicy().privacy)
    ledger = PrivacyLedger(tmp_path / "state")
    ledger.book(run_id="demo", server_round=0, kind="train", mechanisms=[size_release()],
                delta=DELTA, cap=10.0)
    for server_round in range(1, CONFIG.rounds + 1):
        ledger.book(run_id="demo", server_round=server_round, kind="train",
                    mechanisms=[plan.round_mechanism()], delta=DELTA, cap=10.0)
    history = run_history(ledger, "demo", "train")
    booked = composed_epsilon(history, DELTA)

    rdp, pld = _independent(history)

    assert booked == pytest.approx(2.9953, abs=1e-3)
    assert rdp == pytest.approx(booked, abs=1e-4)
    assert pld < booked - 0.2  # 2.75 on 2026-12-07


def test_the_evaluation_budget_is_recomputed_by_dp_accounting() -> None:
    history = calibrate_evaluation_noise(3.0, DELTA, CONFIG.rounds, 2).history(CONFIG.rounds)

    rdp, pld = _independent(history)

    assert rdp == pytest.approx(composed_epsilon(history, DELTA), abs=1e-4)
    assert rdp == pytest.approx(3.0, abs=2e-3)
    assert pld < 2.85  # 2.80
