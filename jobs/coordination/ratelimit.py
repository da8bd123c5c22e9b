"""A rate limiter shared by every worker process and machine, kept in Redis.

Celery's own ``rate_limit`` is per worker: four workers each allowed 10/s send 40/s.
This limiter keeps one sliding-window log per downstream in Redis, checked and updated
by one Lua script, so "N per period" holds across all of them.

Why a sliding-window log rather than a token bucket: it is exact (no window of
``period`` seconds ever holds more than N grants, where a fixed window lets 2N through
at its edge and a bucket lets a full burst through on top of the refill), and it knows
exactly when the next slot frees, so waiters sleep just long enough. It stores at most
N timestamps per downstream, which is small for the limits real downstreams impose.

Both scripts read the clock with Redis ``TIME``, never the caller's, so machines whose
clocks disagree still agree on the window and on pauses.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Any

import redis
from django.conf import settings

from jobs.foundation import metrics
from jobs.foundation.exceptions import RateLimited, UnknownRateLimit
from jobs.foundation.redis import get_redis

logger = logging.getLogger("jobs.ratelimit")

KEY_PREFIX = "jobs:ratelimit:"

# KEYS: log (sorted set of grant times in ms), pause key.  ARGV: limit, period_ms, member id, slots (default 1).
# Returns {wait_ms, now_ms}; wait_ms = 0 means the slots were taken at now_ms (all of them, or none).
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local paused_until = tonumber(redis.call('GET', KEYS[2]) or '0')
if paused_until > now then
    return {paused_until - now, now}
end
local limit = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
local slots = tonumber(ARGV[4] or '1')
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - period)
local count = redis.call('ZCARD', KEYS[1])
if count + slots <= limit then
    if slots == 1 then
        redis.call('ZADD', KEYS[1], now, now .. ':' .. ARGV[3])
    else
        local members = {}
        for i = 1, slots do
            members[#members + 1] = now
            members[#members + 1] = now .. ':' .. ARGV[3] .. ':' .. i
        end
        redis.call('ZADD', KEYS[1], unpack(members))
    end
    redis.call('PEXPIRE', KEYS[1], period)
    return {0, now}
end
-- The slots free when enough grants age out to leave limit - slots (more than that if the
-- limit was lowered while the log was full).
local index = math.max(0, count + slots - limit - 1)
local freeing = redis.call('ZRANGE', KEYS[1], index, index, 'WITHSCORES')
return {math.max(1, tonumber(freeing[2]) + period - now), now}
"""

# KEYS: pause key.  ARGV: 'for' with a duration in ms, or 'until' with an epoch in ms.
# The pause only ever grows; returns its end (ms), or now when there is none.
_PAUSE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local target = tonumber(ARGV[2])
if ARGV[1] == 'for' then
    target = now + target
end
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if target > current and target > now then
    redis.call('SET', KEYS[1], target, 'PX', target - now)
    return target
end
return math.max(current, now)
"""
# KEYS: pause key.  Returns ms left of the pause (0 when none).
_PAUSE_LEFT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return math.max(0, tonumber(redis.call('GET', KEYS[1]) or '0') - now)
"""


def _run_script(client: redis.Redis, script: str, numkeys: int, *args: str | int) -> Any:
    """Run ``script`` by its SHA1 (EVALSHA): Redis keeps the compiled script, so each call sends only the
    hash, not the script text. A Redis that does not know it yet (restarted, flushed) is sent the text once
    with EVAL, which also stores it."""
    sha = _SCRIPT_SHAS.get(script)
    if sha is None:
        sha = _SCRIPT_SHAS[script] = hashlib.sha1(script.encode(), usedforsecurity=False).hexdigest()
    try:
        return client.evalsha(sha, numkeys, *args)
    except redis.exceptions.NoScriptError:
        return client.eval(script, numkeys, *args)


_SCRIPT_SHAS: dict[str, str] = {}


