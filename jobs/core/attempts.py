"""Attempt recording: one ``JobAttempt`` row per attempt, and the Celery result row beside it."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from django_celery_results.models import TaskResult

from jobs.models import Job, JobAttempt

Outcome = JobAttempt.Outcome

# Celery states for the result row each attempt leaves, by attempt outcome.
CELERY_STATE_FOR_OUTCOME: dict[str, str] = {
    Outcome.SUCCEEDED: "SUCCESS",
    Outcome.RETRY: "RETRY",
    Outcome.FAILED: "FAILURE",
    Outcome.DEAD: "FAILURE",
    Outcome.CANCELLED: "REVOKED",
    Outcome.SKIPPED: "REVOKED",
}


def duration_ms(started_at: datetime | None, finished_at: datetime) -> int | None:
    return int((finished_at - started_at).total_seconds() * 1000) if started_at else None


def job_record_attempt(
    *,
    job: Job,
    outcome: str,
    finished_at: datetime,
    error_code: str = "",
    error_message: str = "",
    error_traceback: str = "",
    retry_delay_ms: int | None = None,
) -> JobAttempt:
    """Record how an attempt ended, and the Celery result row for it, in the caller's transaction.

    Tracked tasks do not use the result backend's own write (``ignore_result``): writing
    the django-celery-results row here keeps it consistent with the job and saves a
    commit per job. Attempts that never reached a worker's end (lost, snoozed) have none.
    """
    started_at = job.started_at
    attempt = JobAttempt.objects.create(
        job_id=job.id, number=job.attempt, outcome=outcome, started_at=started_at, finished_at=finished_at,
        duration_ms=duration_ms(started_at, finished_at), worker=job.worker, celery_task_id=job.celery_task_id,
        error_code=error_code, error_message=error_message, error_traceback=error_traceback,
        retry_delay_ms=retry_delay_ms,
    )  # fmt: skip
    celery_state = CELERY_STATE_FOR_OUTCOME.get(outcome)
    if celery_state and job.celery_task_id:
        summary: dict[str, Any] = {"job_id": job.id, "attempt": job.attempt, "outcome": outcome}
        if error_code:
            summary["error"] = error_code
        fields = {
            "task_name": job.type, "status": celery_state, "result": json.dumps(summary),
            "content_type": "application/json", "content_encoding": "utf-8", "worker": job.worker or None,
            "date_started": started_at, "date_done": finished_at, "traceback": error_traceback or None,
            "task_kwargs": json.dumps({"job_id": job.id, "attempt": job.attempt}),
        }  # fmt: skip
        # One INSERT ... ON CONFLICT DO UPDATE: an upsert without a read first.
        TaskResult.objects.bulk_create(
            [TaskResult(task_id=job.celery_task_id, **fields)],
            update_conflicts=True, unique_fields=["task_id"], update_fields=list(fields),
        )  # fmt: skip
    return attempt
