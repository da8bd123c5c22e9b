"""The chaos drills: real worker processes, a Redis of the suite's own, the suite's own database.

Each drill starts its own workers (and a housekeeping worker), enqueues ``chaos.work`` jobs,
does its damage, then plays beat: every second it sends the reaper and the relay to the
housekeeping queue, until every job has ended or the settle deadline passes. The count comes
from the executions file the job bodies append to (see ``jobtypes``), not from the job tables.
"""

from __future__ import annotations

import os
import random
import signal
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict, Unpack

import psutil

if TYPE_CHECKING:
    from celery import Celery  # no types: Any to mypy

    from devtools.devstack import EmbeddedRedis
    from tests.processes import CeleryProcess

# After the database drop, some job must succeed again within this many seconds, by itself.
RESUME_WITHIN_SECONDS = 10

# Every drill's jobs, whatever their outcome, must end: these are the final statuses.
FINAL = ("succeeded", "failed", "dead", "cancelled")

# The platform settings of a drill, scaled down from production so a drill settles in seconds:
# a 3 s attempt lease renewed every second (the driver ticks the reaper every second), the relay's
# republish delay and grace, a job type time limit of 20 s (which no rescue waits for: leases do).
DRILL_SETTINGS = {
    "JOBS_LEASE_SECONDS": "3",
    "JOBS_HEARTBEAT_SECONDS": "1",
    "JOBS_REPUBLISH_AFTER_SECONDS": "5",
    "JOBS_RELAY_GRACE_SECONDS": "1",
    "CHAOS_TIME_LIMIT": "20",
    "LOG_LEVEL": "WARNING",
}


@dataclass
class DrillResult:
    drill: str
    jobs: int
    succeeded: int = 0
    dead: int = 0
    failed: int = 0
    stuck: int = 0
    # Jobs whose body started more than once, and how many of those only after every earlier
    # run was killed mid-body (its process SIGKILLed by the drill before the body recorded its
    # end): the only double runs the issue accepts.
    run_twice: int = 0
    run_twice_after_kill: int = 0
    # Jobs that vanished, or say succeeded without any body having finished.
    lost: int = 0
    settle_seconds: float | None = None
    # False when work did not resume by itself after the drill's fault (the database drop).
    resumed: bool = True
    notes: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """The issue's "done when": nothing lost, nothing stuck, no body twice unless killed mid-body, work resumed."""
        return (
            self.lost == 0
            and self.stuck == 0
            and self.settle_seconds is not None
            and self.run_twice == self.run_twice_after_kill
            and self.resumed
        )

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


class ResultExtras(TypedDict, total=False):
    """What a drill may add to its DrillResult."""

    resumed: bool
    notes: str