class RateLimiter:
    """At most ``limit`` calls per ``period`` seconds to downstream ``name``, across all processes.

    ``RateLimiter.named("supplier-api")`` reads ``settings.JOBS_RATE_LIMITS``; constructing
    one directly (tests, benchmarks) shares state with every other limiter of that name.
    """

    def __init__(self, *, name: str, limit: int, period: float, client: redis.Redis | None = None) -> None:
        if limit < 1 or period <= 0:
            raise ValueError(f"rate limit {name!r} needs limit >= 1 and period > 0 seconds, got {limit} per {period}s")
        self.name = name
        self.limit = limit
        self.period = period
        self.log_key = f"{KEY_PREFIX}{name}:log"
        self.pause_key = f"{KEY_PREFIX}{name}:paused_until"
        self._client = client
        # When this object last took a slot, on Redis' clock (epoch seconds, ms precision).
        self.last_granted_at: float | None = None

    @classmethod
    def named(cls, name: str) -> RateLimiter:
        """The limiter configured as ``JOBS_RATE_LIMITS[name] = {"limit": N, "period": seconds}``."""
        limits: dict[str, dict[str, float]] = getattr(settings, "JOBS_RATE_LIMITS", {})
        if name not in limits:
            known = ", ".join(sorted(limits)) or "none configured"
            raise UnknownRateLimit(
                f"no rate limit named {name!r} in settings.JOBS_RATE_LIMITS (expected one of: {known}); "
                "retrying fails the same way until the setting defines it",
                detail={"name": name, "known": sorted(limits)},
            )
        config = limits[name]
        return cls(name=name, limit=int(config["limit"]), period=float(config["period"]))

    @property
    def client(self) -> redis.Redis:
        return self._client or get_redis()

    def try_acquire(self, *, slots: int = 1) -> float:
        """Take ``slots`` slots (default one) if that many are free now: 0.0. Otherwise the seconds until they
        free (or a pause ends); none is taken then. More slots than the limit never free: ValueError."""
        if not 1 <= slots <= self.limit:
            raise ValueError(f"rate limit {self.name!r} has {self.limit} slots per {self.period:g}s; asked for {slots}")
        wait_ms, now_ms = _run_script(
            self.client,
            _ACQUIRE,
            2,
            self.log_key,
            self.pause_key,
            self.limit,
            _milliseconds(self.period),
            secrets.token_hex(6),
            slots,
        )
        if int(wait_ms) == 0:
            self.last_granted_at = int(now_ms) / 1000
            return 0.0
        return int(wait_ms) / 1000

    def try_acquire_or_allow(self, *, slots: int = 1) -> float:
        """``try_acquire``, but 0.0 (allowed) when Redis does not answer: for abuse limits in front of
        requests, which must not turn a broker outage into refusing every caller. Logged."""
        try:
            return self.try_acquire(slots=slots)
        except redis.RedisError as exc:
            logger.warning("rate limit %r not checked, Redis unreachable (allowed): %s", self.name, exc)
            return 0.0

    def acquire(self, *, max_wait: float) -> None:
        """Take a slot, sleeping while the total wait stays within ``max_wait`` seconds.

        Raises RateLimited (with ``wait_seconds``) instead of sleeping longer; raised inside
        a job, the platform postpones the job by that wait without spending an attempt,
        rather than holding a worker process asleep.
        """
        waited = 0.0
        while True:
            wait = self.try_acquire()
            if wait == 0.0:
                return
            if waited + wait > max_wait:
                metrics.rate_limiter_limited(limiter=self.name)
                raise RateLimited(
                    f"rate limit {self.name!r} ({self.limit} per {self.period:g}s) has no free slot for "
                    f"{wait:.2f}s, longer than the {max_wait:g}s this call may wait; safe to retry after that",
                    wait_seconds=wait,
                    detail={"limit": self.name, "wait_seconds": wait},
                )
            time.sleep(wait)
            waited += wait
            metrics.rate_limiter_waited(limiter=self.name, seconds=wait)

    def pause_for(self, seconds: float) -> float:
        """Give nobody a slot for ``seconds`` from now (Redis' clock); returns the pause's end, epoch seconds.

        For a downstream's 429/503 with Retry-After. A pause only ever extends: a shorter
        one than the pause in force changes nothing.
        """
        metrics.rate_limiter_paused(limiter=self.name)
        return int(_run_script(self.client, _PAUSE, 1, self.pause_key, "for", _milliseconds(seconds))) / 1000

    def pause_until(self, epoch_seconds: float) -> float:
        """Give nobody a slot until ``epoch_seconds`` (compared with Redis' clock); returns the pause's end."""
        metrics.rate_limiter_paused(limiter=self.name)
        return int(_run_script(self.client, _PAUSE, 1, self.pause_key, "until", int(epoch_seconds * 1000))) / 1000

    def paused_for(self) -> float:
        """Seconds left of the pause in force (0.0 when none)."""
        return int(_run_script(self.client, _PAUSE_LEFT, 1, self.pause_key)) / 1000

    def reset(self) -> None:
        """Forget every grant and pause of this downstream (tests and benchmarks)."""
        self.client.delete(self.log_key, self.pause_key)


def _milliseconds(seconds: float) -> int:
    return max(1, int(seconds * 1000))


def parse_retry_after(header_value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP-date.

    None when the header is absent or unreadable; a date in the past gives 0.0. An
    HTTP-date is compared with ``now`` (default: this machine's clock).
    """
    if header_value is None or not header_value.strip():
        return None
    value = header_value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000": UTC, per RFC 5322
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - (time.time() if now is None else now))
