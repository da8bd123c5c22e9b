"""Bulk enqueue (job rows + pipelined publish) vs a loop of Celery .delay() calls, same N, same Redis.

    make bench BENCH_ARGS="bulk_enqueue --n 5000"

The .delay() loop publishes bare messages and writes nothing to the database; the bulk
path also inserts N job rows (one multi-row INSERT per 1,000) and marks them published.
No worker runs: this measures the enqueue side only. Goal: bulk at least 5x faster.
"""

from __future__ import annotations

import argparse
import sys
import time

from bench.harness import database_label, ensure_bench_database, setup_django


def main(argv: list[str]) -> int:
    exit_code = ensure_bench_database("bulk_enqueue", argv)
    if exit_code is not None:
        return exit_code
    parser = argparse.ArgumentParser(prog="bench bulk_enqueue")
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3, help="best of this many runs each")
    args = parser.parse_args(argv)
    setup_django()
    import redis
    from django.conf import settings
    from django.db import connection, transaction

    from bench.jobtasks import bare_noop
    from jobs.models import Job
    from jobs.services import job_bulk_enqueue

    client = redis.Redis.from_url(settings.REDIS_URL)

    def delay_loop() -> None:
        for index in range(args.n):
            bare_noop.delay(index)

    def bulk() -> None:
        with transaction.atomic():
            job_bulk_enqueue(job_type="bench.tracked_noop", payloads=[{"index": i} for i in range(args.n)])

    def empty_job_table() -> None:
        # Each round starts from the same empty table. A DELETE would leave dead index entries
        # behind (autovacuum has no time to run between rounds) and slow every later round.
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(f"TRUNCATE {Job._meta.db_table} CASCADE")
        else:
            Job.objects.all().delete()

    timings: dict[str, list[float]] = {"delay loop": [], "bulk enqueue": []}
    for _ in range(args.rounds):
        for name, action in (("delay loop", delay_loop), ("bulk enqueue", bulk)):
            client.delete("default")
            empty_job_table()
            started = time.perf_counter()
            action()
            timings[name].append(time.perf_counter() - started)
            assert client.llen("default") == args.n, f"{name} published {client.llen('default')} of {args.n}"
    if Job.objects.filter(published_at__isnull=True).exists():
        raise SystemExit("bulk enqueue left rows unpublished")
    client.delete("default")
    best_delay, best_bulk = min(timings["delay loop"]), min(timings["bulk enqueue"])
    print(f"database: {database_label()}, redis: {settings.REDIS_URL}, N={args.n}, best of {args.rounds}")
    print(f".delay() loop        : {best_delay:7.3f} s  ({args.n / best_delay:9.0f} msg/s, no rows)")
    print(f"job_bulk_enqueue     : {best_bulk:7.3f} s  ({args.n / best_bulk:9.0f} jobs/s, rows included)")
    print(f"speed-up bulk/.delay : {best_delay / best_bulk:.1f}x  (goal >= 5x)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
