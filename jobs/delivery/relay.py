"""The relay: publishes jobs whose message never reached the broker, or was lost after it did.

Its own module because it needs both publishing (``publisher``) and the lifecycle (a waiting job
whose body had finished is finished, not published again), and the lifecycle publishes.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.utils import timezone
from redis import RedisError

from jobs.core.lifecycle import job_finish_recorded_completions
from jobs.core.publisher import publish_messages, queue_depths
from jobs.core.switches import disabled_job_types
from jobs.foundation import metrics
from jobs.models import WAITING_STATUSES, Job

logger = logging.getLogger("jobs.publisher")


def job_relay_unpublished(*, job_type: str | None = None, grace_seconds: float | None = None, limit: int = 500) -> int:
    """Publish due jobs whose message never reached the broker, or was lost after it did.

    - Never published (broker down at commit, crash in between): ``grace_seconds`` (default
      JOBS_RELAY_GRACE_SECONDS) leaves fresh rows to their own on-commit publish.
    - Published but still waiting ``JOBS_REPUBLISH_AFTER_SECONDS`` after they were due, on a
      queue whose broker list is empty: the message may sit unacknowledged with a worker that
      was killed (Redis returns it only after the visibility timeout, an hour by default) or
      have been lost with a Redis without persistence. While messages still wait in the list,
      a long wait is a backlog, not a loss, and nothing is sent again (duplicates would only
      lengthen it). Publishing again is safe: the attempt guard runs one delivery of an attempt.
    """
    if grace_seconds is None:
        grace_seconds = getattr(settings, "JOBS_RELAY_GRACE_SECONDS", 10)
    now = timezone.now()
    stale_before = now - timedelta(seconds=getattr(settings, "JOBS_REPUBLISH_AFTER_SECONDS", 600))
    waiting = Job.objects.filter(status__in=WAITING_STATUSES)
    if job_type:
        waiting = waiting.filter(type=job_type)
    disabled = disabled_job_types()
    if disabled:
        waiting = waiting.exclude(type__in=disabled)
    # A job that runs later is not due before its time (the scheduler's tick publishes it then; after that
    # the relay covers it like any other).
    unpublished = (
        waiting.filter(published_at__isnull=True, updated_at__lte=now - timedelta(seconds=grace_seconds))
        .exclude(next_retry_at__gt=now)
        .exclude(run_at__gt=now)
    )
    stale = waiting.filter(published_at__lt=stale_before).exclude(next_retry_at__gt=stale_before)
    stale_queues = set(stale.order_by().values_list("queue", flat=True).distinct())
    if stale_queues:
        depths = queue_depths(sorted(stale_queues))
        stale = stale.filter(queue__in=[queue for queue in stale_queues if depths.get(queue) == 0])
    published = 0
    for rows, label in ((unpublished, "unpublished"), (stale, "stale")):
        refs = [
            (job_id, type_, queue, attempt + 1, cid)
            for job_id, type_, queue, attempt, cid in rows.order_by("created_at").values_list(
                "id", "type", "queue", "attempt", "correlation_id"
            )[:limit]
        ]
        # A database crash can forget a claim and a success that did not wait for the WAL flush:
        # the job then looks waiting although its body finished. Those are finished, not re-run.
        try:
            finished = job_finish_recorded_completions([(ref[0], ref[3]) for ref in refs])
        except RedisError as error:
            logger.warning("relay: cannot tell whether %d %s job(s) had finished (Redis: %s); not published yet",
                           len(refs), label, error)  # fmt: skip
            continue
        refs = [ref for ref in refs if ref[0] not in finished]
        if not refs:
            continue
        if label == "stale":
            # Clear the stamp first: publish_messages stamps only unpublished rows.
            Job.objects.filter(id__in=[ref[0] for ref in refs], published_at__lt=stale_before).update(published_at=None)
        count = publish_messages(refs)
        published += count
        metrics.relay_published(kind=label, count=count)
        # Re-publishing a job whose message went missing is a recovery an operator should notice;
        # publishing rows the broker missed at commit time is the relay's routine work.
        level = logging.WARNING if label == "stale" else logging.INFO
        logger.log(level, "relay published %d of %d %s job(s)", count, len(refs), label)
    return published
