"""A distributed lock in Redis: owner token, expiry, owner-only release and extend."""

from __future__ import annotations

import secrets
import time
from types import TracebackType

import redis

from .exceptions import LockNotAcquired
from .redis import get_redis

# Compare-and-delete / compare-and-extend: only the holder of the token may touch the key.
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('del', KEYS[1])
end
return 0
"""
_EXTEND = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""


class RedisLock:
    """``SET key token NX PX ttl``; released or extended only by the token's holder.

    The expiry means a holder that dies cannot block others for ever; a holder that runs
    longer than ``ttl`` must ``extend`` it. Usable as a context manager::

        with RedisLock(name="report:daily", ttl=300):
            ...   # raises LockNotAcquired if another holder has it
    """

    def __init__(self, *, name: str, ttl: float, client: redis.Redis | None = None):
        if ttl <= 0:
            raise ValueError(f"lock ttl must be positive, got {ttl}")
        self.name = name
        self.key = f"jobs:lock:{name}"
        self.ttl = ttl
        self.token = secrets.token_hex(16)
        self._client = client

    @property
    def client(self) -> redis.Redis:
        return self._client or get_redis()

    def acquire(self, *, blocking: bool = False, timeout: float | None = None, poll_interval: float = 0.05) -> bool:
        """Take the lock. With ``blocking``, wait up to ``timeout`` seconds (None: for ever)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if self.client.set(self.key, self.token, nx=True, px=int(self.ttl * 1000)):
                return True
            if not blocking or (deadline is not None and time.monotonic() >= deadline):
                return False
            time.sleep(poll_interval)

    def release(self) -> bool:
        """Release if we still hold it. False means it expired or someone else holds it now."""
        return bool(self.client.eval(_RELEASE, 1, self.key, self.token))

    def extend(self, *, ttl: float | None = None) -> bool:
        """Reset the expiry to ``ttl`` (default: the original) if we still hold the lock."""
        return bool(self.client.eval(_EXTEND, 1, self.key, self.token, int((ttl or self.ttl) * 1000)))

    def held(self) -> bool:
        return self.client.get(self.key) == self.token.encode()

    def __enter__(self) -> RedisLock:
        if not self.acquire():
            raise LockNotAcquired(
                f"lock {self.name!r} is held by another process; try again after it is released or expires "
                f"(at most {self.ttl:.0f}s)",
                detail={"lock": self.name},
            )
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.release()
