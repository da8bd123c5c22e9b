"""Global rate limiter vs Celery's rate_limit: 4 worker processes calling as fast as they can.

    make bench BENCH_ARGS="ratelimit --limit 20 --seconds 8"

Starts 4 Celery workers (one process each, as on 4 machines), sends limit x seconds calls
of each variant, and reports the most calls seen in any 1-second window, the achieved rate
as a fraction of the limit, and whether the limit was exceeded. Celery's rate_limit is
enforced per worker, so 4 workers send up to 4x the limit; the platform's limiter is
shared through Redis.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from bench.harness import ensure_bench_database, setup_django

WORKERS = 4


def max_in_window(times: list[float], window: float = 1.0) -> int:
    times, best, start = sorted(times), 0, 0
    for end in range(len(times)):
        while times[end] - times[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


def main(argv: list[str]) -> int:
    exit_code = ensure_bench_database("ratelimit", argv)
    if exit_code is not None:
        return exit_code
    parser = argparse.ArgumentParser(prog="bench ratelimit")
    parser.add_argument("--limit", type=int, default=20, help="calls per second allowed")
    parser.add_argument("--seconds", type=float, default=8, help="calls sent = limit x seconds")
    args = parser.parse_args(argv)
    os.environ["BENCH_RATE_LIMIT"] = str(args.limit)
    setup_django()
    from django.conf import settings

    from config.celery_app import app
    from jobs.redis import get_redis
    from tests.processes import CeleryProcess, database_url_for_subprocess, wait_for

    calls = int(args.limit * args.seconds)
    redis = get_redis()
    env = {**os.environ, "DATABASE_URL": database_url_for_subprocess(), "REDIS_URL": settings.REDIS_URL,
           "LOG_LEVEL": "WARNING", "BENCH_RATE_LIMIT": str(args.limit)}  # fmt: skip
    logs = Path(tempfile.mkdtemp(prefix="bench-ratelimit-"))
    redis.delete("bench", "bench:grants:platform", "bench:grants:stock", "jobs:ratelimit:bench-downstream:log")
    workers = [
        CeleryProcess.worker(name=f"bench-rl-{i}", queues="bench", concurrency=1, env=env,
                             log_path=logs / f"worker{i}.log", include="bench.tasks")  # fmt: skip
        for i in range(WORKERS)
    ]
    results = {}
    try:
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.wait_ready(app=app)
        for variant, task_name in (("stock", "bench.stock_limited_call"), ("platform", "bench.platform_limited_call")):
            key = f"bench:grants:{variant}"
            with app.producer_or_acquire() as producer:
                for _ in range(calls):
                    app.send_task(task_name, queue="bench", producer=producer)
            wait_for(lambda: redis.llen(key) >= calls, timeout=calls / args.limit * 4 + 60, interval=0.2,
                     message=f"{variant} calls")  # fmt: skip
            times = sorted(float(t) for t in redis.lrange(key, 0, -1))
            # A sliding window admits L calls at once, then L per second: n calls need at
            # least n/L - 1 s, so count the first window as a full second.
            rate = len(times) / (times[-1] - times[0] + 1.0)
            results[variant] = (len(times), max_in_window(times), rate)
            time.sleep(1.1)  # let the windows of the two variants not touch
    finally:
        for worker in workers:
            worker.stop()
    print(f"{WORKERS} workers x 1 process, limit {args.limit}/s, {calls} calls per variant, redis {settings.REDIS_URL}")
    print(f"{'variant':28} {'calls':>6} {'max in any 1 s':>15} {'achieved/s':>11} {'of limit':>9}  exceeded?")
    labels = {"stock": "Celery rate_limit (per worker)", "platform": "jobs.ratelimit (global)"}
    for variant in ("stock", "platform"):
        count, peak, rate = results[variant]
        print(f"{labels[variant]:28} {count:>6} {peak:>15} {rate:>11.1f} {rate / args.limit:>9.2f}  "
              f"{'YES' if peak > args.limit else 'no'}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
