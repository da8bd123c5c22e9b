"""Lateness of jobs that run later: how long after its due time each job starts, and what the scheduler costs.

    make bench BENCH_ARGS="lateness"                                  # issue 25: 100,000 jobs over 10 minutes
    make bench BENCH_ARGS="lateness --jobs 20000 --minutes 2"         # a shorter run

Enqueues ``--jobs`` tracked no-op jobs (``bench.tracked_noop``) with due times spread evenly over ``--minutes``
(each its own, starting ``--lead`` seconds ahead; PostgreSQL only), starts one housekeeping worker (the scheduler's tick, as in production) and
``--workers`` worker processes on ``default``, and sends ``jobs.publish_due`` every ``JOBS_SCHEDULER_TICK_SECONDS``
as beat does. Once every job ran it prints start - due (p50, p99, max; and publish - due), the early starts (goal 0),
and the housekeeping worker's CPU per due job (main process and pool; the database's share is not counted).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from bench.harness import database_label, ensure_bench_database, setup_django


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main(argv: list[str]) -> int:
    exit_code = ensure_bench_database("lateness", argv)
    if exit_code is not None:
        return exit_code
    parser = argparse.ArgumentParser(prog="bench lateness")
    parser.add_argument("--jobs", type=int, default=100_000, help="jobs scheduled (default 100,000)")
    parser.add_argument("--minutes", type=float, default=10, help="due times spread over this long (default 10)")
    parser.add_argument("--lead", type=float, default=20, help="seconds until the first is due (default 20)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes on default (default 2)")
    args = parser.parse_args(argv)
    setup_django()
    from django.conf import settings
    from django.db import connection
    from django.utils import timezone

    import bench.jobtasks  # noqa: F401 - declares bench.tracked_noop in this process too
    from bench.api import _tree_cpu
    from config.celery_app import app
    from jobs.delivery.enqueue import job_bulk_enqueue
    from jobs.models import Job
    from tests.processes import CeleryProcess, database_url_for_subprocess

    if connection.vendor != "postgresql":
        print("lateness needs PostgreSQL (DATABASE_URL): it spreads the due times with one UPDATE in PostgreSQL's SQL")
        return 2
    tick = float(settings.JOBS_SCHEDULER_TICK_SECONDS)
    env = {**os.environ, "DATABASE_URL": database_url_for_subprocess(), "REDIS_URL": settings.REDIS_URL,
           "LOG_LEVEL": "WARNING"}  # fmt: skip
    logs = Path(tempfile.mkdtemp(prefix="bench-lateness-"))
    span = timedelta(minutes=args.minutes)
    print(f"{args.jobs:,} jobs due over {args.minutes:g} min from {args.lead:g} s on, tick {tick:g} s, "
          f"{args.workers} worker processes, {database_label()}; logs in {logs}", flush=True)  # fmt: skip
    # Enqueued due in a day, so nothing runs while the rest is set up; then each gets its own due time.
    job_bulk_enqueue(
        job_type="bench.tracked_noop", payloads=[{}] * args.jobs, run_at=timezone.now() + timedelta(days=1)
    )
    housekeeping = CeleryProcess.worker(name="bench-hk", queues="housekeeping", concurrency=1, env=env,
                                        log_path=logs / "housekeeping.log", include="bench.jobtasks")  # fmt: skip
    workers = CeleryProcess.worker(name="bench-default", queues="default", concurrency=args.workers, env=env,
                                   log_path=logs / "default.log", include="bench.jobtasks")  # fmt: skip
    try:
        for process in (housekeeping, workers):
            process.start()
        for process in (housekeeping, workers):
            process.wait_ready(app=app)
        first_due = timezone.now() + timedelta(seconds=args.lead)
        spacing_us = span.total_seconds() * 1e6 / args.jobs
        table = connection.ops.quote_name(Job._meta.db_table)
        with connection.cursor() as cursor:
            cursor.execute(
                f"WITH n AS (SELECT id, row_number() OVER (ORDER BY id) - 1 AS i FROM {table}) "  # noqa: S608
                f"UPDATE {table} AS job SET run_at = %s::timestamptz + n.i * %s * interval '1 microsecond' "
                "FROM n WHERE job.id = n.id",
                [first_due, spacing_us],
            )
        cpu_before = _tree_cpu(housekeeping.pid)
        done = Job.objects.filter(type="bench.tracked_noop", status=Job.Status.SUCCEEDED)
        next_tick = time.monotonic()
        while done.count() < args.jobs:
            app.send_task("jobs.publish_due", queue="housekeeping")  # what beat sends every tick
            next_tick += tick
            time.sleep(max(0.0, next_tick - time.monotonic()))
            if timezone.now() > first_due + span + timedelta(minutes=5):
                raise RuntimeError(f"not finished 5 minutes after the last due time (logs in {logs})")
        cpu = _tree_cpu(housekeeping.pid) - cpu_before
    finally:
        for process in (housekeeping, workers):
            process.stop()
    rows = [
        (due, published, started)
        for due, published, started in done.values_list("run_at", "published_at", "started_at")
        if due is not None and published is not None and started is not None
    ]
    late = [(started - due).total_seconds() for due, _published, started in rows]
    publish = [(published - due).total_seconds() for due, published, _started in rows]
    early = sum(1 for value in late if value < 0)
    print(f"start - due:   p50 {statistics.median(late) * 1000:.0f} ms, p99 {percentile(late, 0.99) * 1000:.0f} ms, "
          f"max {max(late) * 1000:.0f} ms (goal p99 <= 1000 ms)")  # fmt: skip
    print(
        f"publish - due: p50 {statistics.median(publish) * 1000:.0f} ms, p99 {percentile(publish, 0.99) * 1000:.0f} ms"
    )
    print(f"early starts: {early} (goal 0)")
    print(f"housekeeping worker CPU: {cpu:.1f} s, {cpu * 1e6 / len(rows):.0f} µs per due job")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
