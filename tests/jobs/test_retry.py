"""Backoff arithmetic and the retry classification."""

import random

import pytest
from celery.exceptions import SoftTimeLimitExceeded
from django.db import OperationalError

from jobs.core.retry import Backoff, RetryPolicy
from jobs.foundation.exceptions import PermanentJobError, TransientJobError, UnsupportedMessageVersion


def test_ceiling_grows_exponentially_until_the_cap():
    backoff = Backoff(base_seconds=2, factor=2, cap_seconds=60)

    assert [backoff.ceiling(n) for n in range(1, 8)] == [2, 4, 8, 16, 32, 60, 60]


def test_delays_are_full_jitter_within_the_ceiling():
    backoff = Backoff(base_seconds=2, factor=2, cap_seconds=60, min_seconds=0.1)
    rng = random.Random(7)

    for attempt in range(1, 10):
        draws = [backoff.delay(attempt, rng=rng) for _ in range(500)]
        ceiling = backoff.ceiling(attempt)
        assert all(0.1 <= d <= ceiling for d in draws)
        # Spread over the whole range, not clustered: that is what keeps workers apart.
        assert min(draws) < ceiling * 0.1 + 0.1
        assert max(draws) > ceiling * 0.9


def test_average_delay_grows_with_the_attempt():
    backoff = Backoff(base_seconds=1, factor=2, cap_seconds=300)
    rng = random.Random(3)
    means = [sum(backoff.delay(n, rng=rng) for _ in range(2000)) / 2000 for n in range(1, 6)]

    assert means == sorted(means)
    assert means[4] / means[0] > 10  # 16x the ceiling, give or take the jitter


@pytest.mark.parametrize(
    "error",
    [
        TransientJobError("x"),
        TimeoutError(),
        ConnectionError(),
        TimeoutError(),
        OperationalError(),
        SoftTimeLimitExceeded(),
    ],
)
def test_transient_errors_retry(error):
    assert RetryPolicy().is_retryable(error)


@pytest.mark.parametrize("error", [ValueError(), KeyError(), PermanentJobError("x"), UnsupportedMessageVersion("x")])
def test_other_errors_fail_at_once(error):
    assert not RetryPolicy().is_retryable(error)


def test_declared_permanent_error_wins_over_a_transient_base():
    class NotFoundUpstream(ConnectionError):
        pass

    policy = RetryPolicy(retry_on=(ConnectionError,), fail_on=(NotFoundUpstream,))

    assert policy.is_retryable(ConnectionError())
    assert not policy.is_retryable(NotFoundUpstream())


def test_max_attempts_must_be_positive():
    with pytest.raises(ValueError, match="at least 1"):
        RetryPolicy(max_attempts=0)
