"""The cost of metrics: tracked-job throughput with metrics on vs off, and /metrics and charts on ~1M jobs.

    make bench BENCH_ARGS="metrics --n 2000 --rounds 2"                 # throughput only
    DATABASE_URL=postgres://... make bench BENCH_ARGS="metrics --rows 1000000"   # + scrape/charts on 1M rows

Throughput: a worker (prefork, --concurrency 2, -Q default) drains N tracked no-op jobs, once
with ``JOBS_METRICS_ENABLED=true`` and its metrics port serving, once with metrics off; the
variants alternate for ``--rounds`` and the best round of each is compared (goal: on >= 0.95 x off).

Scrape (PostgreSQL, ``--rows``): fills the job table with that many rows spread over 30 days with
one ``INSERT ... SELECT generate_series`` (about 1 % failed, 0.1 % dead, 1,000 waiting), then
times ``GET /metrics`` (with the overview's gauges) and the overview's charts, and prints the
query plans (EXPLAIN ANALYZE) of the statements they run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from bench.harness import database_label, ensure_bench_database, setup_django


def main(argv: list[str]) -> int:
    exit_code = ensure_bench_database("metrics", argv)
    if exit_code is not None:
        return exit_code
    parser = argparse.ArgumentParser(prog="bench metrics")
    parser.add_argument("--n", type=int, default=2000, help="jobs per throughput variant (0: skip)")
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2, help="alternate the variants this many times")
    parser.add_argument("--rows", type=int, default=0, help="PostgreSQL: rows for the scrape timing (0: skip)")
    parser.add_argument("--explain", action="store_true", help="print the query plans of the scrape and charts")
    args = parser.parse_args(argv)
    setup_django()
    from django.conf import settings

    print(f"database: {database_label()}, redis: {settings.REDIS_URL}")
    recording_cost()
    if args.n:
        throughput(args)
    if args.rows:
        scrape_cost(args)
    return 0


def throughput(args: argparse.Namespace) -> None:
    import os

    import redis
    from django.conf import settings
    from django.db import connection

    import bench.jobtasks  # noqa: F401 - registers bench.tracked_noop here too
    from config.celery_app import app
    from jobs.delivery.enqueue import job_bulk_enqueue
    from jobs.models import Job
    from tests.jobs.metrics_helpers import free_port
    from tests.processes import CeleryProcess, database_url_for_subprocess, wait_for

    env = {**os.environ, "DATABASE_URL": database_url_for_subprocess(), "REDIS_URL": settings.REDIS_URL,
           "LOG_LEVEL": "WARNING", "DEBUG": "0"}  # fmt: skip
    log_dir = Path(tempfile.mkdtemp(prefix="bench-metrics-"))
    redis.Redis.from_url(settings.REDIS_URL).delete("default")

    def cpu_seconds(pid: int) -> float:
        """User + system CPU of the worker's main process and its pool children."""
        import psutil

        main = psutil.Process(pid)
        total = 0.0
        for process in [main, *main.children(recursive=True)]:
            times = process.cpu_times()
            total += times.user + times.system
        return total

    cpu_per_job: dict[str, list[float]] = {"on": [], "off": []}

    def drain(variant: str) -> float:
        extra = {"JOBS_METRICS_ENABLED": "true" if variant == "on" else "false",
                 "JOBS_WORKER_METRICS_PORT": str(free_port()) if variant == "on" else "0",
                 "PROMETHEUS_MULTIPROC_DIR": tempfile.mkdtemp(prefix=f"bench-metrics-{variant}-", dir=log_dir)}  # fmt: skip
        worker = CeleryProcess.worker(
            name=f"bench-metrics-{variant}", queues="default", concurrency=args.concurrency, env={**env, **extra},
            log_path=log_dir / f"{variant}.log", include="bench.jobtasks",
        )  # fmt: skip
        Job.objects.all().delete()
        worker.start()
        try:
            worker.wait_ready(app=app)
            cpu_before = cpu_seconds(worker.pid)
            started = time.perf_counter()
            job_bulk_enqueue(job_type="bench.tracked_noop", payloads=[{} for _ in range(args.n)])
            wait_for(lambda: Job.objects.filter(status="succeeded").count() >= args.n, timeout=600, interval=0.05,
                     message=f"metrics {variant} to drain")  # fmt: skip
            rate: float = args.n / (time.perf_counter() - started)
            cpu_per_job[variant].append((cpu_seconds(worker.pid) - cpu_before) / args.n)
            return rate
        finally:
            worker.stop()
            connection.close()

    results: dict[str, list[float]] = {"on": [], "off": []}
    for round_index in range(args.rounds):
        for variant in ("off", "on") if round_index % 2 == 0 else ("on", "off"):
            results[variant].append(drain(variant))
    on, off = max(results["on"]), max(results["off"])
    print(f"tracked jobs, N={args.n}, concurrency={args.concurrency}, rounds={args.rounds} (best round of each)")
    print(f"metrics off: {off:8.1f} jobs/s   (rounds: {', '.join(f'{r:.1f}' for r in results['off'])})")
    print(f"metrics on : {on:8.1f} jobs/s   (rounds: {', '.join(f'{r:.1f}' for r in results['on'])})")
    print(f"ratio on/off: {on / off:.3f}  (goal >= 0.95; wall clock, sensitive to other load on the machine)")
    cpu_on, cpu_off = (statistics.median(cpu_per_job[variant]) for variant in ("on", "off"))
    print(f"worker CPU per job (median of rounds): off {cpu_off * 1000:.2f} ms, on {cpu_on * 1000:.2f} ms "
          f"-> throughput at equal CPU on/off: {cpu_off / cpu_on:.3f}")  # fmt: skip


