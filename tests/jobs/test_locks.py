"""The Redis lock against real Redis, from threads and from separate OS processes."""

import multiprocessing
import threading
import time

import pytest
import redis as redis_lib
from django.conf import settings

from jobs.coordination.locks import RedisLock
from jobs.foundation.exceptions import LockNotAcquired
from tests.concurrency import run_at_once
from tests.processes import wait_for


def test_only_one_holder_at_a_time(redis_client):
    first, second = RedisLock(name="report", ttl=10), RedisLock(name="report", ttl=10)

    assert first.acquire() is True
    assert second.acquire() is False
    assert first.acquire() is False, "not re-entrant"
    assert first.release() is True
    assert second.acquire() is True
    assert redis_client.get("jobs:lock:report") == second.token.encode()


def test_many_threads_one_winner(redis_client):
    def contend() -> bool:
        return RedisLock(name="race", ttl=10).acquire()

    assert sum(run_at_once(*[contend] * 20)) == 1


def _hold_and_count(barrier, rounds: int, results) -> None:
    """In a child process: take the lock `rounds` times and check nobody else is inside meanwhile."""
    try:
        client = redis_lib.Redis.from_url(settings.REDIS_URL)
        barrier.wait()
        overlaps = 0
        for _ in range(rounds):
            lock = RedisLock(name="shared", ttl=5)
            if not lock.acquire(blocking=True, timeout=20, poll_interval=0.002):
                raise AssertionError("never got the lock")
            if client.incr("test:inside") != 1:
                overlaps += 1
            time.sleep(0.005)
            client.decr("test:inside")
            if not lock.release():
                raise AssertionError("lost the lock while holding it")
        results.put(overlaps)
    except BaseException as error:  # noqa: BLE001 - reported to the parent instead of a silent exit code
        results.put(repr(error))


def test_processes_take_turns_never_overlapping(redis_client):
    context = multiprocessing.get_context("spawn")  # not fork: see test_ratelimit.py
    barrier, results = context.Barrier(4), context.Queue()
    children = [context.Process(target=_hold_and_count, args=(barrier, 15, results)) for _ in range(4)]
    for child in children:
        child.start()

    overlaps = [results.get(timeout=30) for _ in children]
    for child in children:
        child.join(timeout=10)

    assert [child.exitcode for child in children] == [0, 0, 0, 0]
    assert overlaps == [0, 0, 0, 0]


def test_only_the_owner_can_release_or_extend(redis_client):
    owner, intruder = RedisLock(name="report", ttl=10), RedisLock(name="report", ttl=10)
    owner.acquire()

    assert intruder.release() is False
    assert intruder.extend(additional_ttl=100) is False
    assert owner.held()
    assert redis_client.pttl(owner.key) <= 10_000


def test_lock_expires_if_the_holder_vanishes(redis_client):
    RedisLock(name="report", ttl=0.3).acquire()
    later = RedisLock(name="report", ttl=10)
    started = time.monotonic()

    assert later.acquire() is False
    assert later.acquire(blocking=True, timeout=3) is True
    assert time.monotonic() - started >= 0.2


def test_a_holder_whose_lock_expired_cannot_release_the_next_holders_lock(redis_client):
    stale = RedisLock(name="report", ttl=0.2)
    stale.acquire()
    current = RedisLock(name="report", ttl=10)
    assert current.acquire(blocking=True, timeout=3)

    assert stale.release() is False
    assert stale.extend() is False
    assert current.held()


def test_extend_adds_to_what_is_left(redis_client):
    lock = RedisLock(name="long", ttl=0.5)
    lock.acquire()

    assert lock.extend(additional_ttl=5) is True
    assert 5_000 < redis_client.pttl(lock.key) <= 5_500
    assert lock.extend() is True  # another ttl
    assert 5_400 < redis_client.pttl(lock.key) <= 6_000
    with pytest.raises(ValueError):
        lock.extend(additional_ttl=0)


def test_extended_lock_outlives_its_first_expiry(redis_client):
    lock = RedisLock(name="long", ttl=0.3)
    lock.acquire()
    lock.extend(additional_ttl=5)
    first_expiry = time.monotonic() + 0.3

    wait_for(lambda: time.monotonic() > first_expiry + 0.1, timeout=2, interval=0.05, message="the first expiry")
    assert lock.held()
    assert RedisLock(name="long", ttl=1).acquire() is False


def test_blocking_acquire_waits_for_release(redis_client):
    holder = RedisLock(name="report", ttl=10)
    holder.acquire()
    timer = threading.Timer(0.3, holder.release)
    timer.start()
    started = time.monotonic()

    assert RedisLock(name="report", ttl=10).acquire(blocking=True, timeout=5) is True
    assert 0.2 < time.monotonic() - started < 3
    timer.join()


def test_blocking_acquire_gives_up_at_the_timeout(redis_client):
    RedisLock(name="report", ttl=10).acquire()
    started = time.monotonic()

    assert RedisLock(name="report", ttl=10).acquire(blocking=True, timeout=0.3) is False
    assert 0.25 < time.monotonic() - started < 2


def test_context_manager_holds_releases_and_refuses(redis_client):
    with RedisLock(name="ctx", ttl=10) as lock:
        assert lock.held()
        with pytest.raises(LockNotAcquired, match="another owner holds it.*safe to retry") as refused:
            with RedisLock(name="ctx", ttl=10):
                pytest.fail("entered a held lock")
        assert refused.value.retryable is True
    assert not redis_client.exists(lock.key)


def test_context_manager_releases_on_error(redis_client):
    with pytest.raises(RuntimeError):
        with RedisLock(name="ctx", ttl=10) as lock:
            raise RuntimeError("boom")

    assert not redis_client.exists(lock.key)


def test_context_manager_leaves_a_later_holders_lock_alone(redis_client):
    with RedisLock(name="ctx", ttl=10) as lock:
        redis_client.delete(lock.key)  # as if it expired
        later = RedisLock(name="ctx", ttl=10)
        assert later.acquire()

    assert later.held()
