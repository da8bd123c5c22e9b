"""A rate limiter shared by every worker process and machine, kept in Redis.

Celery's own ``rate_limit`` is per worker process: four processes with ``10/s`` send 40
per second. This limiter is one sliding-window log per downstream in Redis, checked
and updated by one Lua script, so "N per period" holds across all of them.

Why a sliding-window log: it is exact (no window of ``period`` seconds ever holds more
than N grants, unlike a fixed window at its edges, or a token bucket's burst), and
it knows exactly when the next slot frees, so waiters sleep just long enough. It keeps
at most N timestamps per limiter, which is small for the limits of real downstreams.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

import redis
from django.conf import settings

from .exceptions import RateLimited, UnknownRateLimit
from .redis import get_redis

# KEYS: log (zset), pause key.  ARGV: limit, period_ms, unique member suffix.
# Returns {wait_ms, now_ms}: wait_ms = 0 when a slot was taken. Redis' own clock is
# used so that machines with skewed clocks agree.
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local paused_until = tonumber(redis.call('GET', KEYS[2]) or '0')
if paused_until > now then
    return {paused_until - now, now}
end
local limit = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - period)
local count = redis.call('ZCARD', KEYS[1])
if count < limit then
    redis.call('ZADD', KEYS[1], now, now .. '-' .. ARGV[3])
    redis.call('PEXPIRE', KEYS[1], period)
    return {0, now}
end
local oldest = tonumber(redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')[2])
return {math.max(1, oldest + period - now), now}
"""
# KEYS: pause key.  ARGV: pause_ms.  The pause only ever grows.
_PAUSE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local until_ms = now + tonumber(ARGV[1])
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if until_ms > current then
    redis.call('SET', KEYS[1], until_ms, 'PX', tonumber(ARGV[1]))
    return until_ms
end
return current
"""


@dataclass(frozen=True)
class Grant:
    wait_seconds: float  # 0.0: granted
    server_time: float  # Redis' clock, epoch seconds, when the answer was given

    @property
    def granted(self) -> bool:
        return self.wait_seconds == 0.0


class RateLimiter:
    """At most ``limit`` calls per ``period`` seconds for downstream ``name``, across all processes."""

    def __init__(self, *, name: str, limit: int, period: float, client: redis.Redis | None = None):
        if limit < 1 or period <= 0:
            raise ValueError(f"rate limit {name!r} needs limit >= 1 and period > 0, got {limit}/{period}s")
        self.name, self.limit, self.period = name, limit, period
        self.log_key = f"jobs:ratelimit:{name}:log"
        self.pause_key = f"jobs:ratelimit:{name}:paused_until"
        self._client = client
        self._member_counter = 0

    @classmethod
    def named(cls, name: str) -> RateLimiter:
        """The limiter configured in ``JOBS_RATE_LIMITS[name]`` (``{"limit": N, "period": seconds}``)."""
        limits = getattr(settings, "JOBS_RATE_LIMITS", {})
        try:
            config = limits[name]
        except KeyError:
            known = ", ".join(sorted(limits)) or "none"
            raise UnknownRateLimit(
                f"no rate limit named {name!r} in JOBS_RATE_LIMITS; configured: {known}", detail={"name": name}
            ) from None
        return cls(name=name, limit=int(config["limit"]), period=float(config["period"]))

    @property
    def client(self) -> redis.Redis:
        return self._client or get_redis()

    def try_acquire(self) -> Grant:
        """Take a slot now if one is free; otherwise say how long until one is."""
        self._member_counter += 1
        member = f"{id(self)}-{time.monotonic_ns()}-{self._member_counter}"
        wait_ms, now_ms = self.client.eval(
            _ACQUIRE, 2, self.log_key, self.pause_key, self.limit, int(self.period * 1000), member
        )
        return Grant(wait_seconds=int(wait_ms) / 1000, server_time=int(now_ms) / 1000)

    def acquire(self, *, max_wait: float = 1.0) -> Grant:
        """Take a slot, sleeping for short waits; raise RateLimited when the wait is longer than ``max_wait``.

        Inside a job, RateLimited postpones the job by the wait (no attempt spent) instead
        of holding a worker process asleep.
        """
        waited = 0.0
        while True:
            grant = self.try_acquire()
            if grant.granted:
                return grant
            if waited + grant.wait_seconds > max_wait:
                raise RateLimited(
                    f"rate limit {self.name!r} ({self.limit} per {self.period:g}s) has no free slot for "
                    f"{grant.wait_seconds:.2f}s; safe to retry after that",
                    wait_seconds=grant.wait_seconds,
                    detail={"limit": self.name, "wait_seconds": grant.wait_seconds},
                )
            time.sleep(grant.wait_seconds)
            waited += grant.wait_seconds

    def pause_for(self, seconds: float) -> float:
        """Nobody gets a slot for ``seconds`` (a downstream said Retry-After). Returns the pause end (epoch s)."""
        until_ms = self.client.eval(_PAUSE, 1, self.pause_key, max(1, int(seconds * 1000)))
        return int(until_ms) / 1000

    def pause_until(self, epoch_seconds: float) -> float:
        return self.pause_for(max(0.001, epoch_seconds - time.time()))

    def paused_for(self) -> float:
        """Seconds left of a pause (0 when not paused)."""
        grant_probe = self.client.get(self.pause_key)
        if not grant_probe:
            return 0.0
        now_s, now_us = self.client.time()
        return max(0.0, int(grant_probe) / 1000 - (now_s + now_us / 1e6))

    def reset(self) -> None:
        self.client.delete(self.log_key, self.pause_key)


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP-date. None if absent or unreadable."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (now if now is not None else time.time()))
