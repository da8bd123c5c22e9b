"""The global rate limiter against real Redis and real processes."""

import json
import os
import subprocess
import sys
import time
from email.utils import formatdate

import pytest
from django.conf import settings
from django.test import override_settings

from jobs.exceptions import RateLimited, UnknownRateLimit
from jobs.ratelimit import RateLimiter, parse_retry_after
from tests.processes import BASE_DIR


def max_in_any_window(times: list[float], window: float) -> int:
    times = sorted(times)
    best, start = 0, 0
    for end in range(len(times)):
        while times[end] - times[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


def test_four_processes_never_exceed_the_limit_and_get_at_least_90_percent(redis_client, tmp_path):
    limit, seconds, processes = 50, 4.0, 4
    outputs = [tmp_path / f"grants-{i}.json" for i in range(processes)]
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.jobs.ratelimit_worker", settings.REDIS_URL, str(limit), str(seconds), str(out)],
            cwd=BASE_DIR, env={**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.test"},
        )  # fmt: skip
        for out in outputs
    ]
    for worker in workers:
        assert worker.wait(timeout=60) == 0
    per_process = [json.loads(out.read_text()) for out in outputs]
    grants = sorted(t for times in per_process for t in times)

    assert all(len(times) > 0 for times in per_process), "every process got slots"
    assert max_in_any_window(grants, 1.0) <= limit
    # The first window admits `limit` at once: count it as a full second.
    achieved = len(grants) / (grants[-1] - grants[0] + 1.0)
    assert achieved >= 0.9 * limit, f"achieved {achieved:.1f}/s of {limit}/s"


def test_a_pause_blocks_everyone_until_it_ends(redis_client):
    first, second = RateLimiter(name="api", limit=100, period=1), RateLimiter(name="api", limit=100, period=1)
    first.pause_for(0.5)

    blocked = second.try_acquire()
    assert not blocked.granted and 0.3 < blocked.wait_seconds <= 0.5
    time.sleep(blocked.wait_seconds + 0.05)
    assert second.try_acquire().granted


def test_a_pause_only_ever_grows(redis_client):
    limiter = RateLimiter(name="api", limit=10, period=1)
    long_end = limiter.pause_for(5)

    assert limiter.pause_for(1) == long_end
    assert 4 < limiter.paused_for() <= 5


def test_acquire_sleeps_for_short_waits_and_raises_for_long_ones(redis_client):
    limiter = RateLimiter(name="api", limit=2, period=0.5)
    limiter.acquire()
    limiter.acquire()
    started = time.monotonic()
    limiter.acquire(max_wait=1.0)  # waits about 0.5 s for the oldest grant to age out
    assert 0.3 < time.monotonic() - started < 1.0

    limiter.pause_for(10)
    with pytest.raises(RateLimited) as caught:
        limiter.acquire(max_wait=1.0)
    assert 9 < caught.value.wait_seconds <= 10
    assert caught.value.retryable is True


@override_settings(JOBS_RATE_LIMITS={"supplier-api": {"limit": 7, "period": 60}})
def test_named_limiter_comes_from_settings():
    limiter = RateLimiter.named("supplier-api")
    assert (limiter.limit, limiter.period) == (7, 60)
    with pytest.raises(UnknownRateLimit, match="configured: supplier-api"):
        RateLimiter.named("nope")


@pytest.mark.parametrize(
    ("header", "expected"),
    [("120", 120.0), (" 3 ", 3.0), ("", None), (None, None), ("soon", None), ("-5", None)],
)
def test_parse_retry_after_seconds(header, expected):
    assert parse_retry_after(header) == expected


def test_parse_retry_after_http_date():
    now = time.time()
    assert parse_retry_after(formatdate(now + 30, usegmt=True), now=now) == pytest.approx(30, abs=1)
    assert parse_retry_after(formatdate(now - 30, usegmt=True), now=now) == 0.0
