"""The global rate limiter against real Redis and real OS processes."""

import multiprocessing
import time
from email.utils import formatdate
from types import SimpleNamespace

import pytest
import time_machine
from django.test import override_settings

from jobs.coordination import ratelimit
from jobs.coordination.ratelimit import RateLimiter, parse_retry_after
from jobs.foundation.exceptions import RateLimited, UnknownRateLimit
from tests.processes import wait_for

# spawn, not fork: by the time these tests run the pytest process has threads (Celery's and
# redis' pools, earlier tests' threads), and a forked child can inherit a lock one of them held
# and hang. Spawned children import this module afresh; settings come from the environment.
PROCESSES = multiprocessing.get_context("spawn")


def max_in_any_window(times_ms: list[int], window_ms: int) -> int:
    """The most grants in any half-open window [t, t + window_ms). Integer ms: no float edge errors."""
    times_ms, best, start = sorted(times_ms), 0, 0
    for end in range(len(times_ms)):
        while times_ms[end] - times_ms[start] >= window_ms:
            start += 1
        best = max(best, end - start + 1)
    return best


# Redis answers in whole milliseconds in places (grant and pause times): bounds allow that much.
CLOCK_SLACK = 0.002


def redis_now(client) -> float:
    """Redis' clock, which the limiter reads (never the caller's)."""
    seconds, micros = client.time()
    return seconds + micros / 1e6


def record_sleeps(monkeypatch) -> list[float]:
    """The seconds of every sleep the limiter takes from now on (it still sleeps): what acquire chose to wait."""
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        time.sleep(seconds)

    # Only the limiter module's view of ``time``: other threads of this process sleep unrecorded.
    monkeypatch.setattr(ratelimit, "time", SimpleNamespace(sleep=sleep, time=time.time))
    return sleeps


def _run_children(target, args: tuple, *, count: int, timeout: float) -> list[list[int]]:
    results = PROCESSES.Queue()
    children = [PROCESSES.Process(target=target, args=(*args, results)) for _ in range(count)]
    for child in children:
        child.start()
    try:
        outputs = [results.get(timeout=timeout) for _ in children]
    finally:
        for child in children:
            child.join(timeout=10)
            if child.is_alive():
                child.kill()
    errors = [output for output in outputs if isinstance(output, str)]
    assert not errors, errors
    assert [child.exitcode for child in children] == [0] * count
    return outputs


def _grant_ms(limiter: RateLimiter) -> int:
    return round(limiter.last_granted_at * 1000)


def _acquire_slots(barrier, name: str, limit: int, slots: int, results) -> None:
    """Child process: take `slots` slots, calling acquire as fast as it returns; report grant times (Redis ms)."""
    try:
        limiter, grants = RateLimiter(name=name, limit=limit, period=1), []
        barrier.wait()
        for _ in range(slots):
            limiter.acquire(max_wait=60)  # waits of a second at most here: never raises on a slow machine
            grants.append(_grant_ms(limiter))
        results.put(grants)
    except BaseException as error:  # noqa: BLE001 - reported to the parent instead of a bare exit code
        results.put(repr(error))


def _hammer_until_stopped(started, stop, name: str, limit: int, results) -> None:
    """Child process: call acquire as fast as it returns until told to stop, after saying it has a grant."""
    try:
        limiter, grants = RateLimiter(name=name, limit=limit, period=1), []
        limiter.acquire(max_wait=5)
        grants.append(_grant_ms(limiter))
        started.wait(timeout=120)
        while not stop.is_set():
            limiter.acquire(max_wait=5)
            grants.append(_grant_ms(limiter))
        results.put(grants)
    except BaseException as error:  # noqa: BLE001
        results.put(repr(error))


