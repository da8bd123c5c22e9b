"""Prometheus metrics of the job platform, correct when many processes record them.

Every process (gunicorn workers, Celery's main process and its prefork children, beat) records
into files under ``PROMETHEUS_MULTIPROC_DIR`` (``prometheus_client``'s multiprocess mode): a
child recycled by ``--max-tasks-per-child`` leaves its file behind, so no count is lost, and a
scrape sums every file of the service. One directory per service, emptied when the service
starts (``metrics_dir_reset``: gunicorn's ``on_starting`` hook, the Celery worker's ``worker_init``
signal). Without the variable, a process importing this module creates a private temporary
directory its forked children share (``make run``, tests); a process it *starts* gets its own.

The rest of ``jobs/`` records through the small functions below (``attempt_finished``,
``attempt_started``, ``jobs_enqueued``, ...), one call where an outcome is decided;
``JOBS_METRICS_ENABLED=false`` turns them into no-ops (the benchmark compares both).
What is read at scrape time (jobs by state, the dead-letter queue, queue depth and age) is
collected by ``jobs.ops.metrics_scrape.OverviewCollector`` from the operations overview's index-bound selectors.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import tempfile
import time
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from prometheus_client import Counter, Gauge, Histogram, multiprocess, values

from jobs.foundation.processes import memory_tmp_dir

logger = logging.getLogger("jobs.metrics")

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


# Names the directory this module created by itself, so that a process started (not forked) with
# that environment, say a worker a test or `make run` launches, makes its own instead of sharing it.
PRIVATE_DIR_ENV = "JOBS_METRICS_PRIVATE_DIR"


def _multiprocess_dir() -> str:
    """The service's metrics directory; a private temporary one (removed at exit) when none is configured."""
    path = os.environ.get(MULTIPROC_ENV)
    if not path or os.environ.get(PRIVATE_DIR_ENV) == path:
        # In memory where the machine allows (every job and request writes these files; config/gunicorn.py).
        path = tempfile.mkdtemp(prefix="jobplatform-metrics-", dir=memory_tmp_dir())
        os.environ[MULTIPROC_ENV] = os.environ[PRIVATE_DIR_ENV] = path
        owner = os.getpid()

        def remove() -> None:
            # Only the process that created it removes it (forked children inherit atexit handlers).
            if os.getpid() == owner:
                shutil.rmtree(path, ignore_errors=True)

        atexit.register(remove)
    os.makedirs(path, exist_ok=True)
    return path


def _remove_files(*, of_this_process: bool) -> None:
    suffix = f"_{os.getpid()}.db"
    directory = metrics_dir()
    for name in os.listdir(directory):
        if name.endswith(".db") and name.endswith(suffix) == of_this_process:
            os.remove(os.path.join(directory, name))


_multiprocess_dir()


def metrics_dir() -> str:
    """The directory this process records into, read when needed: a gunicorn master may point its
    workers at another one after this module was imported (``config/gunicorn.py``)."""
    return os.environ[MULTIPROC_ENV]


# A file named after this process's id was left by a dead process that had the same id: start from zero.
_remove_files(of_this_process=True)
# prometheus_client picks its value class when first imported; whoever imported it first (before the
# variable was set) must not leave this process counting in memory only.
values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]  # prometheus_client leaves it unannotated


def metrics_dir_reset() -> None:
    """Forget the samples of earlier runs of the service: call once in its first process, before any other starts.

    This process's own files stay (it already holds them open, and they only hold this run's samples).
    """
    _remove_files(of_this_process=False)


def process_exited(pid: int) -> None:
    """A web worker process exited (gunicorn's ``child_exit``): drop its live-only gauges."""
    multiprocess.mark_process_dead(pid, metrics_dir())  # type: ignore[no-untyped-call]  # unannotated in prometheus_client


# Jobs run from 10 ms (an email render) to 30 minutes (the hard time limit).
DURATION_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 1800)
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

JOBS_ENQUEUED = Counter("jobs_enqueued", "Jobs created (counted when their transaction commits).", ["type", "queue"])
JOB_ATTEMPTS = Counter("job_attempts", "Attempts that ended, by how they ended.", ["type", "outcome"])
JOB_RUN_SECONDS = Histogram(
    "job_run_seconds", "How long an attempt ran, claim to outcome.", ["type"], buckets=DURATION_BUCKETS
)
JOB_QUEUE_WAIT_SECONDS = Histogram(
    "job_queue_wait_seconds", "From when a job was due to when an attempt started.", ["type", "queue"],
    buckets=DURATION_BUCKETS,
)  # fmt: skip
RATE_LIMITER_WAITS = Counter("jobs_rate_limiter_waits", "Acquisitions that slept for a slot.", ["limiter"])
RATE_LIMITER_WAIT_SECONDS = Counter("jobs_rate_limiter_wait_seconds", "Seconds slept for slots.", ["limiter"])
RATE_LIMITER_LIMITED = Counter(
    "jobs_rate_limiter_limited", "Acquisitions refused (RateLimited: the job is postponed).", ["limiter"]
)
RATE_LIMITER_PAUSES = Counter(
    "jobs_rate_limiter_pauses", "Pauses imposed by a downstream (Retry-After on 429/503).", ["limiter"]
)
CONCURRENCY_WAITS = Counter(
    "jobs_concurrency_waits", "Deliveries that found their type's concurrency limit full: the job waits.", ["type"]
)
SINGLETON_SKIPS = Counter("jobs_singleton_skips", "Singleton runs skipped: another run held the lock.", ["type"])
SCHEDULE_WINDOW_CLAIMS = Counter(
    "jobs_schedule_window_claims", "Schedule firings: window claimed (enqueued) or already fired.",
    ["schedule", "result"],
)  # fmt: skip
SCHEDULE_LAST_FIRED = Gauge(
    "jobs_schedule_last_fired_timestamp_seconds", "When a beat-sent task of the schedule last ran successfully.",
    ["schedule"], multiprocess_mode="max",
)  # fmt: skip
RELAY_PUBLISHED = Counter(
    "jobs_relay_published", "Messages the relay sent: never published before, or re-published stale ones.", ["kind"]
)
REAPER_RESCUED = Counter("jobs_reaper_rescued", "Orphaned running jobs the reaper rescued.", ["result"])
CANARY_LAST_SUCCESS = Gauge(
    "jobs_canary_last_success_timestamp_seconds", "When a canary job last succeeded.", multiprocess_mode="max"
)
WORKER_CONSUMING = Gauge(
    "jobs_worker_consuming_queue", "1 for each queue this worker service consumes.", ["queue"],
    multiprocess_mode="max",
)  # fmt: skip
HTTP_REQUESTS = Counter("jobs_http_requests", "API requests, by route pattern, method and status.",
                        ["route", "method", "status"])  # fmt: skip