class Platform:
    """Workers, the suite's Redis and the executions file of one drill."""

    def __init__(
        self, *, name: str, redis_server: EmbeddedRedis, workdir: Path, env: dict[str, str], app: Celery
    ) -> None:
        from tests.processes import CeleryProcess

        self._celery_process = CeleryProcess
        self.name = name
        self.redis = redis_server
        self.app = app
        self.workdir = workdir
        self.executions = workdir / f"{name}.executions"
        self.executions.unlink(missing_ok=True)
        self.env = {**env, **DRILL_SETTINGS, "REDIS_URL": redis_server.url, "CHAOS_EXECUTIONS": str(self.executions)}
        self.workers: dict[str, CeleryProcess] = {}
        self.killed_pids: set[int] = set()
        self.failed_ticks = 0
        self.last_tick_error = ""
        self.started_at = time.monotonic()

    # -- processes ---------------------------------------------------------------------------

    def start_worker(self, name: str, *, queues: str = "default", concurrency: int = 2) -> CeleryProcess:
        worker: CeleryProcess = self._celery_process.worker(
            name=f"{self.name}-{name}", queues=queues, concurrency=concurrency, env=self.env,
            log_path=self.workdir / f"{self.name}-{name}.log", include="bench.chaos.jobtypes",
        )  # fmt: skip
        # Registered before it is ready: a drill that fails while it starts still stops it.
        self.workers[name] = worker
        worker.start()
        worker.wait_ready(app=self.app, timeout=90)
        return worker

    def pool_children(self, name: str) -> list[int]:
        try:
            return [child.pid for child in psutil.Process(self.workers[name].pid).children()]
        except psutil.Error:
            return []

    def kill_child(self, name: str) -> int | None:
        """SIGKILL one pool process of worker ``name`` (its main process stays)."""
        children = self.pool_children(name)
        if not children:
            return None
        pid = random.choice(children)
        self.killed_pids.add(pid)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return None
        return pid

    def kill_main(self, name: str, *, restart: bool = True) -> None:
        """SIGKILL worker ``name``'s whole process group, then start it again under the same name
        (as a container restart would)."""
        worker = self.workers[name]
        self.killed_pids.update([worker.pid, *self.pool_children(name)])
        worker.kill_group(signal.SIGKILL)
        assert worker.process is not None  # every worker in self.workers was started
        worker.process.wait()
        if restart:
            self.start_worker(name, concurrency=int(worker.argv[worker.argv.index("--concurrency") + 1]))

    def restart_redis(self, *, stopped: bool = False) -> None:
        """Start the suite's Redis again on its port (stopping it first unless ``stopped``)."""
        if not stopped:
            self.redis.stop()
        self.redis.start()
        wait_redis_ready(self.redis.url)
        reset_broker_connections(self.app)

    def stop(self) -> None:
        for worker in self.workers.values():
            worker.stop(timeout=30)
        self.workers.clear()

    # -- beat's part: the reaper and the relay, on the housekeeping queue ------------------------

    def tick(self) -> None:
        for task in ("jobs.rescue_orphans", "jobs.relay_unpublished"):
            try:
                self.app.send_task(task, queue="housekeeping", retry=False)
            except Exception as exc:  # noqa: BLE001 - the broker is down in some drills: the next tick tries again
                self.failed_ticks += 1
                self.last_tick_error = f"{exc.__class__.__name__}: {exc}"

    def settle(self, job_ids: list[str], *, deadline_seconds: float, since: float | None = None) -> float | None:
        """Tick every second until every job has ended; seconds from ``since`` (or the drill's start)."""
        from jobs.models import Job

        since = self.started_at if since is None else since
        deadline = time.monotonic() + deadline_seconds
        while time.monotonic() < deadline:
            self.tick()
            if Job.objects.filter(id__in=job_ids, status__in=FINAL).count() == len(job_ids):
                return round(time.monotonic() - since, 1)
            time.sleep(1)
        return None

    # -- counting --------------------------------------------------------------------------------

    def result(
        self,
        drill: str,
        job_ids: list[str],
        settle_seconds: float | None,
        *,
        details_extra: dict[str, Any] | None = None,
        **extra: Unpack[ResultExtras],
    ) -> DrillResult:
        from jobs.models import Job

        starts: dict[str, list[tuple[float, int, str]]] = {}
        ends: set[tuple[str, str, int]] = set()  # (job id, attempt, pid) of every body that finished
        if self.executions.exists():
            for line in self.executions.read_text().splitlines():
                event, job_id, attempt, pid, at = line.split()
                if event == "start":
                    starts.setdefault(job_id, []).append((float(at), int(pid), attempt))
                else:
                    ends.add((job_id, attempt, int(pid)))
        ended = {job_id for job_id, _, _ in ends}
        statuses = dict(Job.objects.filter(id__in=job_ids).values_list("id", "status"))
        run_twice = {job_id: sorted(runs) for job_id, runs in starts.items() if len(runs) > 1}
        # Killed mid-body: the drill killed its process and the body never recorded its end.
        after_kill = [
            job_id for job_id, runs in run_twice.items()
            if all(pid in self.killed_pids and (job_id, attempt, pid) not in ends for _, pid, attempt in runs[:-1])
        ]  # fmt: skip
        counts = {status: sum(1 for value in statuses.values() if value == status) for status in FINAL}
        lost = len(set(job_ids) - set(statuses)) + sum(
            1 for job_id, status in statuses.items() if status == "succeeded" and job_id not in ended
        )
        return DrillResult(
            drill=drill, jobs=len(job_ids), succeeded=counts["succeeded"], dead=counts["dead"],
            failed=counts["failed"], stuck=sum(1 for status in statuses.values() if status not in FINAL),
            run_twice=len(run_twice), run_twice_after_kill=len(after_kill), lost=lost, settle_seconds=settle_seconds,
            details={"run_twice": {job_id: [pid for _, pid, _ in runs] for job_id, runs in list(run_twice.items())[:20]},
                     "killed_pids": len(self.killed_pids), **(details_extra or {})},
            **extra,
        )  # fmt: skip