def test_four_processes_never_exceed_the_limit_in_any_window(redis_client):
    # Counts, not speed: four processes ask for four windows' worth of slots at once; every slot is granted
    # (before a generous deadline), and Redis' grant times never put more than the limit in any 1 s window.
    # How close to the limit they get (the achieved rate) is a benchmark figure: bench/ratelimit.py.
    limit, slots_each, processes = 50, 50, 4
    RateLimiter(name="hammer", limit=limit, period=1).reset()

    per_process = _run_children(
        _acquire_slots, (PROCESSES.Barrier(processes), "hammer", limit, slots_each), count=processes, timeout=120
    )
    grants = sorted(t for times in per_process for t in times)

    assert [len(times) for times in per_process] == [slots_each] * processes
    assert max_in_any_window(grants, 1000) <= limit
    # Four windows' demand: had the limiter let more through, some window would hold more than the limit.
    assert len(grants) == processes * slots_each > 3 * limit


def test_a_pause_stops_every_process_until_it_ends(redis_client):
    limiter = RateLimiter(name="paused", limit=200, period=1)
    started, stop, results = PROCESSES.Barrier(5), PROCESSES.Event(), PROCESSES.Queue()
    children = [
        PROCESSES.Process(target=_hammer_until_stopped, args=(started, stop, "paused", 200, results)) for _ in range(4)
    ]
    for child in children:
        child.start()
    try:
        started.wait(timeout=120)  # every child holds a grant and goes on calling (spawning is slow when busy)
        pause_end = limiter.pause_for(1.0)
        end_ms = round(pause_end * 1000)
        start_ms = end_ms - 1000
        before = redis_now(redis_client)
        left = limiter.try_acquire()
        after = redis_now(redis_client)
        # What is left of the pause on Redis' clock when it answered, however long this process was descheduled.
        assert pause_end - after - CLOCK_SLACK <= left <= pause_end - before + CLOCK_SLACK, "reports the pause left"
        wait_for(
            lambda: redis_client.zcount(limiter.log_key, end_ms, "+inf") >= 100, timeout=60, interval=0.05,
            message="grants after the pause",
        )  # fmt: skip
    finally:
        stop.set()
    per_process = [results.get(timeout=60) for _ in children]
    for child in children:
        child.join(timeout=10)

    assert not [output for output in per_process if isinstance(output, str)], per_process
    for grants in per_process:
        assert any(t <= start_ms for t in grants), "was granting before the pause"
        assert not [t for t in grants if start_ms < t < end_ms], "no grant during the pause"
        assert any(t >= end_ms for t in grants), "resumed after the pause"


def test_a_pause_only_ever_extends(redis_client):
    limiter = RateLimiter(name="api", limit=10, period=1)
    long_end = limiter.pause_for(5)

    assert limiter.pause_for(1) == long_end
    assert limiter.pause_until(long_end - 2) == long_end
    assert 4 < limiter.paused_for() <= 5
    assert limiter.pause_until(long_end + 3) == pytest.approx(long_end + 3, abs=0.001)
    assert 7 < limiter.paused_for() <= 8


def test_a_pause_until_a_past_time_changes_nothing(redis_client):
    limiter = RateLimiter(name="api", limit=10, period=1)
    limiter.pause_until(time.time() - 60)

    assert limiter.paused_for() == 0.0
    assert limiter.try_acquire() == 0.0


def test_pauses_and_grants_use_redis_clock_not_the_callers(redis_client):
    limiter = RateLimiter(name="api", limit=10, period=1)
    before = redis_now(redis_client)
    with time_machine.travel(time.time() + 3600, tick=True):  # this machine's clock is an hour fast
        pause_end = limiter.pause_for(2)
        after = redis_now(redis_client)
        limiter.reset()
        assert limiter.try_acquire() == 0.0
        granted_by = redis_now(redis_client)

    assert before + 2 - CLOCK_SLACK <= pause_end <= after + 2 + CLOCK_SLACK
    assert after - CLOCK_SLACK <= limiter.last_granted_at <= granted_by + CLOCK_SLACK


def test_try_acquire_returns_zero_or_the_wait(redis_client):
    limiter = RateLimiter(name="api", limit=1, period=2)

    assert limiter.try_acquire() == 0.0
    assert 1.5 < limiter.try_acquire() <= 2.0


