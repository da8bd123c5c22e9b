"""API latency under gunicorn with production settings: enqueue, status poll, list, against /healthz.

    DATABASE_URL=postgres://... make bench BENCH_ARGS="api"                  # rates 100, 300, 500 req/s, 20 s each
    make bench BENCH_ARGS="api --rates 100,300,500 --seconds 20 --endpoints 'healthz,status poll,enqueue'"
    make bench BENCH_ARGS="api --rates 300 --endpoints 'enqueue,bulk enqueue' --bulk-size 1000 --bulk-rate 2"

gunicorn (``config.settings.production``, DEBUG off, access log off, ``--workers 3`` as in
compose.yaml) listens on loopback; a separate load generator process (``bench.loadgen``)
sends each endpoint alone at a fixed arrival rate, a new connection per request as gunicorn's
sync workers want: ``GET /healthz`` (the floor), ``GET /api/jobs/{id}`` (a status poll, cycling
through 1,000 finished jobs of one user, each with an attempt), ``GET /api/jobs?page=1`` (that
user's newest 20 of 1,000), ``POST /api/jobs`` (a canary job, by a staff token, a new
``Idempotency-Key`` each), ``POST /api/jobs/bulk`` (``--bulk-size`` canary jobs per request, sent at
``--bulk-rate`` requests a second whatever the rate, once after the rates; jobs/s and CPU per job against the
single enqueue's at its highest rate). Phases alternate endpoint by endpoint within each rate. Latency
runs from each request's due time to the end of its response (no coordinated omission).
CPU ms/req is gunicorn's (master and workers, user + system) over the phase, per answered request; db ms/req
the same for the PostgreSQL backends serving gunicorn's connections (when PostgreSQL runs on this machine);
loadgen ms is the load generator's own CPU per request sent (it shares the cores with gunicorn).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.harness import BASE_DIR, database_label, ensure_bench_database, setup_django
from devtools.devstack import free_port

ENDPOINTS = ("healthz", "status poll", "list page 1", "enqueue", "bulk enqueue")
DEFAULT_ENDPOINTS = ("healthz", "status poll", "list page 1", "enqueue")
SEEDED_JOBS = 1000
ENQUEUE_LIMIT_FOR_BENCH = 1_000_000


def main(argv: list[str]) -> int:
    exit_code = ensure_bench_database("api", argv)
    if exit_code is not None:
        return exit_code
    parser = argparse.ArgumentParser(prog="bench api")
    parser.add_argument("--rates", default="100,300,500", help="requests per second, comma-separated")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--workers", type=int, default=3, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=1, help="threads per worker (more than 1: gthread workers)")
    parser.add_argument(
        "--endpoints", default=",".join(DEFAULT_ENDPOINTS), help=f"comma-separated subset of {ENDPOINTS}"
    )
    parser.add_argument("--bulk-size", type=int, default=1000, help="jobs per bulk enqueue request")
    parser.add_argument("--bulk-rate", type=float, default=2, help="bulk enqueue requests per second")
    parser.add_argument(
        "--app-tree",
        type=Path,
        default=BASE_DIR,
        help="serve another checkout's application (its .venv), e.g. a baseline worktree, with this bench",
    )
    parser.add_argument("--profile", type=Path, help="py-spy gunicorn (CPU samples) during each phase into this folder")
    args = parser.parse_args(argv)
    setup_django()

    import redis
    from django.conf import settings

    from jobs.models import Job

    user_token, staff_token, job_ids = _seed()
    client = redis.Redis.from_url(settings.REDIS_URL)
    port = free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        "SECRET_KEY": "bench-api-" + "x" * 40,
        "DEBUG": "0",
        "LOG_LEVEL": "WARNING",
        # The per-token enqueue limit (120 a minute by default) stays on, so its Redis call is measured, but
        # high enough that 300 enqueues a second are not refused.
        "JOBS_API_ENQUEUE_RATE_LIMIT": str(ENQUEUE_LIMIT_FOR_BENCH),
        # Connections kept for the whole run (compose: 60 s): a backend that ends mid-phase takes its CPU with it,
        # which db ms/req could not count. One reconnect a minute per worker is nothing per request anyway.
        "CONN_MAX_AGE": os.environ.get("CONN_MAX_AGE", "3600"),
    }
    log_dir = Path(tempfile.mkdtemp(prefix="bench-api-"))
    with open(log_dir / "gunicorn.log", "ab") as log:
        server = subprocess.Popen(
            [str(_python_of(args.app_tree)), "-m", "gunicorn", "config.wsgi:application", "--bind", f"127.0.0.1:{port}",
             "--workers", str(args.workers), "--threads", str(args.threads), "--timeout", "30",
             "--config", "python:config.gunicorn"],
            cwd=args.app_tree, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        _wait_listening(port, server, log_dir / "gunicorn.log")
        specs: dict[str, dict[str, Any]] = {
            "healthz": {"method": "GET", "paths": ["/healthz"]},
            "status poll": {
                "method": "GET", "paths": [f"/api/jobs/{job_id}" for job_id in job_ids],
                "headers": {"Authorization": f"Bearer {user_token}"},
            },
            "list page 1": {
                "method": "GET", "paths": ["/api/jobs?page=1"], "headers": {"Authorization": f"Bearer {user_token}"},
            },
            "enqueue": {
                "method": "POST", "paths": ["/api/jobs"], "unique_header": "Idempotency-Key",
                "headers": {"Authorization": f"Bearer {staff_token}", "Content-Type": "application/json"},
                "body": json.dumps({"type": "jobs.canary", "payload": {"seconds": 0}}),
            },
            "bulk enqueue": {
                "method": "POST", "paths": ["/api/jobs/bulk"],
                "headers": {"Authorization": f"Bearer {staff_token}", "Content-Type": "application/json"},
                "body": json.dumps({"jobs": [{"type": "jobs.canary", "payload": {"seconds": 0}}] * args.bulk_size}),
            },
        }  # fmt: skip
        wanted = args.endpoints.split(",")
        # Warm every gunicorn worker's connections and imports before measuring.
        for name in {"healthz", *wanted}:
            _load(
                specs[name],
                port=port,
                rate=args.bulk_rate if name == "bulk enqueue" else 50,
                seconds=1,
                log_dir=log_dir,
            )
        rows = []
        phases = [(float(value), name) for value in args.rates.split(",") for name in wanted if name != "bulk enqueue"]
        if "bulk enqueue" in wanted:
            phases.append((args.bulk_rate, "bulk enqueue"))
        for rate, name in phases:
            client.delete("default")  # enqueued canaries: no worker runs in this benchmark
            cpu_before, db_before = _tree_cpu(server.pid), _database_cpu()
            spy = (
                _start_profile(server.pid, args.profile / f"{name.replace(' ', '_')}-{rate:.0f}.txt")
                if args.profile
                else None
            )
            outcome = _load(specs[name], port=port, rate=rate, seconds=args.seconds, log_dir=log_dir)
            if spy is not None:
                spy.send_signal(signal.SIGINT)
                spy.wait(timeout=60)
            answered = max(1, len(outcome["latencies_ms"]))
            outcome["cpu_ms"] = (_tree_cpu(server.pid) - cpu_before) * 1000 / answered
            outcome["db_cpu_ms"] = _database_cpu_since(db_before) * 1000 / answered
            rows.append((rate, name, outcome))
        client.delete("default")
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()

    worker_class = f"gthread, --threads {args.threads}" if args.threads > 1 else "sync"
    print(f"application: {args.app_tree}; database: {database_label()}, redis: {settings.REDIS_URL}; gunicorn --workers {args.workers} ({worker_class}), "
          f"config.settings.production, 127.0.0.1; {args.seconds:.0f} s per endpoint and rate, endpoints one at a time")  # fmt: skip
    print(f"{'rate/s':>6} {'endpoint':12} {'sent':>6} {'achieved/s':>10} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} "
          f"{'max ms':>7} {'errors':>6} {'p50/hz':>6} {'p99/hz':>6} {'CPU ms/req':>10} {'db ms/req':>9} {'loadgen ms':>10}")  # fmt: skip
    floor = {rate: _percentiles(outcome) for rate, name, outcome in rows if name == "healthz"}
    floor[args.bulk_rate] = floor.get(args.bulk_rate, (float("nan"),) * 4)
    floor = {rate: floor.get(rate, (float("nan"),) * 4) for rate, _, _ in rows}
    verdicts = []
    for rate, name, outcome in rows:
        p50, p95, p99, top = _percentiles(outcome)
        errors = sum(outcome["errors"].values())
        hz50, _, hz99, _ = floor[rate]
        print(f"{rate:6.0f} {name:12} {outcome['sent']:6d} {outcome['sent'] / outcome['elapsed']:10.1f} {p50:7.2f} "
              f"{p95:7.2f} {p99:7.2f} {top:7.1f} {errors:6d} {p50 / hz50:6.2f} {p99 / hz99:6.2f} {outcome['cpu_ms']:10.2f} "
              f"{outcome['db_cpu_ms']:9.2f} {outcome['loadgen_cpu_ms']:10.2f}"
              + (f"  {outcome['errors']}" if errors else ""))  # fmt: skip
        if name == "status poll":
            verdicts.append(f"status poll p99 at {rate:.0f}/s = {p99 / hz99:.2f} x healthz p99 (goal <= 2)")
        if name == "enqueue" and rate == 300:
            verdicts.append(f"enqueue p99 at 300/s = {p99:.1f} ms (goal <= 15 ms)")
        if name == "enqueue":
            cpu = outcome["cpu_ms"] + outcome["db_cpu_ms"]
            verdicts.append(
                f"enqueue at {rate:.0f}/s: gunicorn + PostgreSQL CPU {cpu:.2f} ms per enqueue (goal <= 2.5)"
            )
        if errors:
            verdicts.append(f"{name} at {rate:.0f}/s: {errors} errors (goal 0)")
    verdicts.extend(_knee_and_bulk(rows, bulk_size=args.bulk_size))
    total_errors = sum(sum(outcome["errors"].values()) for _, _, outcome in rows)
    verdicts.append(f"errors in all phases: {total_errors} (goal 0)")
    print("\n".join(verdicts))
    created = Job.objects.filter(type="jobs.canary").exclude(id__in=job_ids).count()
    print(f"jobs created by the enqueue phases: {created}")
    return 0


def _python_of(tree: Path) -> Path:
    """The interpreter that serves ``tree``: its own .venv's (a baseline checkout has its own dependencies)."""
    if tree.resolve() == BASE_DIR.resolve():
        return Path(sys.executable)
    python = tree / ".venv" / "bin" / "python"
    if not python.exists():
        raise SystemExit(f"--app-tree {tree}: no {python}; run `make install` there first")
    return python