HTTP_SECONDS = Histogram("jobs_http_request_duration_seconds", "API request latency by route pattern.",
                         ["route", "method"], buckets=HTTP_BUCKETS)  # fmt: skip


def _enabled() -> bool:
    return bool(getattr(settings, "JOBS_METRICS_ENABLED", True))


def _seconds_between(start: datetime | None, end: datetime) -> float | None:
    return None if start is None else max(0.0, (end - start).total_seconds())


# ---------------------------------------------------------------------------
# Recording: one call where the rest of jobs/ decides something
# ---------------------------------------------------------------------------


def jobs_enqueued(*, job_type: str, queue: str, count: int = 1) -> None:
    """``count`` jobs were created; counted once the surrounding transaction commits (a rollback counts none)."""
    if count and _enabled():
        transaction.on_commit(lambda: JOBS_ENQUEUED.labels(job_type, queue).inc(count))


def attempt_started(*, job: Any, eta: Any = None) -> None:
    """An attempt was claimed: observe how long the job waited since it was due.

    Due is the message's ETA (a retry's backoff, a snooze), else when the job was enqueued or, for a job that runs
    later, its due time (``run_at``) if that came after.
    """
    if not _enabled() or job.started_at is None:
        return
    enqueued = job.enqueued_at or job.created_at
    run_at = getattr(job, "run_at", None)
    due = _parse_eta(eta) or (max(run_at, enqueued) if run_at is not None and enqueued is not None else enqueued)
    wait = _seconds_between(due, job.started_at)
    if wait is not None:
        JOB_QUEUE_WAIT_SECONDS.labels(job.type, job.queue).observe(wait)


def _parse_eta(eta: Any) -> datetime | None:
    if isinstance(eta, datetime):
        return eta
    if isinstance(eta, str) and eta:
        try:
            return datetime.fromisoformat(eta)
        except ValueError:
            return None
    return None


def attempt_finished(*, job: Any, outcome: str, finished_at: datetime | None = None) -> None:
    """An attempt ended with ``outcome`` (an attempt row's outcome; ``retry`` is exported as ``retried``)."""
    if not _enabled():
        return
    label = "retried" if outcome == "retry" else str(outcome)
    JOB_ATTEMPTS.labels(job.type, label).inc()
    run = _seconds_between(job.started_at, finished_at or timezone.now())
    if run is not None and label != "lost":  # a lost attempt's end is when the reaper noticed, not a run time
        JOB_RUN_SECONDS.labels(job.type).observe(run)
    if label == "skipped":
        SINGLETON_SKIPS.labels(job.type).inc()


def rate_limiter_waited(*, limiter: str, seconds: float) -> None:
    if _enabled():
        RATE_LIMITER_WAITS.labels(limiter).inc()
        RATE_LIMITER_WAIT_SECONDS.labels(limiter).inc(seconds)


def rate_limiter_limited(*, limiter: str) -> None:
    if _enabled():
        RATE_LIMITER_LIMITED.labels(limiter).inc()


def rate_limiter_paused(*, limiter: str) -> None:
    if _enabled():
        RATE_LIMITER_PAUSES.labels(limiter).inc()


def schedule_window(*, schedule: str, claimed: bool) -> None:
    if _enabled():
        SCHEDULE_WINDOW_CLAIMS.labels(schedule, "claimed" if claimed else "already_fired").inc()


def schedule_fired(*, schedule: str) -> None:
    """A task beat sent for ``schedule`` ran successfully (see ``jobs.ops.metrics_celery``)."""
    if _enabled():
        SCHEDULE_LAST_FIRED.labels(schedule).set(time.time())


def concurrency_waited(*, job_type: str) -> None:
    if _enabled():
        CONCURRENCY_WAITS.labels(job_type).inc()


def relay_published(*, kind: str, count: int) -> None:
    if count and _enabled():
        RELAY_PUBLISHED.labels("republished" if kind == "stale" else kind).inc(count)


def reaper_rescued(*, requeued: int, dead: int) -> None:
    if _enabled():
        if requeued:
            REAPER_RESCUED.labels("requeued").inc(requeued)
        if dead:
            REAPER_RESCUED.labels("dead").inc(dead)


def canary_succeeded() -> None:
    if _enabled():
        CANARY_LAST_SUCCESS.set(time.time())


def worker_consumes(*, queues: list[str]) -> None:
    for queue in queues:
        WORKER_CONSUMING.labels(queue).set(1)


def http_request_finished(*, route: str, method: str, status: int, seconds: float) -> None:
    if _enabled():
        HTTP_REQUESTS.labels(route, method, str(status)).inc()
        HTTP_SECONDS.labels(route, method).observe(seconds)