def recording_cost(calls: int = 20_000) -> None:
    """What the worker adds per job, measured in-process: the two recording calls of one attempt."""
    from datetime import timedelta

    from django.utils import timezone

    from jobs.foundation import metrics
    from jobs.models import Job

    now = timezone.now()
    job = Job(type="bench.tracked_noop", queue="default", enqueued_at=now - timedelta(seconds=1), started_at=now)
    started = time.perf_counter()
    for _ in range(calls):
        metrics.attempt_started(job=job)
        metrics.attempt_finished(job=job, outcome="succeeded", finished_at=now)
    per_job = (time.perf_counter() - started) / calls
    print(f"recording one attempt (queue wait + outcome + run time, multiprocess files): {per_job * 1e6:.1f} µs")


def fill_jobs(rows: int) -> None:
    """``rows`` jobs over the last 30 days in one statement, plus 1,000 waiting ones."""
    from django.db import connection

    from jobs.models import Job

    table = connection.ops.quote_name(Job._meta.db_table)
    step = 30 * 86400 / rows
    columns = ("id, type, queue, status, attempt, max_attempts, payload, payload_fingerprint, correlation_id, "
               "progress, progress_message, error_code, error_message, error_traceback, cancel_requested, worker, "
               "celery_task_id, created_at, enqueued_at, started_at, finished_at, updated_at")  # fmt: skip
    finished = f"now() - g * interval '{step:.6f} seconds'"
    # Parameters are bound with %s, so the modulo operator is written %%.
    types = "(ARRAY['exports.build_csv','emails.order_confirmation','sync.fetch_page','jobs.canary'])[1 + g %% 4]"
    queues = "(ARRAY['exports','emails','sync','default'])[1 + g %% 4]"
    status = "CASE WHEN g %% 1000 = 0 THEN 'dead' WHEN g %% 100 = 0 THEN 'failed' ELSE 'succeeded' END"
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {table} CASCADE")
        cursor.execute(f"""
            INSERT INTO {table} ({columns})
            SELECT 'bench' || g, {types}, {queues}, {status}, 1, 3, '{{}}', '', '', 100, '', '', '', '', false,
                   'bench@host', '', {finished} - interval '3 seconds', {finished} - interval '3 seconds',
                   {finished} - (g %% 7) * interval '100 milliseconds' - interval '50 milliseconds',
                   {finished}, {finished}
              FROM generate_series(1, %s) AS g
        """, [rows])  # fmt: skip  # noqa: S608
        cursor.execute(f"""
            INSERT INTO {table} ({columns})
            SELECT 'waiting' || g, 'jobs.canary', 'default', 'queued', 0, 3, '{{}}', '', '', 0, '', '', '', '',
                   false, '', '', now() - g * interval '1 second', now() - g * interval '1 second', NULL, NULL, now()
              FROM generate_series(1, 1000) AS g
        """)  # fmt: skip  # noqa: S608
        cursor.execute(f"ANALYZE {table}")


_T = TypeVar("_T")


def timed(function: Callable[[], _T], repeat: int = 5) -> tuple[float, _T]:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        value = function()
        times.append(time.perf_counter() - started)
    return statistics.median(times), value


def scrape_cost(args: argparse.Namespace) -> None:
    from datetime import timedelta

    from django.db import connection
    from django.db.models import Count
    from django.test import Client, override_settings
    from django.utils import timezone

    from jobs.models import Job
    from jobs.ops import charts
    from jobs.ops.selectors import LIVE_STATUSES

    if connection.vendor != "postgresql":
        print("scrape timing needs PostgreSQL (DATABASE_URL): skipped")
        return
    started = time.perf_counter()
    fill_jobs(args.rows)
    total = Job.objects.count()
    print(f"filled {total:,} jobs in {time.perf_counter() - started:.1f} s")
    client = Client()
    with override_settings(METRICS_TOKEN="bench", ALLOWED_HOSTS=["*"]):
        scrape_seconds, response = timed(lambda: client.get("/metrics", HTTP_AUTHORIZATION="Bearer bench"))
    assert response.status_code == 200, response.status_code
    body = response.content.decode()
    overview_line = next(line for line in body.splitlines() if line.startswith("jobs_metrics_overview_seconds"))
    print(f"GET /metrics on {total:,} jobs: median {scrape_seconds * 1000:.1f} ms of 5 ({overview_line})")
    charts_seconds, _ = timed(charts.overview_charts, repeat=3)
    print(f"overview charts (24 h) on {total:,} jobs: median {charts_seconds * 1000:.1f} ms of 3")
    if not args.explain:
        return
    since = timezone.now() - timedelta(hours=24)
    plans = {
        "charts: finished per minute": charts.finished_per_minute_query(since).explain(analyze=True),
        "overview: live jobs by state": Job.objects.filter(status__in=LIVE_STATUSES).values_list("status")
        .annotate(n=Count("id")).explain(analyze=True),
        "overview: dead-letter queue size": Job.objects.dead_letter().explain(analyze=True),
    }  # fmt: skip
    sql, params = charts.percentiles_statement(
        since, group="type", start="started_at", end="finished_at", attempts_only_first=False
    )
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN ANALYZE " + sql, params)
        plans["charts: run time percentiles"] = "\n".join(row[0] for row in cursor.fetchall())
    for title, plan in plans.items():
        print(f"\n--- {title}\n{plan}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
