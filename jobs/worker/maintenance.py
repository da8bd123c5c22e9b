"""Housekeeping services run by periodic tasks: rescue orphaned jobs, prune old ones."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone
from redis import RedisError

from jobs.core import registry
from jobs.core.completions import completions_prune
from jobs.core.lifecycle import job_completions_settled, job_rescue_lost_attempt
from jobs.foundation.exceptions import UnknownJobType
from jobs.models import FINISHED_STATUSES, Job
from jobs.worker.concurrency import concurrency_release

logger = logging.getLogger("jobs.maintenance")
S = Job.Status


@dataclass(frozen=True)
class RescueReport:
    requeued: list[str]
    dead: list[str]
    # Lost attempts whose body had finished (recorded in Redis): succeeded, not run again.
    completed: list[str] = field(default_factory=list)


def job_rescue_orphans(*, now: datetime | None = None, limit: int = 1000) -> RescueReport:
    """Rescue running attempts whose lease ran out: their worker process is gone. Requeue or bury them.

    A worker renews the lease of every attempt it runs every ``JOBS_HEARTBEAT_SECONDS``, also
    during a warm shutdown, so a lease runs out only when the process that held it died (SIGKILL,
    the hard time limit, a crash) or cannot reach the database for ``JOBS_LEASE_SECONDS``. Whether
    the worker node still answers pings does not matter, nor does the job's time limit. A running
    job without a lease (claimed before leases existed) is rescued once past its hard time limit
    plus ``JOBS_ORPHAN_GRACE_SECONDS``. Orphans with attempts left go back to the queue at once
    (at-least-once); the others are dead. An orphan whose body had finished (its completion is in
    Redis: the success write failed) is recorded as succeeded instead, not run again.
    """
    now = now or timezone.now()
    grace = timedelta(seconds=getattr(settings, "JOBS_ORPHAN_GRACE_SECONDS", 60))
    expired = Q(lease_expires_at__lt=now) | Q(lease_expires_at__isnull=True, started_at__lte=now - grace)
    candidates = list(Job.objects.filter(expired, status=S.RUNNING).order_by("lease_expires_at")[:limit])
    requeued: list[str] = []
    dead: list[str] = []
    completed: list[str] = []
    for job in candidates:
        if job.lease_expires_at is not None:
            reason = f"its lease ran out at {job.lease_expires_at.isoformat()} (worker {job.worker or '?'} gone)"
        elif job.started_at and job.started_at <= now - timedelta(seconds=_time_limit(job.type)) - grace:
            reason = "it ran past its time limit (no lease: claimed before leases)"
        else:
            continue
        status = job_rescue_lost_attempt(job=job, reason=reason, now=now)
        if status is not None:
            (completed if status == S.SUCCEEDED else dead if status == S.DEAD else requeued).append(job.id)
    rescued = set(requeued) | set(dead) | set(completed)
    for job_type in sorted({job.type for job in candidates if job.id in rescued and registry.is_declared(job.type)}):
        spec = registry.get(job_type)
        if spec.limited:
            concurrency_release(spec=spec)  # the lost attempts' slots are free: the longest-waiting jobs go
    if requeued or dead or completed:
        logger.warning("reaper rescued orphaned jobs: requeued %s, dead %s, finished as succeeded %s",
                       requeued, dead, completed)  # fmt: skip
    return RescueReport(requeued=requeued, dead=dead, completed=completed)


def job_prune_completions() -> int:
    """Delete completion records (``jobs.core.completions``) the database no longer needs. Best effort.

    Without this they would pile up in Redis for ``JOBS_COMPLETION_TTL_SECONDS``: a success that did
    not wait for the WAL flush leaves its record behind.
    """
    try:
        return completions_prune(is_settled=job_completions_settled)
    except RedisError as error:
        logger.warning("could not prune completion records (Redis: %s); the next tick tries again", error)
        return 0


def _time_limit(job_type: str) -> int:
    try:
        return registry.get(job_type).effective_time_limit
    except UnknownJobType:
        return int(settings.CELERY_TASK_TIME_LIMIT)


def job_prune_finished(
    *,
    older_than_days: float | None = None,
    dead_older_than_days: float | None = None,
    batch_size: int = 1000,
    max_batches: int = 100,
) -> int:
    """Delete finished jobs older than the retention, a batch at a time (short transactions).

    Dead jobs are kept longer (``JOBS_DEAD_RETENTION_DAYS``): the dead-letter queue is work
    for an operator, and a long weekend must not delete it. Returns how many jobs were
    deleted. Attempts and log lines go with their job.
    """
    days = older_than_days if older_than_days is not None else getattr(settings, "JOBS_RETENTION_DAYS", 30)
    dead_days = (
        dead_older_than_days if dead_older_than_days is not None else getattr(settings, "JOBS_DEAD_RETENTION_DAYS", 90)
    )
    now = timezone.now()
    expired = Q(status__in=FINISHED_STATUSES - {S.DEAD}, finished_at__lt=now - timedelta(days=days)) | Q(
        status=S.DEAD, finished_at__lt=now - timedelta(days=dead_days)
    )
    deleted = 0
    for _ in range(max_batches):
        ids = list(Job.objects.filter(expired).order_by("finished_at").values_list("id", flat=True)[:batch_size])
        if not ids:
            break
        # Replays keep their link target nulled, not deleted.
        Job.objects.filter(replay_of_id__in=ids).update(replay_of=None)
        Job.objects.filter(id__in=ids).delete()
        deleted += len(ids)
    if deleted:
        logger.info("pruned %d finished job(s) older than %s days (dead ones: %s days)", deleted, days, dead_days)
    return deleted
