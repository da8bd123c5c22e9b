"""Tracked jobs against stock Celery: drain rate and worker CPU per task, interleaved in one run.

    make bench BENCH_ARGS="jobs_throughput --n 2000 --rounds 3"
    make bench BENCH_ARGS="jobs_throughput --n 500 --count"          # SQL statements and Redis commands per task
    make bench BENCH_ARGS="jobs_throughput --n 3000 --profile var/profile --variants tracked"

Variants (all no-op tasks, one worker, prefork ``--concurrency 2``, same Redis and database):

- ``celery``: stock Celery defaults, no result backend (``bench.stockapp`` on
  ``bench.stock_settings``, a stock Django project's settings: never this project's);
- ``results``: stock Celery with django-celery-results on Django's defaults (``CONN_MAX_AGE = 0``,
  no ``CELERY_DB_REUSE_MAX``: a new database connection per task);
- ``results_tuned``: the same with ``CELERY_DB_REUSE_MAX``, which keeps the worker's connection;
- ``results_late``: the tuned one with ``acks_late`` and prefetch multiplier 1;
- ``project bare``: a plain Celery task on the project's own Celery settings;
- ``tracked``: a tracked job (``@job_type``), enqueued with ``job_bulk_enqueue``;
- ``tracked_compose``: the same on a worker configured as compose.yaml's ``worker-default``
  (``--prefetch-multiplier 4``).

Method, the same for every variant: start the worker on an empty queue, put all N messages
on the broker, then tell the worker to consume them (``add_consumer``). The drain time runs
from the first task's start to the last task's finish, as recorded by ``bench.drainprobe``
inside the worker (one pipelined Redis round trip per task in every variant). Worker CPU is
the user + system time of the worker's whole process tree over the drain (psutil); "servers" is
that of every PostgreSQL and Redis server process on the machine (other clients' work included).
A tracked drain ends when the database shows every job succeeded (successes are written behind). Variants
alternate within each round and the order rotates between rounds; the best round counts.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median
from typing import Any

from bench.harness import BASE_DIR, database_label, ensure_bench_database, setup_django


@dataclass(frozen=True)
class Variant:
    key: str
    label: str
    app: str  # the -A argument
    include: str = ""
    env: dict[str, str] = field(default_factory=dict)
    long_label: str = ""  # in the ratio lines, where the row above it is not there to read

    @property
    def name(self) -> str:
        return self.long_label or self.label.strip()


VARIANTS = (
    Variant("celery", "stock Celery, defaults, no results", "bench.stockapp", env={"BENCH_STOCK_VARIANT": "defaults"}),
    Variant(
        "results",
        "stock Celery + django-celery-results",
        "bench.stockapp",
        env={"BENCH_STOCK_VARIANT": "results"},
        long_label="stock Celery + django-celery-results (Django's defaults)",
    ),
    Variant(
        "results_tuned",
        "  tuned: + CELERY_DB_REUSE_MAX",
        "bench.stockapp",
        env={"BENCH_STOCK_VARIANT": "results_tuned"},
        long_label="stock Celery + django-celery-results, tuned (CELERY_DB_REUSE_MAX)",
    ),
    Variant(
        "results_late",
        "  tuned + acks_late + prefetch 1",
        "bench.stockapp",
        env={"BENCH_STOCK_VARIANT": "results_late"},
        long_label="stock Celery + django-celery-results, tuned, acks_late, prefetch 1",
    ),
    Variant("bare", "project settings, plain task", "config", include="bench.jobtasks,bench.drainprobe"),
    Variant("tracked", "project tracked jobs", "config", include="bench.jobtasks,bench.drainprobe"),
    # compose.yaml's worker-default passes --prefetch-multiplier 4 (its queue holds short jobs).
    Variant(
        "tracked_compose",
        "tracked, as compose's default worker",
        "config",
        include="bench.jobtasks,bench.drainprobe",
        env={"CELERY_WORKER_PREFETCH_MULTIPLIER": "4"},
    ),
)
BY_KEY = {variant.key: variant for variant in VARIANTS}
STOCK = tuple(variant.key for variant in VARIANTS if variant.app == "bench.stockapp")
QUEUE = "default"
IDLE_QUEUE = "bench-idle"


@dataclass
class Drain:
    rate: float  # tasks per second, first start to last finish
    cpu_ms_per_task: float  # worker process tree, user + system
    server_cpu_ms_per_task: float = 0.0  # every PostgreSQL and Redis server process on the machine
    sql: Counter[str] = field(default_factory=Counter)
    redis: Counter[str] = field(default_factory=Counter)
    transactions: int | None = None


def main(argv: list[str]) -> int:
    exit_code = ensure_bench_database("jobs_throughput", argv)
    if exit_code is not None:
        return exit_code
    parser = argparse.ArgumentParser(prog="bench jobs_throughput")
    parser.add_argument("--n", type=int, default=2000, help="messages per variant and round")
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the best round counts")
    parser.add_argument("--variants", default=",".join(BY_KEY), help=f"comma-separated subset of {','.join(BY_KEY)}")
    parser.add_argument("--count", action="store_true", help="count SQL statements and Redis commands per task")
    parser.add_argument("--profile", type=Path, help="py-spy each variant's worker into this folder (one round)")
    parser.add_argument(
        "--worker-env", action="append", default=[], metavar="NAME=VALUE",
        help="extra environment for the project's workers (bare, tracked), e.g. CELERY_WORKER_PREFETCH_MULTIPLIER=4",
    )  # fmt: skip
    parser.add_argument(
        "--tracked-variant", action="append", default=[], metavar="LABEL:NAME=VALUE[,NAME=VALUE]",
        help="one more tracked variant whose worker gets this environment, e.g. events:CELERY_WORKER_SEND_TASK_EVENTS=1",
    )  # fmt: skip
    args = parser.parse_args(argv)
    variants = [BY_KEY[key] for key in args.variants.split(",")]
    for spec in args.tracked_variant:
        label, _, assignments = spec.partition(":")
        extra = dict(item.split("=", 1) for item in assignments.split(",") if item)
        tracked = BY_KEY["tracked"]
        variant = Variant(f"tracked-{label}", f"tracked, {label}", tracked.app, include=tracked.include, env=extra)
        BY_KEY[variant.key] = variant
        variants.append(variant)
    setup_django()

    import psutil
    import redis
    from django.conf import settings
    from django.db import connection

    import bench.jobtasks  # noqa: F401 - registers bench.tracked_noop here too
    from bench.drainprobe import DONE_KEY, FIRST_KEY, LAST_KEY, PREFIX, SQL_KEY
    from config.celery_app import app
    from jobs.core.publisher import publish_batch
    from jobs.delivery.enqueue import job_bulk_enqueue
    from jobs.models import Job

    client = redis.Redis.from_url(settings.REDIS_URL)
    project_env = dict(item.split("=", 1) for item in args.worker_env)
    base_env = {
        **os.environ,
        "DATABASE_URL": os.environ["DATABASE_URL"],
        "REDIS_URL": settings.REDIS_URL,
        "BENCH_PROBE_REDIS_URL": settings.REDIS_URL,
        "LOG_LEVEL": "WARNING",
        "DEBUG": "0",
        "BENCH_COUNT_SQL": "1" if args.count else "0",
    }
    log_dir = Path(tempfile.mkdtemp(prefix="bench-logs-"))
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)

    def reset() -> None:
        client.delete(QUEUE, IDLE_QUEUE, *client.keys(PREFIX + "*"))
        tables = ("django_celery_results_taskresult", "jobs_jobattempt", "jobs_joblogline", "jobs_job")
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute(f"TRUNCATE {', '.join(tables)}")
            else:
                for table in tables:
                    cursor.execute(f"DELETE FROM {table}")

    def publish(variant: Variant) -> None:
        if variant.key.startswith("tracked"):
            job_bulk_enqueue(job_type="bench.tracked_noop", payloads=[{} for _ in range(args.n)])
            return
        task = "bench.bare_noop" if variant.key == "bare" else "bench.stock_noop"
        publish_batch(app, [
            {"task": task, "queue": QUEUE, "task_id": f"bench-{index}", "kwargs": {"index": index}, "headers": {}}
            for index in range(args.n)
        ])  # fmt: skip

    def transactions_committed() -> int | None:
        if connection.vendor != "postgresql":
            return None
        with connection.cursor() as cursor:
            cursor.execute("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")
            committed: int = cursor.fetchone()[0]
            return committed

    def drain(variant: Variant, *, profile: Path | None) -> Drain:
        reset()
        name = f"bench-{variant.key}-{os.getpid()}"
        node = f"{name}@{socket.gethostname()}"
        argv = [
            sys.executable, "-m", "celery", "-A", variant.app, "worker", "-Q", IDLE_QUEUE, "-P", "prefork",
            "--concurrency", str(args.concurrency), "-n", f"{name}@%h", "--without-gossip", "--without-mingle",
            "-l", "warning",
        ]  # fmt: skip
        if variant.include:
            argv += ["--include", variant.include]
        env = {**base_env, **(project_env if variant.app == "config" else {}), **variant.env}
        with open(log_dir / f"{variant.key}.log", "ab") as log:
            worker = subprocess.Popen(argv, cwd=BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT,
                                      start_new_session=True)  # fmt: skip
        spy = None
        xact_before = None
        try:
            _wait(lambda: worker.poll() is not None or app.control.ping(destination=[node], timeout=0.5),
                  timeout=90, what=f"{variant.key} worker to start")  # fmt: skip
            if worker.poll() is not None:
                raise RuntimeError(f"{variant.key} worker exited: see {log_dir / (variant.key + '.log')}")
            publish(variant)
            if client.llen(QUEUE) != args.n:
                raise RuntimeError(f"{variant.key}: expected {args.n} messages on {QUEUE}, found {client.llen(QUEUE)}")
            tree = [psutil.Process(worker.pid), *psutil.Process(worker.pid).children(recursive=True)]
            cpu_before = sum(_cpu(process) for process in tree)
            server_before = _server_cpu()
            xact_before = transactions_committed() if args.count else None
            monitor = _RedisMonitor(settings.REDIS_URL) if args.count else None
            if profile is not None:
                spy = subprocess.Popen(
                    [str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(worker.pid),
                     "--subprocesses", "--format", "raw", "--rate", "250", "-o", str(profile / f"{variant.key}.txt")],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                )  # fmt: skip
                time.sleep(1.0)  # py-spy attaches to every process of the tree
            app.control.add_consumer(QUEUE, destination=[node], reply=True, timeout=5)
            _wait(lambda: int(client.get(DONE_KEY) or 0) >= args.n, timeout=900, what=f"{variant.key} to drain",
                  poll=0.005)  # fmt: skip
            first, last = _float(client.get(FIRST_KEY)), _float(client.get(LAST_KEY))
            if variant.key.startswith("tracked"):
                # A success may be written behind (JOBS_SUCCESS_BATCH_MS): the drain ends when the
                # database shows every job succeeded, not when the last task returned.
                _wait(lambda: Job.objects.filter(status="succeeded").count() == args.n, timeout=60,
                      what="every tracked job to read succeeded", poll=0.005)  # fmt: skip
                last = max(last, time.time())
            cpu = sum(_cpu(process) for process in tree)
            server_cpu = _server_cpu() - server_before
            result = Drain(rate=args.n / (last - first), cpu_ms_per_task=(cpu - cpu_before) * 1000 / args.n,
                           server_cpu_ms_per_task=server_cpu * 1000 / args.n)  # fmt: skip
            if monitor is not None:
                result.redis = monitor.stop()
                result.sql = Counter({_text(k): int(v) for k, v in client.hgetall(SQL_KEY).items()})
        finally:
            if spy is not None:
                spy.send_signal(signal.SIGINT)
                spy.wait(timeout=60)
            os.killpg(worker.pid, signal.SIGTERM)
            try:
                worker.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)
                worker.wait()
            connection.close()
        if xact_before is not None:
            # A backend reports its commit count when its connection closes (the worker has stopped).
            time.sleep(0.5)
            result.transactions = (transactions_committed() or 0) - xact_before
        return result

    results: dict[str, list[Drain]] = {variant.key: [] for variant in variants}
    rounds = 1 if (args.profile or args.count) else args.rounds
    for round_index in range(rounds):
        shift = round_index % len(variants)
        for variant in variants[shift:] + variants[:shift]:
            results[variant.key].append(drain(variant, profile=args.profile))
    reset()

    print(f"database: {database_label()}, redis: {settings.REDIS_URL}, N={args.n}, "
          f"prefork concurrency={args.concurrency}, rounds={rounds} (interleaved, best counts)")  # fmt: skip
    if project_env:
        print(f"project workers' extra environment: {project_env}")
    if args.profile:
        print(f"py-spy was sampling every worker (figures below are slowed by it); raw stacks in {args.profile}/")
    best = {key: max(drains, key=lambda drain: drain.rate) for key, drains in results.items()}
    header = f"{'variant':40} {'tasks/s':>8} {'median':>8} {'CPU ms/task':>11} {'servers':>7}"
    baselines = [key for key in STOCK if key in best]
    header += "".join(f" {'/' + key:>14}" for key in baselines)
    print(header)
    for variant in variants:
        fastest = best[variant.key]
        line = f"{variant.label:40} {fastest.rate:8.1f} {median(d.rate for d in results[variant.key]):8.1f}"
        line += f" {fastest.cpu_ms_per_task:11.2f} {fastest.server_cpu_ms_per_task:7.2f}"
        line += "".join(f" {fastest.rate / best[key].rate:14.2f}" for key in baselines)
        print(line)
    medians = {key: median(drain.rate for drain in drains) for key, drains in results.items()}
    for tracked_key in ("tracked", "tracked_compose"):
        if tracked_key not in best:
            continue
        for key, goal in (("results", 0.8), ("results_tuned", 0.8), ("celery", 0.5)):
            if key in best:
                ratio, of_medians = best[tracked_key].rate / best[key].rate, medians[tracked_key] / medians[key]
                print(f"{BY_KEY[tracked_key].name} / {BY_KEY[key].name}: {ratio:.2f} best, "
                      f"{of_medians:.2f} median  (goal >= {goal})")  # fmt: skip
    if args.count:
        print("\nper task: SQL statements sent by pool processes; transactions committed in the bench database")
        print("(read-only ones too); Redis commands in this db (the probe's own excluded)")
        for variant in variants:
            fastest = best[variant.key]
            sql = sum(fastest.sql.values()) / args.n
            commands = sum(fastest.redis.values()) / args.n
            xact = f"{fastest.transactions / args.n:.2f}" if fastest.transactions is not None else "n/a"
            print(f"  {variant.label:40} SQL {sql:5.2f}  transactions {xact:>5}  Redis {commands:5.2f}")
            print(f"      SQL:   {_per_task(fastest.sql, args.n)}")
            print(f"      Redis: {_per_task(fastest.redis, args.n)}")
    if args.profile:
        for variant in variants:
            _summarize_profile(args.profile / f"{variant.key}.txt", variant.label)
    return 0


def _cpu(process: Any) -> float:
    import psutil

    try:
        times = process.cpu_times()
    except psutil.Error:  # the process ended: its time is lost either way
        return 0.0
    seconds: float = times.user + times.system
    return seconds


def _server_cpu() -> float:
    """CPU seconds used so far by every PostgreSQL and Redis server process (other clients' work included)."""
    import psutil

    total = 0.0
    for process in psutil.process_iter(["name"]):
        name = process.info["name"] or ""
        if name.startswith(("postgres", "redis-server")):
            total += _cpu(process)
    return total


def _float(value: bytes | str | None) -> float:
    """A time the drain probe wrote to Redis."""
    if value is None:
        raise RuntimeError("the drain probe wrote no time: did any task run?")
    return float(value)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _wait(condition: Callable[[], object], *, timeout: float, what: str, poll: float = 0.02) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(poll)


def _per_task(counter: Counter[str], n: int) -> str:
    return ", ".join(f"{kind} {count / n:.2f}" for kind, count in counter.most_common() if count / n >= 0.01)


class _RedisMonitor:
    """Counts the commands sent to this benchmark's Redis database while it runs (MONITOR)."""

    def __init__(self, url: str):
        import redis

        self.url = url
        self.db = redis.Redis.from_url(url).connection_pool.connection_kwargs.get("db", 0)
        self.counts: Counter[str] = Counter()
        self._stopping = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        self._ready.wait(5)

    def _run(self) -> None:
        import redis

        with redis.Redis.from_url(self.url).monitor() as monitor:  # type: ignore[no-untyped-call]  # redis-py leaves monitor() unannotated
            self._ready.set()
            for entry in monitor.listen():
                if self._stopping.is_set():
                    return
                if int(entry.get("db", -1)) != self.db:
                    continue
                words = entry["command"].split()
                if not words or (len(words) > 1 and words[1].startswith("bench:")):
                    continue
                self.counts[words[0].upper()] += 1

    def stop(self) -> Counter[str]:
        import redis

        self._stopping.set()
        redis.Redis.from_url(self.url).ping()  # wakes the listener
        self._thread.join(10)
        return self.counts


PROFILE_ANCHORS = {
    "pool process": "Worker.workloop (billiard/pool.py",
    "main process": "asynloop (celery/worker/loops.py",
}


def _summarize_profile(path: Path, label: str, top: int = 18) -> None:
    """Inclusive share of wall-clock samples (py-spy --idle) per function, below the pool
    processes' work loop and below the main process' event loop."""
    if not path.exists():
        print(f"\nno profile for {label} ({path} missing)")
        return
    inclusive: dict[str, Counter[str]] = {role: Counter() for role in PROFILE_ANCHORS}
    totals: Counter[str] = Counter()
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        for role, anchor in PROFILE_ANCHORS.items():
            index = next((i for i, frame in enumerate(frames) if frame.startswith(anchor)), None)
            if index is None:
                continue
            samples = int(count)
            totals[role] += samples
            names = {frame.rsplit(":", 1)[0] + ")" if frame.endswith(")") else frame for frame in frames[index + 1 :]}
            for name in names:
                inclusive[role][name] += samples
            break
    for role, counter in inclusive.items():
        if not totals[role]:
            continue
        print(f"\nprofile of {label}, {role}es: {totals[role]} samples (wall clock, idle included);")
        print("inclusive share of the top functions below the loop:")
        for name, samples in counter.most_common(top):
            print(f"  {100 * samples / totals[role]:5.1f}%  {name}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
