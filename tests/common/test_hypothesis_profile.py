"""Hypothesis in the suite: the same examples in every run of ``make test`` and ``make
test-fast`` (the ``ci`` profile of tests/conftest.py), fresh ones under ``make fuzz``."""

from __future__ import annotations

import os

from hypothesis import settings

from tests.client.ingest import test_malformed

FUZZ = os.environ.get("PERSEVERANCE_FUZZ", "") not in ("", "0")


def test_the_suite_draws_fixed_examples_unless_fuzzing() -> None:
    assert settings.default.derandomize is not FUZZ
    assert settings.default.deadline is None
    # A test's own settings (how many examples) keep the profile's choice of randomness.
    for test in (test_malformed.test_row_problems_past_the_threshold,
                 test_malformed.test_the_same_rows_are_listed_and_excluded,
                 test_malformed.test_binary_garbage):
        chosen = test._hypothesis_internal_use_settings  # type: ignore[attr-defined]
        assert chosen.derandomize is not FUZZ, test.__name__
