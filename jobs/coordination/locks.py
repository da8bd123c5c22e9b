"""A distributed lock in Redis: owner token, expiry, owner-only release and extend."""

from __future__ import annotations

import logging
import secrets
import time
from types import TracebackType

import redis

from jobs.foundation.exceptions import LockNotAcquired
from jobs.foundation.redis import get_redis

logger = logging.getLogger("jobs.locks")

KEY_PREFIX = "jobs:lock:"

# Compare-and-delete: a holder whose lock expired and was taken by someone else must
# not delete the new holder's key, so the check and the delete happen in one script.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""
# Compare-and-extend: push the expiry out by ARGV[2] ms beyond what is left of it.
_EXTEND = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
    return 0
end
local left = redis.call('PTTL', KEYS[1])
if left < 0 then
    left = 0
end
return redis.call('PEXPIRE', KEYS[1], left + tonumber(ARGV[2]))
"""


def _milliseconds(seconds: float) -> int:
    return max(1, int(seconds * 1000))


class RedisLock:
    """``SET jobs:lock:<name> <token> NX PX <ttl>``; released or extended only by the token's holder.

    The expiry means a holder that dies cannot block others for ever; a holder that runs
    longer than ``ttl`` must ``extend`` it. Not re-entrant: a second ``acquire`` on a held
    lock returns False, even from the same object. As a context manager it does not wait::

        with RedisLock(name="report:daily", ttl=300) as lock:   # LockNotAcquired if someone holds it
            ...
            lock.extend(additional_ttl=300)
    """

    def __init__(self, *, name: str, ttl: float, client: redis.Redis | None = None) -> None:
        if ttl <= 0:
            raise ValueError(f"lock {name!r} needs a positive ttl in seconds, got {ttl}")
        self.name = name
        self.key = f"{KEY_PREFIX}{name}"
        self.ttl = ttl
        self.token = secrets.token_hex(16)
        self._client = client

    @property
    def client(self) -> redis.Redis:
        return self._client or get_redis()

    def acquire(self, *, blocking: bool = False, timeout: float | None = None, poll_interval: float = 0.05) -> bool:
        """Take the lock for ``ttl`` seconds; True if we now hold it.

        Without ``blocking`` one attempt is made. With it, retry every ``poll_interval``
        seconds for up to ``timeout`` seconds (None: until the lock is free).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if self.client.set(self.key, self.token, nx=True, px=_milliseconds(self.ttl)):
                return True
            if not blocking:
                return False
            if deadline is None:
                time.sleep(poll_interval)
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            time.sleep(min(poll_interval, remaining))

    def release(self) -> bool:
        """Release the lock if we still hold it. False: it had expired, or another owner holds it now."""
        return bool(self.client.eval(_RELEASE, 1, self.key, self.token))

    def extend(self, *, additional_ttl: float | None = None) -> bool:
        """Keep the lock ``additional_ttl`` seconds longer (default: another ``ttl``) than it has left.

        Only the holder can extend. False means we no longer hold it (it expired or was
        taken): stop the work, another process may be doing it.
        """
        extra = self.ttl if additional_ttl is None else additional_ttl
        if extra <= 0:
            raise ValueError(f"lock {self.name!r} can only be extended by a positive number of seconds, got {extra}")
        return bool(self.client.eval(_EXTEND, 1, self.key, self.token, _milliseconds(extra)))

    def held(self) -> bool:
        """Whether this object's token is the one in Redis right now."""
        return self.client.get(self.key) == self.token.encode()

    def __enter__(self) -> RedisLock:
        if not self.acquire():
            raise LockNotAcquired(
                f"could not acquire lock {self.name!r}: another owner holds it (expected it to be free); "
                f"safe to retry once it is released or expires (ttl {self.ttl:g}s)",
                detail={"lock": self.name, "ttl": self.ttl},
            )
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if not self.release():
            # The block outlived the ttl: another process may have run the same work meanwhile.
            logger.warning("lock %r expired before the block holding it ended (ttl %gs)", self.name, self.ttl)


# Namespace of the platform's PostgreSQL advisory locks (the first key of the two-key form), so they
# never collide with another application's advisory locks in the same database.
ADVISORY_LOCK_NAMESPACE = 0x6A6F6273  # "jobs"


def transaction_lock(name: str) -> None:
    """Hold a database lock on ``name`` until the current transaction ends (call inside ``atomic``).

    PostgreSQL: a transaction-scoped advisory lock on the name's hash. SQLite: nothing to do, its
    transactions here begin IMMEDIATE (settings), so writers already run one at a time. Unlike a
    Redis lock, it is released exactly when the rows written under it become visible.
    """
    from django.db import connection

    if not connection.in_atomic_block:
        raise RuntimeError("transaction_lock() needs an open transaction (use it inside transaction.atomic())")
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", [ADVISORY_LOCK_NAMESPACE, name])
