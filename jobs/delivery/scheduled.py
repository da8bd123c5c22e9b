"""Jobs that run later: the scheduler's tick publishes each one once its due time (``Job.run_at``) has come.

Such a job is stored ``queued`` with its due time and no message (``jobs.delivery.enqueue``); nothing sits in
the broker or in a worker's memory until it is due, so a long delay is neither delivered twice after the
broker's visibility timeout nor held in RAM (what a Celery ETA message would do). The tick runs on the
housekeeping queue every ``JOBS_SCHEDULER_TICK_SECONDS`` and reads the due jobs through the partial index
``jobs_due_idx`` (queued, unpublished, with a due time), so its cost follows the due jobs, not the table.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime

from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone

from jobs.coordination.locks import RedisLock
from jobs.core.publisher import publish_messages
from jobs.core.switches import disabled_job_types
from jobs.models import Job

logger = logging.getLogger("jobs.publisher")

# One ticker at a time: a second housekeeping process (or a backlog of ticks) finds the lock taken and returns.
TICK_LOCK = "jobs-scheduler-tick"
# Between ticks it wakes at most this often: jobs due within one such step go out together. Waking for every due
# time cost about 6 ms of CPU per job at 33 jobs/s (bench/README.md); waiting longer only makes a job later, never early.
RESOLUTION_SECONDS = 0.05


def tick_seconds() -> float:
    return float(getattr(settings, "JOBS_SCHEDULER_TICK_SECONDS", 1))


def _pending(now: datetime, disabled: set[str]) -> QuerySet[Job]:
    # The index's own condition, so the planner uses jobs_due_idx; a snoozed job waits for its own time.
    pending = Job.objects.filter(status=Job.Status.QUEUED, published_at__isnull=True, run_at__isnull=False)
    if disabled:
        pending = pending.exclude(type__in=disabled)  # switched off: held until switched back on
    return pending.exclude(next_retry_at__gt=now)


def job_publish_due(*, window_seconds: float | None = None, limit: int = 1000) -> int:
    """Publish every job that runs later and is due now; then, for up to ``window_seconds`` (default: one tick),
    wait for the next due time and publish again, so a job due between two ticks starts at its time, not at the
    next tick. Returns how many were published.

    Never early: a job is published only once ``run_at <= now``. Jobs of a switched-off type are held and
    published by the first tick after the switch is back on. A tick that finds another holding the tick lock
    returns 0 at once. Publishing twice (a lock that expired) is harmless: the attempt guard runs one delivery.
    """
    window = tick_seconds() if window_seconds is None else window_seconds
    lock = RedisLock(name=TICK_LOCK, ttl=window + 60)
    if not lock.acquire(blocking=False):
        return 0
    try:
        return _publish_within(window=window, limit=limit)
    finally:
        lock.release()


def _publish_within(*, window: float, limit: int) -> int:
    deadline = time.monotonic() + window
    disabled = disabled_job_types()
    published = 0
    while True:
        count = _publish_due_now(disabled=disabled, limit=limit)
        published += count
        if count == limit:
            continue  # more due than one batch (published ones left the index): publish on before waiting
        remaining = deadline - time.monotonic()
        now = timezone.now()
        next_due = _pending(now, disabled).order_by("run_at").values_list("run_at", flat=True).first()
        if next_due is None or remaining <= 0:
            break
        wait = (next_due - now).total_seconds()
        if wait > remaining:
            break
        if wait <= 0 and count == 0:
            break  # due but not publishable now (the broker failed): the next tick tries again
        time.sleep(max(wait, RESOLUTION_SECONDS))
    return published


def _publish_due_now(*, disabled: set[str], limit: int) -> int:
    now = timezone.now()
    refs = [
        (job_id, job_type, queue, attempt + 1, correlation_id)
        for job_id, job_type, queue, attempt, correlation_id in _pending(now, disabled)
        .filter(run_at__lte=now)
        .order_by("run_at")
        .values_list("id", "type", "queue", "attempt", "correlation_id")[:limit]
    ]
    if not refs:
        return 0
    count = publish_messages(refs)  # stamps published_at: the jobs leave the index
    logger.info("scheduler published %d of %d due job(s)", count, len(refs))
    return count
