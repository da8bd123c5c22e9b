"""Celery tasks used only by the rate-limit benchmark (workers load them with --include bench.tasks)."""

import os
import time

from celery import shared_task

from jobs.ratelimit import RateLimiter
from jobs.redis import get_redis

LIMIT = int(os.environ.get("BENCH_RATE_LIMIT", "20"))
GRANTS_KEY = "bench:grants:{variant}"


@shared_task(name="bench.platform_limited_call", ignore_result=True)
def platform_limited_call() -> None:
    """One call to a downstream, through the platform's global limiter."""
    grant = RateLimiter(name="bench-downstream", limit=LIMIT, period=1).acquire(max_wait=30)
    # The grant's own time (Redis' clock): what the limiter guarantees is spaced.
    get_redis().rpush(GRANTS_KEY.format(variant="platform"), grant.server_time)


@shared_task(name="bench.stock_limited_call", ignore_result=True, rate_limit=f"{LIMIT}/s")
def stock_limited_call() -> None:
    """The same call, limited by Celery's own per-worker rate_limit."""
    get_redis().rpush(GRANTS_KEY.format(variant="stock"), time.time())
