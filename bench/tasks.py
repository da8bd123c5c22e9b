"""Celery tasks used only by the rate-limit benchmark (workers load them with --include bench.tasks).

Each stands for one call to a downstream and records when it was let through in a Redis
list, as integer milliseconds, for bench/ratelimit.py to check.
"""

from __future__ import annotations

import os
import time

from celery import shared_task

from jobs.coordination.ratelimit import RateLimiter
from jobs.foundation.redis import get_redis

# Read when the worker imports this module: the benchmark passes it in the environment.
LIMIT = int(os.environ.get("BENCH_RATE_LIMIT", "20"))
LIMITER_NAME = "bench-downstream"
GRANTS_KEY = "bench:grants:{variant}"


@shared_task(name="bench.platform_limited_call", ignore_result=True)  # type: ignore[untyped-decorator]  # celery has no types
def platform_limited_call() -> None:
    """One call through the platform's global limiter (all workers share its Redis log)."""
    limiter = RateLimiter(name=LIMITER_NAME, limit=LIMIT, period=1)
    limiter.acquire(max_wait=60)
    assert limiter.last_granted_at is not None  # set by every acquire that returns
    # The grant's own time on Redis' clock: the moment the limiter guarantees is spaced.
    get_redis().rpush(GRANTS_KEY.format(variant="platform"), round(limiter.last_granted_at * 1000))


@shared_task(name="bench.stock_limited_call", ignore_result=True, rate_limit=f"{LIMIT}/s")  # type: ignore[untyped-decorator]  # celery has no types
def stock_limited_call() -> None:
    """The same call, limited only by Celery's own rate_limit (enforced by each worker on its own)."""
    get_redis().rpush(GRANTS_KEY.format(variant="stock"), round(time.time() * 1000))
