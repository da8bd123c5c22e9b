"""Tracked jobs vs bare Celery tasks: drain throughput on the same Redis, database and worker settings.

    make bench BENCH_ARGS="jobs_throughput --n 3000"

Both variants store their Celery result with django-celery-results (the project's
result backend); tracked jobs also write their Job row and attempt record. Each variant:
start a worker (prefork, --concurrency 2, -Q default), publish N messages, and time from
the first publish until all N are recorded as done. Prints both rates and their ratio.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from bench.harness import database_label, ensure_bench_database, setup_django


def main(argv: list[str]) -> int:
    exit_code = ensure_bench_database("jobs_throughput", argv)
    if exit_code is not None:
        return exit_code
    parser = argparse.ArgumentParser(prog="bench jobs_throughput")
    parser.add_argument("--n", type=int, default=3000, help="messages per variant")
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=1, help="alternate the variants this many times")
    args = parser.parse_args(argv)
    setup_django()
    import os

    import redis
    from django.conf import settings
    from django.db import connection
    from django_celery_results.models import TaskResult

    import bench.jobtasks  # noqa: F401 - registers bench.tracked_noop here too
    from config.celery_app import app
    from jobs.enqueue import job_bulk_enqueue
    from jobs.models import Job
    from tests.processes import CeleryProcess, database_url_for_subprocess, wait_for

    env = {
        **os.environ,
        "DATABASE_URL": database_url_for_subprocess(),
        "REDIS_URL": settings.REDIS_URL,
        "LOG_LEVEL": "WARNING",
        "DEBUG": "0",
    }
    log_dir = Path(tempfile.mkdtemp(prefix="bench-logs-"))
    redis.Redis.from_url(settings.REDIS_URL).delete("default")

    def drain(name: str, publish, done_count) -> float:
        worker = CeleryProcess.worker(
            name=f"bench-{name}", queues="default", concurrency=args.concurrency, env=env,
            log_path=log_dir / f"{name}.log", include="bench.jobtasks",
        )  # fmt: skip
        worker.start()
        try:
            worker.wait_ready(app=app)
            started = time.perf_counter()
            publish()
            wait_for(lambda: done_count() >= args.n, timeout=600, interval=0.05, message=f"{name} to drain")
            return args.n / (time.perf_counter() - started)
        finally:
            worker.stop()

    def publish_bare() -> None:
        with app.producer_or_acquire() as producer, producer.batch():
            for index in range(args.n):
                app.send_task("bench.bare_noop", kwargs={"index": index}, queue="default", producer=producer)

    def publish_tracked() -> None:
        job_bulk_enqueue(job_type="bench.tracked_noop", payloads=[{} for _ in range(args.n)])

    results: dict[str, list[float]] = {"bare": [], "tracked": []}
    for _ in range(args.rounds):
        TaskResult.objects.all().delete()
        Job.objects.all().delete()
        results["bare"].append(
            drain("bare", publish_bare, lambda: TaskResult.objects.filter(task_name="bench.bare_noop").count())
        )
        TaskResult.objects.all().delete()
        results["tracked"].append(
            drain("tracked", publish_tracked, lambda: Job.objects.filter(status="succeeded").count())
        )
        connection.close()
    bare, tracked = max(results["bare"]), max(results["tracked"])
    print(f"database: {database_label()}, redis: {settings.REDIS_URL}, N={args.n}, concurrency={args.concurrency}")
    print(f"bare Celery tasks : {bare:8.1f} tasks/s   (rounds: {', '.join(f'{r:.1f}' for r in results['bare'])})")
    print(f"tracked jobs      : {tracked:8.1f} jobs/s    (rounds: {', '.join(f'{r:.1f}' for r in results['tracked'])})")
    print(f"ratio tracked/bare: {tracked / bare:.2f}  (goal >= 0.80)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
