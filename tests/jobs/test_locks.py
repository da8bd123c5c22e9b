"""The Redis lock against real Redis."""

import threading
import time

import pytest

from jobs.exceptions import LockNotAcquired
from jobs.locks import RedisLock


def test_only_one_holder_at_a_time(redis_client):
    first, second = RedisLock(name="report", ttl=10), RedisLock(name="report", ttl=10)

    assert first.acquire() is True
    assert second.acquire() is False
    assert first.release() is True
    assert second.acquire() is True


def test_many_threads_one_winner(redis_client):
    barrier, winners = threading.Barrier(20), []

    def contend():
        lock = RedisLock(name="race", ttl=10)
        barrier.wait()
        if lock.acquire():
            winners.append(lock.token)

    threads = [threading.Thread(target=contend) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(winners) == 1


def test_only_the_owner_can_release_or_extend(redis_client):
    owner, intruder = RedisLock(name="report", ttl=10), RedisLock(name="report", ttl=10)
    owner.acquire()

    assert intruder.release() is False
    assert intruder.extend(ttl=100) is False
    assert owner.held() and redis_client.pttl(owner.key) <= 10_000


def test_lock_expires_if_the_holder_vanishes(redis_client):
    RedisLock(name="report", ttl=0.2).acquire()
    later = RedisLock(name="report", ttl=10)

    assert later.acquire(blocking=True, timeout=2) is True


def test_extend_keeps_it_past_the_first_expiry(redis_client):
    lock = RedisLock(name="long", ttl=0.3)
    lock.acquire()
    time.sleep(0.2)

    assert lock.extend(ttl=5) is True
    time.sleep(0.2)
    assert lock.held() and RedisLock(name="long", ttl=1).acquire() is False


def test_blocking_acquire_waits_for_release(redis_client):
    holder = RedisLock(name="report", ttl=10)
    holder.acquire()
    threading.Timer(0.3, holder.release).start()
    started = time.monotonic()

    assert RedisLock(name="report", ttl=10).acquire(blocking=True, timeout=5) is True
    assert 0.2 < time.monotonic() - started < 3


def test_blocking_acquire_gives_up_at_the_timeout(redis_client):
    RedisLock(name="report", ttl=10).acquire()
    started = time.monotonic()

    assert RedisLock(name="report", ttl=10).acquire(blocking=True, timeout=0.3) is False
    assert time.monotonic() - started < 2


def test_context_manager_releases_and_refuses(redis_client):
    with RedisLock(name="ctx", ttl=10) as lock:
        assert lock.held()
        with pytest.raises(LockNotAcquired, match="held by another process"):
            with RedisLock(name="ctx", ttl=10):
                pass
    assert not redis_client.exists(lock.key)
