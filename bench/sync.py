"""A full product sync of the simulated catalog under the supplier's rate limit, vs stock Celery rate_limit.

    make bench BENCH_ARGS="sync --size 200000 --limit-per-minute 6000"

Starts the supplier simulator (its own limit: limit-per-minute, enforced per second) and
2 workers x 2 processes on the sync queue, then runs one full sync per variant on an empty
product table:
- platform: the shared `supplier-api` limiter set to the supplier's limit;
- stock: the shared limiter effectively off, Celery's rate_limit on sync.fetch_page set to
  the same limit (Celery applies it per worker).
Reports requests per minute achieved as a fraction of the limit, 429s received, products
upserted per second, and how long the run took.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.harness import BASE_DIR, ensure_bench_database, setup_django
from devtools.devstack import free_port

WORKERS, PROCESSES_PER_WORKER = 2, 2
SAFETY_PERIOD = 1.03


def main(argv: list[str]) -> int:
    exit_code = ensure_bench_database("sync", argv)
    if exit_code is not None:
        return exit_code
    parser = argparse.ArgumentParser(prog="bench sync")
    parser.add_argument("--size", type=int, default=200_000, help="products in the simulated catalog")
    parser.add_argument("--limit-per-minute", type=int, default=6000, help="the supplier's limit")
    parser.add_argument("--page-size", type=int, default=100)
    parser.add_argument("--variants", default="platform,stock")
    args = parser.parse_args(argv)
    per_second = args.limit_per_minute / 60
    setup_django()
    import json
    import urllib.request

    from django.conf import settings

    from config.celery_app import app
    from jobs.delivery.enqueue import job_enqueue
    from jobs.models import Job
    from sync.models import Product, SyncRun
    from tests.processes import CeleryProcess, database_url_for_subprocess, wait_for

    logs = Path(tempfile.mkdtemp(prefix="bench-sync-"))
    port = free_port()
    simulator = subprocess.Popen(
        [sys.executable, "-m", "sync.simulator", "--port", str(port), "--size", str(args.size),
         "--rate-limit", str(max(1, round(per_second))), "--rate-period", "1", "--page-size", str(args.page_size)],
        cwd=BASE_DIR, stdout=open(logs / "simulator.log", "wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    sim_url = f"http://127.0.0.1:{port}"

    def sim(path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        request = urllib.request.Request(sim_url + path, data=json.dumps(body).encode() if body is not None else None,
                                         method="POST" if body is not None else "GET")  # fmt: skip
        with urllib.request.urlopen(request, timeout=10) as response:
            answer: dict[str, Any] = json.loads(response.read())
            return answer

    wait_for(lambda: _answers(sim), timeout=20, message="the simulator")
    results = {}
    try:
        for variant in args.variants.split(","):
            Product.objects.all().delete()
            SyncRun.objects.all().delete()
            Job.objects.all().delete()
            env = {
                **os.environ, "DATABASE_URL": database_url_for_subprocess(), "REDIS_URL": settings.REDIS_URL,
                "LOG_LEVEL": "WARNING", "DEBUG": "0", "SUPPLIER_API_URL": sim_url, "SUPPLIER_PAGE_SIZE": str(args.page_size),
                # The limiter runs 3% under the supplier's limit: grants are spaced on Redis' clock, but
                # requests reach the supplier a few ms apart from that, and at exactly the limit that
                # jitter alone draws 429s.
                "SYNC_RUN_POLL_SECONDS": "1", "SUPPLIER_API_RATE_PERIOD": str(SAFETY_PERIOD),
                "SUPPLIER_API_RATE_LIMIT": str(max(1, round(per_second))) if variant == "platform" else "1000000",
            }  # fmt: skip
            workers = [
                CeleryProcess.worker(
                    name=f"bench-sync-{variant}-{i}",
                    queues="sync,default",
                    concurrency=PROCESSES_PER_WORKER,
                    env=env,
                    log_path=logs / f"{variant}{i}.log",
                )  # fmt: skip
                for i in range(WORKERS)
            ]
            try:
                for worker in workers:
                    worker.start()
                for worker in workers:
                    worker.wait_ready(app=app)
                if variant == "stock":
                    app.control.rate_limit("sync.fetch_page", f"{per_second:g}/s", reply=True, timeout=5)
                sim("/_sim/reset", {})
                job = job_enqueue(job_type="sync.run", payload={"full": True}).job
                started = time.perf_counter()

                def run_ended(job: Job = job) -> SyncRun | None:
                    return SyncRun.objects.filter(job_id=job.id).exclude(status="running").first()

                run = wait_for(
                    run_ended,
                    timeout=args.size / args.page_size / per_second * 6 + 300, interval=0.5, message=f"{variant} run",
                )  # fmt: skip
                elapsed = time.perf_counter() - started
                stats = sim("/_sim/stats")
                served_times = stats["request_times"]
                span = (max(served_times) - min(served_times)) if len(served_times) > 1 else elapsed
                results[variant] = {
                    "status": run.status, "pages": run.total_pages, "elapsed": elapsed,
                    "requests": stats["requests"], "served": stats["served"], "429s": stats["rate_limited"],
                    "per_minute": stats["requests"] / span * 60,
                    "served_per_minute": stats["served"] / span * 60,
                    "products_per_second": run.products_created / elapsed,
                }  # fmt: skip
            finally:
                for worker in workers:
                    worker.stop()
    finally:
        simulator.terminate()
        simulator.wait(timeout=10)
    limit = args.limit_per_minute
    print(f"catalog {args.size} products, {args.page_size}/page; supplier limit {limit}/min (enforced per second); "
          f"{WORKERS} workers x {PROCESSES_PER_WORKER} processes")  # fmt: skip
    print(f"{'variant':10} {'run':>9} {'time s':>7} {'requests':>9} {'429s':>6} {'req/min':>8} {'of limit':>9} "
          f"{'ok req/min':>10} {'products/s':>10}")  # fmt: skip
    for variant, r in results.items():
        print(f"{variant:10} {r['status']:>9} {r['elapsed']:>7.1f} {r['requests']:>9} {r['429s']:>6} "
              f"{r['per_minute']:>8.0f} {r['per_minute'] / limit:>9.2f} {r['served_per_minute']:>10.0f} "
              f"{r['products_per_second']:>10.0f}")  # fmt: skip
    return 0


def _answers(sim: Callable[[str], dict[str, Any]]) -> bool:
    try:
        sim("/_sim/stats")
        return True
    except OSError:
        return False


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
