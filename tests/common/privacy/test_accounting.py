import pytest
from opacus.accountants import create_accountant

from common.config import ACCOUNTANTS, RunConfig
from common.privacy import accounting as privacy
from common.privacy.accounting import (
    MAX_BATCH,
    MIN_BATCH,
    EvaluationNoise,
    SamplingPlan,
    calibrate_evaluation_noise,
    calibrate_noise,
    choose_batch_size,
    composed_epsilon,
    epsilon_spent,
)


def test_batch_size_depends_on_centre_size():
    assert choose_batch_size(20) == 20
    assert choose_batch_size(400) == MIN_BATCH
    assert choose_batch_size(3_200) == 200
    assert choose_batch_size(1_000_000) == MAX_BATCH
    assert choose_batch_size(5_000, configured=64) == 64


def test_sampling_plan_steps_and_rate():
    plan = SamplingPlan(num_records=1000, batch_size=300)
    assert plan.steps_per_epoch == 4
    assert plan.sample_rate == 0.25


def test_calibrated_noise_meets_the_target_and_no_more():
    sigma = calibrate_noise(2.0, 1e-6, 0.05, 200)
    spent = epsilon_spent(sigma, 0.05, 200, 1e-6)
    assert spent <= 2.0
    assert spent > 1.9  # Opacus's search tolerance is 0.01
    assert epsilon_spent(sigma * 0.9, 0.05, 200, 1e-6) > 2.0


def test_epsilon_grows_with_steps_and_is_zero_before_any():
    assert epsilon_spent(1.0, 0.1, 0, 1e-6) == 0.0
    assert epsilon_spent(1.0, 0.1, 10, 1e-6) < epsilon_spent(1.0, 0.1, 20, 1e-6)


def test_known_answer_from_the_rdp_accountant():
    # Pinned value (Opacus 1.6 RDP accountant): sigma 1.0, q 0.01, 1000 steps, delta 1e-5.
    assert epsilon_spent(1.0, 0.01, 1000, 1e-5) == pytest.approx(2.06, abs=0.05)


@pytest.mark.parametrize("epsilon", [1.0, 3.0])
def test_the_evaluation_budget_is_met_with_the_audit_getting_the_least_noise(epsilon):
    noise = calibrate_evaluation_noise(epsilon, 1e-6, 6)
    assert noise.audit < noise.final < noise.progress
    spent = composed_epsilon(noise.history(6), 1e-6)
    assert epsilon * 0.98 <= spent <= epsilon * 1.001
    # What the centres book round by round is the history the calibration priced.
    # (the audit exchange's counts after the final round's histogram).
    booked = [*(m for r in range(1, 7) for m in noise.round_mechanisms(r)),
              *noise.audit_mechanisms()]
    assert composed_epsilon(booked, 1e-6) == pytest.approx(spent, rel=1e-9)
    # 10 % less noise everywhere would overspend.
    tighter = EvaluationNoise(noise.final * 0.9, noise.progress * 0.9, 6, noise.audit * 0.9)
    assert composed_epsilon(tighter.history(6), 1e-6) > epsilon


# Opacus's PRV of an unsampled Gaussian (q = 1) takes log(1 - q): its own warning.
@pytest.mark.filterwarnings("ignore:divide by zero encountered in log:RuntimeWarning")
def test_a_run_booked_with_prv_calibrates_its_evaluation_with_prv():
    """``privacy.accountant=prv`` (a research option) prices the evaluation with the
    accountant the centres book it with, as its training: the target met in PRV, which
    the RDP calibration's noise underspent (2.81 of 3); less noise, more RDP."""
    rdp = calibrate_evaluation_noise(3.0, 1e-6, 6, 2)
    prv = calibrate_evaluation_noise(3.0, 1e-6, 6, 2, "prv")
    assert composed_epsilon(rdp.history(6), 1e-6, "prv") == pytest.approx(2.81, abs=0.01)
    assert composed_epsilon(prv.history(6), 1e-6, "prv") == pytest.approx(3.0, abs=2e-3)
    assert prv.audit < rdp.audit * 0.96  # 1.94 against 2.06
    assert composed_epsilon(prv.history(6), 1e-6) == pytest.approx(3.20, abs=0.01)


@pytest.mark.parametrize("every", [0, 2, 4])
def test_progress_every_prices_only_the_scheduled_releases(every):
    noise = calibrate_evaluation_noise(3.0, 1e-6, 6, every)
    scheduled = [r for r in range(1, 7) if noise.round_mechanisms(r)]
    assert scheduled == [*range(every, 6, every), 6] if every else scheduled == [6]
    booked = [*(m for r in range(1, 7) for m in noise.round_mechanisms(r)),
              *noise.audit_mechanisms()]
    assert composed_epsilon(booked, 1e-6) == pytest.approx(
        composed_epsilon(noise.history(6), 1e-6), rel=1e-9)
    assert composed_epsilon(booked, 1e-6) <= 3.0 * 1.001
    # The budget fewer progress releases leave goes to the final histogram and the audit.
    assert noise.audit < calibrate_evaluation_noise(3.0, 1e-6, 6, 1).audit


@pytest.mark.parametrize(("epsilon", "sample_rate", "rounds"), [
    (3.0, 0.1, 1), (3.0, 1 / 40, 20), (1.0, 1 / 160, 4), (8.0, 0.1, 4), (8.0, 1 / 160, 20),
    (0.3, 0.5, 2), (30.0, 1 / 40, 1),
])
def test_the_plan_on_near_orders_is_the_plan_on_every_order(epsilon: float, sample_rate: float,
                                                            rounds: int) -> None:
    """The fast search (a few RDP orders around the optimum) plans what the search on
    every order plans, within the bisection's precision; Opacus's accountant, on every
    order, says it spends at most the target and 0.5 % less noise would spend more."""
    steps = round(2 / sample_rate) * rounds
    fast = privacy._plan_on_near_orders(epsilon, 1e-6, sample_rate, steps, rounds)
    assert fast is not None
    full = privacy._plan_on_every_order(epsilon, 1e-6, sample_rate, steps, rounds, "rdp")
    assert abs(fast / full - 1) <= 2 * (privacy.PLAN_TOLERANCE - 1)
    history = privacy.training_history(fast, sample_rate, steps, rounds)
    assert composed_epsilon(history, 1e-6) <= epsilon
    below = privacy.training_history(fast / privacy.PLAN_TOLERANCE, sample_rate, steps, rounds)
    assert composed_epsilon(below, 1e-6) > epsilon


@pytest.mark.parametrize("name", ACCOUNTANTS)
def test_every_registered_accountant_books_as_opacus_does_and_a_run_may_name_it(
        name: str) -> None:

    history = [(1.1, 0.01, 300), (2.0, 1.0, 2)]
    opacus = create_accountant(name)
    opacus.history = list(history)

    assert composed_epsilon(history, 1e-6, name) == pytest.approx(
        opacus.get_epsilon(delta=1e-6), rel=1e-3)
    assert RunConfig.from_flat({"privacy.accountant": name}).privacy.accountant == name