def test_a_lowered_limit_waits_for_enough_grants_to_age_out(redis_client):
    generous = RateLimiter(name="api", limit=3, period=2)
    for _ in range(3):
        assert generous.try_acquire() == 0.0

    # Only one slot per 2 s now: the newest of the three grants must age out first.
    assert 1.5 < RateLimiter(name="api", limit=1, period=2).try_acquire() <= 2.0


def test_acquire_sleeps_for_short_waits(redis_client, monkeypatch):
    limiter = RateLimiter(name="api", limit=2, period=0.5)
    limiter.acquire(max_wait=0)
    first = _grant_ms(limiter)
    limiter.acquire(max_wait=0)
    sleeps = record_sleeps(monkeypatch)

    limiter.acquire(max_wait=1.0)  # at most 0.5 s until the oldest grant ages out: it sleeps, then takes the slot

    assert sleeps and all(0 < seconds <= 0.5 for seconds in sleeps), sleeps
    assert _grant_ms(limiter) - first >= 500, "granted once the oldest grant had aged out (Redis' clock)"


def test_acquire_raises_rate_limited_when_the_wait_is_longer_than_max_wait(redis_client, monkeypatch):
    limiter = RateLimiter(name="api", limit=2, period=10)
    limiter.acquire(max_wait=0)
    limiter.acquire(max_wait=0)
    sleeps = record_sleeps(monkeypatch)

    with pytest.raises(RateLimited, match="no free slot.*safe to retry") as caught:
        limiter.acquire(max_wait=1.0)

    assert sleeps == [], "did not sleep before giving up"
    assert 9 < caught.value.wait_seconds <= 10
    assert caught.value.retryable is True


def test_acquire_raises_rate_limited_during_a_long_pause(redis_client):
    limiter = RateLimiter(name="api", limit=100, period=1)
    limiter.pause_for(10)

    with pytest.raises(RateLimited) as caught:
        limiter.acquire(max_wait=1.0)

    assert 9 < caught.value.wait_seconds <= 10


@override_settings(
    JOBS_RATE_LIMITS={"supplier-api": {"limit": 7, "period": 60}, "email-provider": {"limit": 1, "period": 1}}
)
def test_named_limiter_comes_from_settings():
    limiter = RateLimiter.named("supplier-api")

    assert (limiter.name, limiter.limit, limiter.period) == ("supplier-api", 7, 60)
    with pytest.raises(UnknownRateLimit, match="'nope'.*expected one of: email-provider, supplier-api") as caught:
        RateLimiter.named("nope")
    assert caught.value.retryable is False


@override_settings(JOBS_RATE_LIMITS={})
def test_no_limits_configured_says_so():
    with pytest.raises(UnknownRateLimit, match="none configured"):
        RateLimiter.named("supplier-api")


@pytest.mark.parametrize(
    ("header", "expected"),
    [("120", 120.0), (" 3 ", 3.0), ("0", 0.0), ("", None), (None, None), ("soon", None), ("-5", None), ("²", None)],
)
def test_parse_retry_after_delta_seconds(header, expected):
    assert parse_retry_after(header) == expected


def test_parse_retry_after_http_date():
    now = time.time()

    assert parse_retry_after(formatdate(now + 30, usegmt=True), now=now) == pytest.approx(30, abs=1)
    assert parse_retry_after(formatdate(now - 30, usegmt=True), now=now) == 0.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412480 - 60) == 60.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 -0000", now=1445412480 - 60) == 60.0


def test_scripts_run_by_hash_and_a_redis_that_lacks_one_is_sent_its_text(redis_client):
    # The limiter's scripts go by SHA (EVALSHA); a Redis that was restarted or flushed does not know them yet.
    import hashlib
    import secrets

    from jobs.coordination.ratelimit import _run_script

    script = f"return ARGV[1] -- {secrets.token_hex(8)}"  # never seen by this Redis
    sha = hashlib.sha1(script.encode(), usedforsecurity=False).hexdigest()
    assert redis_client.script_exists(sha) == [False]

    assert _run_script(redis_client, script, 0, "first") == b"first"  # NOSCRIPT, then the text
    assert redis_client.script_exists(sha) == [True]
    assert _run_script(redis_client, script, 0, "second") == b"second"  # by hash alone
