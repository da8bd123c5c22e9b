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
from collections.abc import Callable
from typing import ParamSpec, TypeVar

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
    from config.celery_app import app
    from jobs.core import publisher
    from jobs.delivery import enqueue
    from jobs.delivery.enqueue import job_bulk_enqueue
    from jobs.models import Job

    client = redis.Redis.from_url(settings.REDIS_URL)
    # Where a bulk round's time goes: the three steps that touch the database or Redis.
    stage_seconds: dict[str, float] = {}
    for module, function_name, stage in (
        (enqueue, "bulk_insert_varying", "insert rows"),
        (publisher, "publish_batch", "build and publish messages"),
        (publisher, "mark_published", "stamp published"),
    ):
        setattr(module, function_name, _timed(getattr(module, function_name), stage, stage_seconds))

    def delay_loop() -> None:
        for index in range(args.n):
            bare_noop.delay(index)

    def delay_loop_without_sent_event() -> None:
        # The project sends a task-sent event per .delay() (for Flower), a second Redis round
        # trip each; bulk publishing sends none. This baseline leaves it out too.
        app.conf.task_send_sent_event = False
        try:
            delay_loop()
        finally:
            app.conf.task_send_sent_event = True

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

    variants = (("delay loop", delay_loop), ("delay loop, no sent event", delay_loop_without_sent_event),
                ("bulk enqueue", bulk))  # fmt: skip
    timings: dict[str, list[float]] = {name: [] for name, _action in variants}
    bulk_stages: list[dict[str, float]] = []
    for _ in range(args.rounds):
        for name, action in variants:
            client.delete("default")
            empty_job_table()
            stage_seconds.clear()
            started = time.perf_counter()
            action()
            timings[name].append(time.perf_counter() - started)
            if name == "bulk enqueue":
                bulk_stages.append(dict(stage_seconds))
                rows, unpublished = Job.objects.count(), Job.objects.filter(published_at__isnull=True).count()
                if (rows, unpublished) != (args.n, 0):
                    raise SystemExit(f"bulk enqueue wrote {rows} rows of {args.n}, {unpublished} left unpublished")
            if client.llen("default") != args.n:
                raise SystemExit(f"{name} published {client.llen('default')} messages of {args.n}")
    client.delete("default")
    best = {name: min(seconds) for name, seconds in timings.items()}
    best_delay, best_plain_delay, best_bulk = (
        best["delay loop"],
        best["delay loop, no sent event"],
        best["bulk enqueue"],
    )
    stages = bulk_stages[timings["bulk enqueue"].index(best_bulk)]
    print(f"database: {database_label()}, redis: {settings.REDIS_URL}, N={args.n}, best of {args.rounds}")
    print(f".delay() loop              : {best_delay:7.3f} s  ({args.n / best_delay:7.0f} msg/s, no rows)")
    print(f".delay() loop, no sent evt : {best_plain_delay:7.3f} s  ({args.n / best_plain_delay:7.0f} msg/s, no rows)")
    print(f"job_bulk_enqueue           : {best_bulk:7.3f} s  ({args.n / best_bulk:7.0f} jobs/s, rows included)")
    rest = best_bulk - sum(stages.values())
    print("  of which                  : " + ", ".join(f"{stage} {seconds:.3f} s" for stage, seconds in stages.items())
          + f", the rest (rows built in Python, commit) {rest:.3f} s")  # fmt: skip
    print(f"speed-up bulk/.delay       : {best_delay / best_bulk:.1f}x as configured, "
          f"{best_plain_delay / best_bulk:.1f}x without task-sent events  (goal >= 5x)")  # fmt: skip
    return 0


_P = ParamSpec("_P")
_R = TypeVar("_R")


def _timed(function: Callable[_P, _R], stage: str, totals: dict[str, float]) -> Callable[_P, _R]:
    def timed(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        started = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            totals[stage] = totals.get(stage, 0.0) + time.perf_counter() - started

    return timed


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
