"""Running one delivery of a job message inside a worker: claim the attempt, run the handler, record how it ended.

Which state follows an outcome is decided by ``jobs.core.lifecycle``; this module only maps what
the handler did (returned, raised, asked to snooze or stopped on request) to one of its calls.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.utils import timezone

from jobs.coordination.locks import RedisLock
from jobs.core import lifecycle
from jobs.core.completions import completion_forget, completion_record
from jobs.core.job_context import JobContext, tracking_write
from jobs.core.lifecycle import Failure
from jobs.core.publisher import SUPPORTED_MESSAGE_VERSIONS, can_skip_flush_wait
from jobs.core.registry import JobType
from jobs.core.switches import job_type_is_enabled_cached
from jobs.foundation import metrics
from jobs.foundation.context import JobLogContext, correlation_scope, job_scope
from jobs.foundation.exceptions import JobCancelled, JobsError, JobSnoozed, UnsupportedMessageVersion
from jobs.models import Job, JobAttempt
from jobs.worker import concurrency, leases, success_batch

logger = logging.getLogger("jobs.run")
S = Job.Status
Outcome = JobAttempt.Outcome

# What a delivery reports when the job was postponed (the job itself is ``queued`` again).
SNOOZED = Outcome.SNOOZED.value


def execute(
    *, task: Any, spec: JobType, job_id: str | None, attempt: int | None, schema_version: int | None
) -> dict[str, Any]:
    """Run one delivery of a job message. Returns a small summary stored as the Celery result."""
    if not job_id or not attempt:
        logger.error("message for %s without job_id/attempt (got %r, %r): dropped", spec.name, job_id, attempt)
        return {"skipped": "malformed message"}
    if schema_version not in SUPPORTED_MESSAGE_VERSIONS:
        return _fail_unsupported_version(job_id, schema_version)
    if not job_type_is_enabled_cached(spec.name):
        # Leave it queued and unpublished: the relay sends it once the type is switched on.
        lifecycle.job_wait_for_switch(job_id=job_id, attempt=attempt)
        logger.info("job type %s is switched off; job %s waits", spec.name, job_id)
        return {"job_id": job_id, "skipped": "type switched off"}
    worker, celery_task_id = getattr(task.request, "hostname", "") or "", task.request.id or ""
    if spec.limited:
        claimed = concurrency.concurrency_claim(spec=spec, job_id=job_id, attempt=attempt, worker=worker,
                                                celery_task_id=celery_task_id)  # fmt: skip
        if isinstance(claimed, concurrency.OverLimit):
            # No attempt spent, no process held: the job waits, unpublished, until a slot frees.
            logger.info("job %s waits for a slot of %s: %d of %d running%s", job_id, spec.name, claimed.running,
                        claimed.limit, f" for key {claimed.key!r}" if claimed.key is not None else "")  # fmt: skip
            return {"job_id": job_id, "skipped": "over its concurrency limit"}
        job = claimed
    else:
        job = lifecycle.job_start_attempt(job_id=job_id, attempt=attempt, worker=worker, celery_task_id=celery_task_id)
    if job is None:
        if not Job.objects.filter(id=job_id).exists():
            logger.warning("message for unknown job %s (pruned or never committed): dropped", job_id)
            return {"job_id": job_id, "skipped": "unknown job"}
        # A duplicate or stale delivery (the broker redelivered, the relay re-published):
        # someone else runs or ran this attempt.
        logger.info("job %s attempt %s is not due (duplicate or stale message): skipped", job_id, attempt)
        return {"job_id": job_id, "skipped": "duplicate or stale delivery"}
    metrics.attempt_started(job=job, eta=getattr(task.request, "eta", None))
    try:
        with correlation_scope(job.correlation_id), leases.keeper.hold(job_id=job.id, attempt=job.attempt):
            with job_scope(JobLogContext(job_id=job.id, job_type=job.type, queue=job.queue, attempt=attempt)):
                return _run_attempt(job=job, spec=spec)
    finally:
        if spec.limited:
            # Its slot is free (its outcome is written: limited types never batch their success).
            concurrency.concurrency_release(spec=spec)


def _run_attempt(*, job: Job, spec: JobType) -> dict[str, Any]:
    ctx = JobContext(job=job)
    started = time.monotonic()
    try:
        value = _run_handler(ctx, spec)
    except JobCancelled as error:
        outcome = _stop(job, ctx, Outcome.CANCELLED, error)
    except JobSnoozed as error:
        outcome = _snooze(job, ctx, error)
    except BaseException as error:  # noqa: BLE001 - every failure is recorded, then classified
        if not isinstance(error, Exception) and not isinstance(error, SoftTimeLimitExceeded):
            raise  # KeyboardInterrupt / SystemExit: let the worker die; the reaper rescues the job
        outcome = _fail(job, ctx, spec, error)
    else:
        outcome = _succeed(job, ctx, _json_result(value), batch=not spec.limited)
    duration_ms = int((time.monotonic() - started) * 1000)
    extra = {"duration_ms": duration_ms, "outcome": outcome}
    logger.info("job %s finished attempt %s: %s", job.id, job.attempt, outcome, extra=extra)
    return {"job_id": job.id, "attempt": job.attempt, "outcome": outcome}


def _run_handler(ctx: JobContext, spec: JobType) -> Any:
    if not spec.singleton:
        return spec.handler(ctx, ctx.job.payload)
    lock = RedisLock(name=f"singleton:{spec.name}", ttl=spec.effective_time_limit + 60)
    if not lock.acquire(blocking=False):
        raise _SingletonBusy(f"another run of singleton job type {spec.name!r} is in progress; this run was skipped")
    try:
        return spec.handler(ctx, ctx.job.payload)
    finally:
        lock.release()


class _SingletonBusy(JobsError):
    code = "singleton_running"


def _json_result(value: Any) -> Any:
    if value is None:
        return None
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        return {"repr": repr(value)[:1000], "note": "the job returned a value that is not JSON; only its repr is kept"}


def _succeed(job: Job, ctx: JobContext, result: Any, *, batch: bool = True) -> str:
    now = timezone.now()
    # Where it survives a failed database write: the reaper then finishes the job instead of re-running it.
    recorded = completion_record(job_id=job.id, attempt=job.attempt, result=result, finished_at=now)
    # With the completion in Redis the success need not wait for the WAL flush (~3 ms a job on a
    # plain disk): if a database crash forgets it, the reaper or the relay finishes the job from
    # the record. The record then stays until the pruner sees the success in the database.
    durable = not recorded or bool(getattr(settings, "JOBS_DURABLE_SUCCESS", False)) or not can_skip_flush_wait()
    if not durable and batch and success_batch.writer.enabled:
        # The writer thread records the success within JOBS_SUCCESS_BATCH_MS, batched with this
        # process' other successes; the log lines go first, so they are in before it reads succeeded.
        if not ctx.log.unwritten or tracking_write(ctx.log.flush, what="log lines"):
            success_batch.writer.add(success_batch.PendingSuccess(job=job, finished_at=now, result=result))
        return S.SUCCEEDED
    written = tracking_write(
        lambda: lifecycle.job_succeed(
            job=job, finished_at=now, result=result, extra_writes=ctx.log.flush, durable=durable
        ),
        what="succeeded state",
    )
    if written and recorded and durable:
        completion_forget(job_id=job.id)
    return S.SUCCEEDED


def _stop(job: Job, ctx: JobContext, outcome: str, error: BaseException) -> str:
    failure = Failure.from_error(error, keep_empty_message=True)
    tracking_write(
        lambda: lifecycle.job_stop_attempt(job=job, outcome=outcome, failure=failure, extra_writes=ctx.log.flush),
        what="cancelled state",
    )
    return S.CANCELLED


def _snooze(job: Job, ctx: JobContext, error: JobSnoozed) -> str:
    """Postpone without spending an attempt (rate limit, busy resource)."""
    wait = max(0.05, float(error.wait_seconds))
    failure = Failure.from_error(error, keep_empty_message=True)
    tracking_write(
        lambda: lifecycle.job_snooze(job=job, wait_seconds=wait, failure=failure, extra_writes=ctx.log.flush),
        what="snooze",
    )
    return SNOOZED


def _fail(job: Job, ctx: JobContext, spec: JobType, error: BaseException) -> str:
    if isinstance(error, _SingletonBusy):
        # Another run of this singleton holds the lock: recorded as skipped, not retried.
        return _stop(job, ctx, Outcome.SKIPPED, error)
    failure = Failure.from_error(error, with_traceback=True)
    retryable = spec.retry.is_retryable(error)
    # A failure that will be retried is a WARNING; only the attempt that gives up is an ERROR.
    level = logging.WARNING if retryable and job.attempt < job.max_attempts else logging.ERROR
    ctx.log.emit(level, "attempt %s failed: %s: %s", job.attempt, failure.code, failure.message)
    status: str = S.FAILED

    def write() -> None:
        nonlocal status
        status = lifecycle.job_fail_attempt(
            job=job, spec=spec, failure=failure, retryable=retryable, extra_writes=ctx.log.flush
        )

    tracking_write(write, what="failed state")
    if status == S.RETRYING:
        logger.warning("job %s attempt %s failed (%s), will retry", job.id, job.attempt, failure.code)
    else:
        logger.error("job %s attempt %s failed (%s): %s", job.id, job.attempt, failure.code, status)
    return status


def _fail_unsupported_version(job_id: str, version: object) -> dict[str, Any]:
    error = UnsupportedMessageVersion(
        f"message schema version {version!r} is not supported by this worker "
        f"(supported: {sorted(SUPPORTED_MESSAGE_VERSIONS)}); deploy a worker that knows it, then retry the job"
    )
    lifecycle.job_fail_undeliverable(job_id=job_id, failure=Failure(code=error.code, message=error.message))
    logger.error("job %s: %s", job_id, error.message)
    return {"job_id": job_id, "outcome": S.FAILED, "error": error.code}