def wait_redis_ready(url: str, *, timeout: float = 30) -> None:
    """Until Redis answers commands: a server that just started may still load its append-only file."""
    import redis

    client = redis.Redis.from_url(url)
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                client.ping()
                return
            except (redis.BusyLoadingError, redis.ConnectionError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
    finally:
        client.close()


def reset_broker_connections(app: Celery) -> None:
    """Forget the broker connections this process pooled: after a Redis restart they are dead."""
    from kombu import pools

    pools.reset()
    app._pool = None
    app.amqp._producer_pool = None


def enqueue(count: int, *, seconds: Callable[[int], float] | float = 0.05) -> list[str]:
    from jobs.services import job_bulk_enqueue

    payloads = [{"seconds": seconds(index) if callable(seconds) else seconds} for index in range(count)]
    return [result.job.id for result in job_bulk_enqueue(job_type="chaos.work", payloads=payloads)]


def wait_until(condition: Callable[[], object], *, timeout: float, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return False


def bodies_started(platform: Platform) -> int:
    if not platform.executions.exists():
        return 0
    return sum(1 for line in platform.executions.read_text().splitlines() if line.startswith("start "))


# ---------------------------------------------------------------------------------------------
# The drills
# ---------------------------------------------------------------------------------------------


def sigkill_storm(platform: Platform, *, jobs: int, kills: int, deadline: float) -> DrillResult:
    """SIGKILL pool processes and whole workers (restarted under the same name) while N jobs run."""
    for name in ("a", "b"):
        platform.start_worker(name)
    job_ids = enqueue(jobs, seconds=lambda index: random.uniform(0.02, 0.3))
    child_kills = main_kills = 0
    for index in range(kills):
        # Spread the kills over the run: wait for some progress between two of them.
        target = bodies_started(platform) + max(1, jobs // (kills + 2))

        def progressed(target: int = target) -> bool:
            return bodies_started(platform) >= target

        wait_until(progressed, timeout=15)
        victim = random.choice(["a", "b"])
        if index % 3 == 2:
            platform.kill_main(victim)
            main_kills += 1
        elif platform.kill_child(victim):
            child_kills += 1
    settled = platform.settle(job_ids, deadline_seconds=deadline)
    return platform.result("sigkill storm", job_ids, settled,
                           notes=f"{child_kills} pool processes and {main_kills} workers killed")  # fmt: skip


def sigterm_long_jobs(platform: Platform, *, jobs: int, seconds: float, deadline: float) -> DrillResult:
    """A deploy: SIGTERM (warm shutdown) to a worker running long jobs, a new worker, reaper ticks."""
    old = platform.start_worker("old", concurrency=jobs)
    job_ids = enqueue(jobs, seconds=seconds)
    wait_until(lambda: bodies_started(platform) >= jobs, timeout=60)
    os.kill(old.pid, signal.SIGTERM)  # the main process only: it finishes its running jobs, then exits
    platform.start_worker("new", concurrency=jobs)
    settled = platform.settle(job_ids, deadline_seconds=deadline)
    return platform.result("SIGTERM during long jobs", job_ids, settled,
                           notes=f"{jobs} jobs of {seconds:g} s, reaper every 1 s during the warm shutdown")  # fmt: skip


def redis_stopped_at_enqueue(platform: Platform, *, jobs: int, deadline: float) -> DrillResult:
    """Redis is down while callers enqueue, five jobs per transaction; then it comes back."""
    from django.db import transaction

    from jobs.core.publisher import breaker
    from jobs.services import job_enqueue

    platform.start_worker("a")
    platform.redis.stop()
    # As a web process that had no broker connection yet: every connection attempt waits for the
    # connect timeout, so only the breaker keeps the commits short.
    reset_broker_connections(platform.app)
    breaker.record_success()
    job_ids, commits = [], []
    for _ in range(max(1, jobs // 5)):
        started = time.monotonic()
        with transaction.atomic():
            job_ids += [job_enqueue(job_type="chaos.work", payload={"seconds": 0.05}).job.id for _ in range(5)]
        commits.append(time.monotonic() - started)
    platform.restart_redis(stopped=True)
    back = time.monotonic()
    settled = platform.settle(job_ids, deadline_seconds=deadline, since=back)
    return platform.result("Redis stopped at enqueue", job_ids, settled,
                           notes=f"slowest commit of 5 enqueues {max(commits):.2f} s (mean {sum(commits) / len(commits):.2f} s); "
                                 "settle counted from Redis' return",
                           details_extra={"commit_seconds": [round(c, 3) for c in commits]})  # fmt: skip


def redis_restarted(platform: Platform, *, jobs: int, persistent: bool, deadline: float) -> DrillResult:
    """Jobs wait on the broker while Redis restarts, with its append-only file or without (wiped)."""
    job_ids = enqueue(jobs)
    platform.restart_redis()
    restarted = time.monotonic()
    platform.start_worker("a")
    settled = platform.settle(job_ids, deadline_seconds=deadline, since=restarted)
    kind = "with persistence" if persistent else "without persistence (wiped)"
    return platform.result(f"Redis restarted {kind}", job_ids, settled,
                           notes="messages kept by the AOF" if persistent else
                           "messages lost: the relay republishes after JOBS_REPUBLISH_AFTER_SECONDS")  # fmt: skip


def postgres_backends_terminated(platform: Platform, *, jobs: int, times: int, deadline: float) -> DrillResult:
    """pg_terminate_backend of every connection to the drill's own database (never another's), mid-run."""
    from django.db import connection

    from jobs.models import Job

    for name in ("a", "b"):
        platform.start_worker(name)
    job_ids = enqueue(jobs, seconds=0.1)
    terminated, resumed_after = 0, []
    for _ in range(times):
        wait_until(lambda: bodies_started(platform) >= 1, timeout=30)
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            terminated += cursor.fetchone()[0]
        dropped = time.monotonic()
        done_before = Job.objects.filter(id__in=job_ids, status="succeeded").count()

        def resumed(done: int = done_before) -> bool:
            return Job.objects.filter(id__in=job_ids, status="succeeded").count() > done

        if wait_until(resumed, timeout=30, interval=0.05):
            resumed_after.append(time.monotonic() - dropped)
        else:
            resumed_after.append(float("inf"))
            break
    settled = platform.settle(job_ids, deadline_seconds=deadline)
    slowest = max(resumed_after) if resumed_after else float("inf")
    return platform.result("PostgreSQL backends terminated", job_ids, settled, resumed=slowest < RESUME_WITHIN_SECONDS,
                           notes=f"{terminated} backends terminated in {times} rounds; work resumed by itself "
                                 f"within {slowest:.1f} s each time", details_extra={"resumed_after": resumed_after})  # fmt: skip


def postgres_down(platform: Platform, *, jobs: int, outage: float, deadline: float) -> DrillResult:
    """The drill's own database refuses connections for ``outage`` seconds while bodies run.

    ``ALLOW_CONNECTIONS false`` and every backend terminated: bodies that finish in the outage cannot
    write their success (every try fails), their leases run out, and the reaper, once the database
    is back, must finish them from their recorded completion instead of running them again.
    """
    from django.db import connection

    from jobs.models import Job

    for name in ("a", "b"):
        platform.start_worker(name)
    job_ids = enqueue(jobs, seconds=lambda index: 0.5 if index < 8 else 0.1)
    wait_until(lambda: bodies_started(platform) >= 4, timeout=60, interval=0.02)
    import psycopg

    # A database cannot shut its own door: the doorman connects to the server's maintenance database.
    db = connection.settings_dict
    name, quoted = db["NAME"], connection.ops.quote_name(db["NAME"])
    params = {"dbname": "postgres", "user": db["USER"], "password": db["PASSWORD"], "host": db["HOST"],
              "port": db["PORT"]}  # fmt: skip
    with psycopg.connect(**{key: value for key, value in params.items() if value}, autocommit=True) as doorman:
        try:
            doorman.execute(f"ALTER DATABASE {quoted} ALLOW_CONNECTIONS false")
            row = doorman.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = %s", [name]
            ).fetchone()
            terminated = row[0] if row else 0
            time.sleep(outage)
        finally:
            doorman.execute(f"ALTER DATABASE {quoted} ALLOW_CONNECTIONS true")
    connection.close()  # the driver's own connection was terminated too
    back = time.monotonic()
    done_before = Job.objects.filter(id__in=job_ids, status="succeeded").count()
    resumed = wait_until(lambda: Job.objects.filter(id__in=job_ids, status="succeeded").count() > done_before,
                         timeout=30, interval=0.05)  # fmt: skip
    resumed_after = time.monotonic() - back if resumed else float("inf")
    settled = platform.settle(job_ids, deadline_seconds=deadline, since=back)
    finished_from_record = sum(
        path.read_text(errors="replace").count("recorded as succeeded, not run again")
        for path in platform.workdir.glob(f"{platform.name}-*.log")
    )
    return platform.result("PostgreSQL refusing connections", job_ids, settled,
                           resumed=resumed_after < RESUME_WITHIN_SECONDS,
                           notes=f"{outage:g} s outage, {terminated} backends terminated; {finished_from_record} "
                                 f"bodies that finished in it were recorded succeeded by the reaper, not run again; "
                                 f"work resumed {resumed_after:.1f} s after; settle counted from the database's return",
                           details_extra={"resumed_after": [resumed_after],
                                          "finished_from_record": finished_from_record})  # fmt: skip


def duplicate_deliveries(platform: Platform, *, jobs: int, copies: int, deadline: float) -> DrillResult:
    """Every job's message is published ``copies`` more times (a redelivery, a relay republish)."""
    from jobs.models import Job
    from jobs.services import publish_messages

    job_ids = enqueue(jobs)
    refs = [
        (job.id, job.type, job.queue, job.attempt + 1, job.correlation_id) for job in Job.objects.filter(id__in=job_ids)
    ]
    for _ in range(copies):
        publish_messages(refs)
    platform.start_worker("a")
    settled = platform.settle(job_ids, deadline_seconds=deadline)
    return platform.result("duplicate deliveries", job_ids, settled,
                           notes=f"{copies + 1} messages per job")  # fmt: skip