def _knee_and_bulk(rows: list[tuple[float, str, dict[str, Any]]], *, bulk_size: int) -> list[str]:
    """Where single enqueues stop keeping up (the knee), and jobs/s and CPU per job through the bulk endpoint
    against single enqueues at their highest rate in this run."""
    lines = []
    single = [(rate, outcome) for rate, name, outcome in rows if name == "enqueue"]
    kept = [rate for rate, outcome in single if _keeps_up(rate, outcome)]
    lost = [rate for rate, outcome in single if not _keeps_up(rate, outcome)]
    if single:
        lines.append(f"enqueue knee: kept up (achieved >= 99 % of the rate, p99 <= 15 ms) at {kept or 'no rate'}/s; "
                     f"not at {lost or 'none of'} the rates")  # fmt: skip
    bulk = [(rate, outcome) for rate, name, outcome in rows if name == "bulk enqueue"]
    if single and bulk:
        single_rate, single_outcome = max(single, key=lambda pair: pair[0])
        bulk_rate, bulk_outcome = bulk[0]
        single_jobs = len(single_outcome["latencies_ms"]) / single_outcome["elapsed"]
        bulk_jobs = len(bulk_outcome["latencies_ms"]) * bulk_size / bulk_outcome["elapsed"]
        single_cpu = single_outcome["cpu_ms"] + single_outcome["db_cpu_ms"]
        bulk_cpu = (bulk_outcome["cpu_ms"] + bulk_outcome["db_cpu_ms"]) / bulk_size
        lines.append(f"bulk enqueue ({bulk_size} jobs a request, {bulk_rate:g} requests/s): {bulk_jobs:,.0f} jobs/s, "
                     f"{bulk_cpu:.3f} ms of gunicorn + PostgreSQL CPU per job; single enqueue at {single_rate:.0f}/s: "
                     f"{single_jobs:,.0f} jobs/s, {single_cpu:.2f} ms per job")  # fmt: skip
        lines.append(f"bulk / single: {bulk_jobs / single_jobs:.1f}x the jobs/s offered here, "
                     f"{single_cpu / bulk_cpu:.1f}x the jobs per CPU-second (goal >= 10x)")  # fmt: skip
    return lines


