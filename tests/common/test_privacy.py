import pytest

from common.privacy import (
    MAX_BATCH,
    MIN_BATCH,
    SamplingPlan,
    calibrate_noise,
    choose_batch_size,
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
