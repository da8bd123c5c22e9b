"""Platform tasks: diagnostics, housekeeping (relay, reaper, pruner) and the canary job type."""

from __future__ import annotations

import logging
import time
from typing import Any

from celery import shared_task
from django.conf import settings
from redis import RedisError

from jobs.core.job_context import JobContext
from jobs.core.retry import Backoff
from jobs.delivery.relay import job_relay_unpublished
from jobs.delivery.scheduled import job_publish_due
from jobs.delivery.schedules import declare, schedule_trigger
from jobs.foundation import metrics
from jobs.foundation.exceptions import TransientJobError
from jobs.worker.decorator import job_type
from jobs.worker.maintenance import job_prune_completions, job_prune_finished, job_rescue_orphans
from jobs.worker.reservations import reservations_sweep

logger = logging.getLogger("jobs.maintenance")


@shared_task(name="jobs.ping")  # type: ignore[untyped-decorator]  # celery has no types
def ping(value: str = "pong") -> str:
    """Round-trip check for the broker, a worker and the result store."""
    return value


# Housekeeping sends no task events (send_events=False): Flower turns events on in every worker, and the relay
# and reaper every few seconds would bury the real jobs in its task list (beat's task-sent: config/celery_app.py).
@shared_task(name="jobs.relay_unpublished", ignore_result=True, send_events=False)  # type: ignore[untyped-decorator]  # celery has no types
def relay_unpublished() -> int:
    return job_relay_unpublished()


@shared_task(name="jobs.publish_due", ignore_result=True, send_events=False)  # type: ignore[untyped-decorator]  # celery has no types
def publish_due() -> int:
    return job_publish_due()


@shared_task(name="jobs.rescue_orphans", ignore_result=True, send_events=False)  # type: ignore[untyped-decorator]  # celery has no types
def rescue_orphans() -> dict[str, Any]:
    report = job_rescue_orphans()
    metrics.reaper_rescued(requeued=len(report.requeued), dead=len(report.dead))
    # The messages a dead worker had reserved but not started (no attempt lease covers them).
    try:
        republished = reservations_sweep()
    except RedisError as error:
        logger.warning("could not sweep the reservations of dead workers (Redis: %s); the next tick tries again", error)
        republished = []
    # After the rescue, which may still need a record; then the ones whose success the database holds go.
    pruned = job_prune_completions()
    return {"requeued": report.requeued, "dead": report.dead, "completed": report.completed, "pruned": pruned,
            "republished_reserved": republished}  # fmt: skip


@shared_task(name="jobs.prune_finished", ignore_result=True, send_events=False)  # type: ignore[untyped-decorator]  # celery has no types
def prune_finished() -> int:
    return job_prune_finished()


@shared_task(name="jobs.run_schedule", send_events=False)  # type: ignore[untyped-decorator]  # celery has no types
def run_schedule(
    schedule: str,
    job_type: str | None = None,
    payload: dict[str, Any] | None = None,
    window_seconds: float | None = None,
) -> dict[str, Any]:
    """Beat's entry point for job schedules: enqueue once per schedule window, nothing more."""
    return schedule_trigger(
        name=schedule, job_type=job_type, payload=payload, window_seconds=window_seconds, source="beat"
    ).as_dict()


declare("jobs.relay_unpublished", float(settings.JOBS_RELAY_INTERVAL_SECONDS), task="jobs.relay_unpublished",
        description="Publish jobs whose message never reached the broker.")  # fmt: skip
declare("jobs.publish_due", float(settings.JOBS_SCHEDULER_TICK_SECONDS), task="jobs.publish_due",
        description="The scheduler's tick: publish jobs that run later once they are due.")  # fmt: skip
declare("jobs.rescue_orphans", float(settings.JOBS_REAPER_INTERVAL_SECONDS), task="jobs.rescue_orphans",
        description="Requeue jobs whose attempt's lease ran out (their worker died); prune completion records.")  # fmt: skip
declare("jobs.prune_finished", 3600.0, task="jobs.prune_finished", description="Delete old finished jobs.")


CANARY_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "seconds": {"type": "number", "minimum": 0, "maximum": 600, "default": 0},
        "fail_first": {"type": "integer", "minimum": 0, "maximum": 100, "default": 0},
        "message": {"type": "string", "maxLength": 200, "default": "canary"},
    },
}


@job_type(
    "jobs.canary",
    queue="default",
    max_attempts=3,
    backoff=Backoff(base_seconds=1, cap_seconds=10),
    api_schema=CANARY_SCHEMA,
    api_staff_only=True,
    time_limit=700,
    soft_time_limit=650,
)
def canary(ctx: JobContext, payload: dict[str, Any]) -> dict[str, Any]:
    """Sleeps, reports progress, and fails its first N attempts: an end-to-end pipeline check."""
    seconds = float(payload.get("seconds", 0))
    fail_first = int(payload.get("fail_first", 0))
    ctx.log.info("canary attempt %s: sleeping %.1fs", ctx.attempt, seconds)
    steps = max(1, int(seconds * 4))
    for step in range(steps):
        time.sleep(seconds / steps)
        ctx.progress(100 * (step + 1) / steps, f"slept {seconds * (step + 1) / steps:.1f}s")
    if ctx.attempt <= fail_first:
        raise TransientJobError(f"canary told to fail its first {fail_first} attempt(s); this is attempt {ctx.attempt}")
    metrics.canary_succeeded()
    return {"message": payload.get("message", "canary"), "attempts": ctx.attempt}


# The canary schedule: a stale jobs_canary_last_success_timestamp_seconds means the pipeline
# (beat, broker, a default worker, the database) is broken somewhere. 0 switches it off; so does
# pausing it in the admin or switching the jobs.canary type off.
if getattr(settings, "JOBS_CANARY_INTERVAL_SECONDS", 300) > 0:
    declare("jobs.canary", float(getattr(settings, "JOBS_CANARY_INTERVAL_SECONDS", 300)), job_type="jobs.canary",
            payload={"message": "scheduled canary"}, description="End-to-end pipeline check (metrics, alerts).")  # fmt: skip