def _keeps_up(rate: float, outcome: dict[str, Any]) -> bool:
    return (
        outcome["sent"] / outcome["elapsed"] >= 0.99 * rate
        and _percentiles(outcome)[2] <= 15
        and not sum(outcome["errors"].values())
    )


def _seed() -> tuple[str, str, list[str]]:
    """A user with 1,000 finished jobs (one attempt each) and a staff user; a token each."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Permission
    from django.utils import timezone

    from jobs.api.tokens import api_token_create
    from jobs.models import Job, JobAttempt
    from jobs.services import job_bulk_enqueue

    users = get_user_model()
    user = users.objects.create_user("bench-user", password="unused-bench-password")
    staff = users.objects.create_user("bench-staff", password="unused-bench-password", is_staff=True)
    # The canary is staff-only over the API: that takes the permission (jobs.core.permissions), not is_staff.
    staff.user_permissions.add(Permission.objects.get(content_type__app_label="jobs", codename="add_job"))
    results = job_bulk_enqueue(job_type="jobs.canary", payloads=[{"seconds": 0}] * SEEDED_JOBS, owner=user)
    job_ids = [result.job.id for result in results]
    now = timezone.now()
    Job.objects.filter(id__in=job_ids).update(
        status=Job.Status.SUCCEEDED, attempt=1, started_at=now, finished_at=now, progress=100,
        result={"message": "canary", "attempts": 1}, worker="bench@host",
    )  # fmt: skip
    JobAttempt.objects.bulk_create([
        JobAttempt(job_id=job_id, number=1, outcome=JobAttempt.Outcome.SUCCEEDED, started_at=now, finished_at=now,
                   duration_ms=1, worker="bench@host", celery_task_id=f"{job_id}.1")
        for job_id in job_ids
    ])  # fmt: skip
    return api_token_create(user=user, name="bench")[1], api_token_create(user=staff, name="bench")[1], job_ids


def _load(spec: dict[str, Any], *, port: int, rate: float, seconds: float, log_dir: Path) -> dict[str, Any]:
    path = log_dir / "spec.json"
    path.write_text(json.dumps({**spec, "host": "127.0.0.1", "port": port, "rate": rate, "seconds": seconds}))
    completed = subprocess.run(
        [sys.executable, "-m", "bench.loadgen", str(path)], cwd=BASE_DIR, capture_output=True, text=True, check=True
    )
    outcome: dict[str, Any] = json.loads(completed.stdout)
    return outcome


def _percentiles(outcome: dict[str, Any]) -> tuple[float, float, float, float]:
    values: list[float] = sorted(outcome["latencies_ms"])
    if not values:
        return (float("nan"),) * 4

    def at(fraction: float) -> float:
        return values[min(len(values) - 1, int(fraction * len(values)))]

    return at(0.50), at(0.95), at(0.99), values[-1]


def _start_profile(pid: int, path: Path) -> subprocess.Popen[bytes]:
    """py-spy on gunicorn's master and workers (CPU samples only), raw stacks to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    spy = subprocess.Popen(
        [str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(pid), "--subprocesses", "--format", "raw",
         "--rate", "250", "-o", str(path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    time.sleep(1.0)  # attached to every process before the phase starts
    return spy


def _tree_cpu(pid: int) -> float:
    """User + system seconds of gunicorn's master and workers."""
    import psutil

    root = psutil.Process(pid)
    total = 0.0
    for process in [root, *root.children(recursive=True)]:
        try:
            times = process.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


def _database_cpu() -> dict[int, float]:
    """User + system seconds of each PostgreSQL backend serving the bench database (gunicorn's connections), by
    pid; {} when the database is not PostgreSQL on this machine."""
    import psutil
    from django.db import connection

    if connection.vendor != "postgresql":
        return {}
    with connection.cursor() as cursor:
        cursor.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                       "AND backend_type = 'client backend' AND pid <> pg_backend_pid()")  # fmt: skip
        pids = [row[0] for row in cursor.fetchall()]
    seconds = {}
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
        except psutil.Error:
            continue
        seconds[pid] = times.user + times.system
    return seconds


def _database_cpu_since(before: dict[int, float]) -> float:
    """The backends' CPU seconds since ``before`` (a backend that started since counts whole); NaN without a
    local PostgreSQL. A backend that ended in between (gunicorn reconnects after CONN_MAX_AGE) is not counted."""
    after = _database_cpu()
    if not before and not after:
        return float("nan")
    return sum(seconds - before.get(pid, 0.0) for pid, seconds in after.items())


def _wait_listening(port: int, server: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {server.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("gunicorn did not listen within 60 s")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
