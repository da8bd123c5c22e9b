"""Global rate limiter vs Celery's rate_limit: 4 worker processes calling one downstream as fast as they can.

    make bench BENCH_ARGS="ratelimit --limit 20 --seconds 8"

Starts 4 Celery workers of one process each (as on 4 machines), sends limit x seconds
calls of each variant to the `bench` queue, and prints, side by side: calls, the most
calls in any 1-second window, the achieved rate as a fraction of the limit, and whether
the limit was exceeded. Celery enforces rate_limit inside each worker, so 4 workers let
up to 4x the limit through; the platform's limiter is one log in Redis shared by all.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from bench.harness import ensure_bench_database, setup_django

VARIANTS = (
    ("stock", "bench.stock_limited_call", "Celery rate_limit (per worker)"),
    ("platform", "bench.platform_limited_call", "jobs.coordination.ratelimit (global)"),
)


def max_in_window(times_ms: list[int], window_ms: int = 1000) -> int:
    """The most calls in any half-open window [t, t + window_ms)."""
    times_ms, best, start = sorted(times_ms), 0, 0
    for end in range(len(times_ms)):
        while times_ms[end] - times_ms[start] >= window_ms:
            start += 1
        best = max(best, end - start + 1)
    return best


def achieved_per_second(times_ms: list[int]) -> float:
    """Calls per second over the whole seconds since the first call.

    The global limiter grants in waves (`limit` at once, then again a second later);
    dividing by the raw span would make a run that ends just after a wave look slower.
    """
    times_ms = sorted(times_ms)
    whole_seconds = max(1, (times_ms[-1] - times_ms[0]) // 1000)
    end = times_ms[0] + whole_seconds * 1000
    return sum(1 for t in times_ms if t < end) / whole_seconds


def main(argv: list[str]) -> int:
    exit_code = ensure_bench_database("ratelimit", argv)
    if exit_code is not None:
        return exit_code
    parser = argparse.ArgumentParser(prog="bench ratelimit")
    parser.add_argument("--limit", type=int, default=20, help="calls per second allowed (default 20)")
    parser.add_argument("--seconds", type=float, default=8, help="calls sent per variant = limit x seconds (default 8)")
    # One process per worker: Celery enforces rate_limit per worker instance, so separate
    # workers are what shows it multiplying. (With several processes in one worker, the
    # stock variant stalled at about one call per second after its first burst here.)
    parser.add_argument("--workers", type=int, default=4, help="worker processes (default 4)")
    args = parser.parse_args(argv)
    os.environ["BENCH_RATE_LIMIT"] = str(args.limit)
    setup_django()
    from django.conf import settings

    from bench.tasks import GRANTS_KEY, LIMITER_NAME
    from config.celery_app import app
    from jobs.coordination.ratelimit import RateLimiter
    from jobs.foundation.redis import get_redis
    from tests.processes import CeleryProcess, database_url_for_subprocess, wait_for

    calls = int(args.limit * args.seconds)
    redis = get_redis()
    grant_keys = [GRANTS_KEY.format(variant=variant) for variant, _, _ in VARIANTS]
    redis.delete("bench", *grant_keys)
    RateLimiter(name=LIMITER_NAME, limit=args.limit, period=1).reset()
    env = {**os.environ, "DATABASE_URL": database_url_for_subprocess(), "REDIS_URL": settings.REDIS_URL,
           "LOG_LEVEL": "WARNING", "BENCH_RATE_LIMIT": str(args.limit)}  # fmt: skip
    logs = Path(tempfile.mkdtemp(prefix="bench-ratelimit-"))
    workers = [
        CeleryProcess.worker(
            name=f"bench-rl-{i}",
            queues="bench",
            concurrency=1,
            env=env,
            log_path=logs / f"worker{i}.log",
            include="bench.tasks",
        )  # fmt: skip
        for i in range(args.workers)
    ]
    print(f"{args.workers} workers x 1 process, limit {args.limit}/s, {calls} calls per "
          f"variant, redis {settings.REDIS_URL}; worker logs in {logs}", flush=True)  # fmt: skip
    results: dict[str, tuple[int, int, float]] = {}
    started = time.monotonic()
    try:
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.wait_ready(app=app)
        for variant, task_name, label in VARIANTS:
            key = GRANTS_KEY.format(variant=variant)
            with app.producer_or_acquire() as producer:
                for _ in range(calls):
                    app.send_task(task_name, queue="bench", producer=producer)

            def all_granted(key: str = key) -> bool:
                return redis.llen(key) >= calls

            wait_for(all_granted, timeout=args.seconds * 4 + 60, interval=0.2,
                     message=f"{calls} {variant} calls (worker logs in {logs})")  # fmt: skip
            times = [int(t) for t in redis.lrange(key, 0, -1)]
            results[variant] = (len(times), max_in_window(times), achieved_per_second(times))
            print(f"  {label}: done", flush=True)
            time.sleep(1.1)  # the next variant's windows do not overlap this one's
    finally:
        for worker in workers:
            worker.stop()
        redis.delete("bench", *grant_keys)
    print(f"{'variant':32} {'calls':>6} {'max in any 1 s':>15} {'achieved/s':>11} {'of limit':>9}  exceeded limit?")
    for variant, _, label in VARIANTS:
        count, peak, rate = results[variant]
        print(f"{label:32} {count:>6} {peak:>15} {rate:>11.1f} {rate / args.limit:>9.2f}  "
              f"{'YES' if peak > args.limit else 'no'}")  # fmt: skip
    print(f"total {time.monotonic() - started:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
