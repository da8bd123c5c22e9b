"""Housekeeping services run by periodic tasks: rescue orphaned jobs, prune old ones."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from celery import current_app
from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from . import registry
from .exceptions import UnknownJobType
from .lifecycle import job_rescue_lost_attempt
from .models import FINISHED_STATUSES, Job

logger = logging.getLogger("jobs.maintenance")
S = Job.Status


@dataclass(frozen=True)
class RescueReport:
    requeued: list[str]
    dead: list[str]


def _live_workers() -> set[str] | None:
    """Hostnames of workers answering a ping, or None if the broker could not be asked."""
    try:
        replies = current_app.control.ping(timeout=getattr(settings, "JOBS_REAPER_PING_TIMEOUT", 1.0))
    except Exception:  # broker down: we cannot tell, so assume every worker is alive
        logger.warning("reaper could not ping workers; only jobs past their time limit are rescued")
        return None
    return {hostname for reply in replies for hostname in reply}


def job_rescue_orphans(*, now: datetime | None = None) -> RescueReport:
    """Find jobs stuck in ``running`` whose worker is gone, and requeue or bury them.

    A running job is an orphan when it has run longer than its hard time limit plus a
    grace period (no live worker can still be running it), or when it has run longer
    than the grace period and the worker that took it no longer answers a ping (it was
    killed). Orphans with attempts left go back to the queue (at-least-once); the others
    are dead.
    """
    now = now or timezone.now()
    grace = timedelta(seconds=getattr(settings, "JOBS_ORPHAN_GRACE_SECONDS", 60))
    candidates = list(Job.objects.filter(status=S.RUNNING, started_at__lte=now - grace))
    if not candidates:
        return RescueReport(requeued=[], dead=[])
    live = None
    requeued: list[str] = []
    dead: list[str] = []
    for job in candidates:
        try:
            time_limit = timedelta(seconds=registry.get(job.type).effective_time_limit)
        except UnknownJobType:
            time_limit = timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT)
        past_limit = job.started_at <= now - time_limit - grace
        if not past_limit:
            if live is None:
                live = _live_workers()
            if live is None or job.worker in live:
                continue
        reason = "time limit passed" if past_limit else f"worker {job.worker or '?'} no longer answers"
        if job_rescue_lost_attempt(job=job, reason=reason, now=now):
            (requeued if job.attempt < job.max_attempts else dead).append(job.id)
    if requeued or dead:
        logger.warning("reaper rescued orphaned jobs: requeued %s, dead %s", requeued, dead)
    return RescueReport(requeued=requeued, dead=dead)


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
