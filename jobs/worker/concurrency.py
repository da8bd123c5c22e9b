"""Global concurrency limits: at most N attempts of a job type run at once across every worker and host
(``@job_type(..., concurrency=N)``), and at most M per key (``concurrency_key=<function of the payload>``,
``concurrency_per_key=M``).

A slot is a running attempt of the type whose lease has not run out: slots are leased like attempts, so a
SIGKILLed worker's slot returns when its lease runs out (and the reaper then rescues the attempt). A delivery
claims its attempt only while a slot is free, under a database lock per type so two workers cannot both take the
last one. A delivery over the limit is not run: the job stays ``queued``, unpublished, no attempt spent, no worker
process held, and is published again when a slot frees (``concurrency_release``, after every attempt of the type
ends), or, should that be missed, by the relay after ``JOBS_CONCURRENCY_RECHECK_SECONDS``.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from jobs.coordination.locks import transaction_lock
from jobs.core.lifecycle import job_start_attempt
from jobs.core.publisher import publish_on_commit
from jobs.core.registry import JobType
from jobs.foundation import metrics
from jobs.models import WAITING_STATUSES, Job

logger = logging.getLogger("jobs.concurrency")

# How many waiting jobs one release publishes at most when only a per-key limit applies (any number could run).
RELEASE_BATCH = 100


@dataclass(frozen=True)
class OverLimit:
    """A delivery found no free slot: the job waits, unpublished, for one."""

    job_id: str
    key: str | None
    running: int
    limit: int


def recheck_seconds() -> float:
    return float(getattr(settings, "JOBS_CONCURRENCY_RECHECK_SECONDS", 30))


def key_for(spec: JobType, payload: dict[str, object]) -> str:
    """The job's concurrency key ("" without a per-key limit): what ``concurrency_key`` says of its payload."""
    if spec.concurrency_key is None:
        return ""
    return str(spec.concurrency_key(payload))[:255]


def running_slots(job_type: str) -> QuerySet[Job]:
    """The slots taken: running attempts of the type whose lease has not run out (or that have none yet)."""
    live_lease = Q(lease_expires_at__isnull=True) | Q(lease_expires_at__gte=timezone.now())
    return Job.objects.filter(live_lease, type=job_type, status=Job.Status.RUNNING)


def concurrency_claim(
    *, spec: JobType, job_id: str, attempt: int, worker: str, celery_task_id: str
) -> Job | OverLimit | None:
    """Claim ``attempt`` of a job of a limited type if a slot is free; OverLimit (the job waits) if none is;
    None for a duplicate or stale delivery (as ``job_start_attempt``)."""
    with transaction.atomic():
        transaction_lock(_lock_name(spec.name))
        payload = (
            Job.objects.filter(id=job_id, status__in=WAITING_STATUSES, attempt=attempt - 1)
            .values_list("payload", flat=True)
            .first()
        )
        if payload is None:
            return None
        key = key_for(spec, payload)
        over = _over_limit(spec, job_id=job_id, key=key)
        if over is not None:
            # Not run: unpublished again, and looked at again when a slot frees (or, at the latest, by the relay).
            Job.objects.filter(id=job_id, status__in=WAITING_STATUSES, attempt=attempt - 1).update(
                published_at=None, concurrency_key=key, updated_at=timezone.now(),
                next_retry_at=timezone.now() + timedelta(seconds=recheck_seconds()),
            )  # fmt: skip
            metrics.concurrency_waited(job_type=spec.name)
            return over
        job = job_start_attempt(job_id=job_id, attempt=attempt, worker=worker, celery_task_id=celery_task_id)
        if job is not None:
            Job.objects.filter(id=job_id).update(concurrency_key=key)
            job.concurrency_key = key
        return job


def _over_limit(spec: JobType, *, job_id: str, key: str) -> OverLimit | None:
    running = running_slots(spec.name)
    if spec.concurrency is not None:
        count = running.count()
        if count >= spec.concurrency:
            return OverLimit(job_id=job_id, key=None, running=count, limit=spec.concurrency)
    if spec.concurrency_per_key is not None:
        count = running.filter(concurrency_key=key).count()
        if count >= spec.concurrency_per_key:
            return OverLimit(job_id=job_id, key=key, running=count, limit=spec.concurrency_per_key)
    return None


def concurrency_release(*, spec: JobType) -> int:
    """A slot of ``spec`` may have freed: publish, after commit, the longest-waiting jobs that now fit.

    Under the type's lock, so a delivery that is finding the type full right now has either written that it waits
    (and is seen here) or will see the freed slot. Returns how many were published.
    """
    with transaction.atomic():
        transaction_lock(_lock_name(spec.name))
        running_keys = Counter(running_slots(spec.name).values_list("concurrency_key", flat=True))
        free = RELEASE_BATCH if spec.concurrency is None else spec.concurrency - sum(running_keys.values())
        if free <= 0:
            return 0
        waiting = (
            Job.objects.filter(type=spec.name, status__in=WAITING_STATUSES, published_at__isnull=True,
                               concurrency_key__isnull=False)
            .exclude(run_at__gt=timezone.now())
            .order_by("created_at")
        )  # fmt: skip
        chosen: list[Job] = []
        for job in waiting.only("id", "type", "queue", "attempt", "correlation_id", "concurrency_key")[:RELEASE_BATCH]:
            if spec.concurrency_per_key is not None and running_keys[job.concurrency_key] >= spec.concurrency_per_key:
                continue
            running_keys[job.concurrency_key] += 1  # counted as taking the slot it is published for
            chosen.append(job)
            if len(chosen) >= free:
                break
        publish_on_commit(chosen)
    if chosen:
        logger.info("%s: a slot freed; published %d waiting job(s)", spec.name, len(chosen))
    return len(chosen)


def _lock_name(job_type: str) -> str:
    return f"jobs-concurrency:{job_type}"
