"""Running a job inside a worker: the ``@job_type`` decorator, the job context, and state recording.

A domain job is a plain function ``handler(ctx, payload)``. The decorator turns it into
a Celery task named after the job type. The task message carries only the job id, the
attempt number and the message schema version; the payload lives in the database.
"""

from __future__ import annotations

import json
import logging
import time
import traceback
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import DatabaseError, transaction
from django.utils import timezone

from . import registry
from .context import JobLogContext, correlation_scope, job_scope
from .dbresilience import execute_or_requeue, run_with_fresh_connection
from .exceptions import JobCancelled, JobsError, JobSnoozed, UnsupportedMessageVersion
from .models import Job, JobAttempt, JobLogLine
from .registry import JobHandler, JobType
from .retry import DEFAULT_FAIL_ON, DEFAULT_RETRY_ON, Backoff, RetryPolicy
from .services import (
    SUPPORTED_MESSAGE_VERSIONS,
    _publish_on_commit,
    job_finish_succeeded,
    job_record_attempt,
    job_start_attempt,
    job_transition,
    job_type_is_enabled,
)

logger = logging.getLogger("jobs.run")
S = Job.Status

# How often a job's progress may be written, at most (seconds).
PROGRESS_MIN_INTERVAL = 0.5
# How long a "type is switched on" answer is trusted inside a worker (seconds).
SWITCH_CACHE_SECONDS = 5.0


def job_type(
    name: str,
    *,
    queue: str = "default",
    max_attempts: int = 5,
    backoff: Backoff | None = None,
    retry_on: Sequence[type[BaseException]] = (),
    fail_on: Sequence[type[BaseException]] = (),
    soft_time_limit: int | None = None,
    time_limit: int | None = None,
    api_schema: dict | None = None,
    api_staff_only: bool = False,
    singleton: bool = False,
    description: str = "",
    on_give_up: Callable[[dict, str, str], None] | None = None,
) -> Callable[[JobHandler], JobHandler]:
    """Declare a job type. The decorated ``handler(ctx, payload)`` runs once per attempt.

    ``retry_on`` / ``fail_on`` add to the defaults (timeouts, connection errors and
    TransientJobError retry; PermanentJobError fails at once). Any other exception fails
    the job at once: retrying is opt-in, so a bug never runs five times.
    """
    if queue not in settings.JOB_QUEUES:
        raise ValueError(f"job type {name!r}: queue {queue!r} is not one of {settings.JOB_QUEUES}")

    def decorator(handler: JobHandler) -> JobHandler:
        spec = JobType(
            name=name,
            handler=handler,
            queue=queue,
            retry=RetryPolicy(
                max_attempts=max_attempts,
                backoff=backoff or Backoff(),
                retry_on=DEFAULT_RETRY_ON + tuple(retry_on),
                fail_on=DEFAULT_FAIL_ON + tuple(fail_on),
            ),
            soft_time_limit=soft_time_limit,
            time_limit=time_limit,
            api_schema=api_schema,
            api_staff_only=api_staff_only,
            singleton=singleton,
            description=description or (handler.__doc__ or "").strip().split("\n")[0],
            on_give_up=on_give_up,
        )
        registry.register(spec)

        def run(
            task,
            job_id: str | None = None,
            attempt: int | None = None,
            schema_version: int | None = None,
            **newer_fields,
        ):
            # Unknown keyword fields come from newer publishers: ignored on purpose.
            # A database error before the body started retries the message instead of consuming it.
            return execute_or_requeue(task, lambda: execute(task=task, spec=spec, job_id=job_id, attempt=attempt,
                                                            schema_version=schema_version))  # fmt: skip

        run.__name__ = handler.__name__
        run.__doc__ = handler.__doc__
        # ignore_result: the result row is written with the job's own state (job_record_attempt).
        task_options: dict[str, Any] = {"name": name, "bind": True, "queue": queue, "ignore_result": True}
        if soft_time_limit:
            task_options["soft_time_limit"] = soft_time_limit
        if time_limit:
            task_options["time_limit"] = time_limit
        handler.task = shared_task(**task_options)(run)
        handler.job_type = spec
        return handler

    return decorator


class _JobLog:
    """The job's logger: lines go to normal logging and, bounded, to the job's stored log."""

    def __init__(self, *, job: Job, max_lines: int):
        self._job = job
        self._logger = logging.getLogger(f"jobs.job.{job.type}")
        self._max_lines = max_lines
        self._pending: list[JobLogLine] = []
        self._kept = 0
        self._dropped = 0

    def _emit(self, level: int, message: str, *args, exc_info=False) -> None:
        self._logger.log(level, message, *args, exc_info=exc_info)
        text = message % args if args else message
        if exc_info:
            text += "\n" + traceback.format_exc()
        if self._kept < self._max_lines:
            self._kept += 1
            self._pending.append(
                JobLogLine(
                    job_id=self._job.id,
                    attempt=self._job.attempt,
                    logged_at=timezone.now(),
                    level=logging.getLevelName(level),
                    message=text[:10_000],
                )  # fmt: skip
            )
        else:
            self._dropped += 1

    def debug(self, message: str, *args) -> None:
        self._emit(logging.DEBUG, message, *args)

    def info(self, message: str, *args) -> None:
        self._emit(logging.INFO, message, *args)

    def warning(self, message: str, *args) -> None:
        self._emit(logging.WARNING, message, *args)

    def error(self, message: str, *args) -> None:
        self._emit(logging.ERROR, message, *args)

    def exception(self, message: str, *args) -> None:
        self._emit(logging.ERROR, message, *args, exc_info=True)

    def flush(self) -> None:
        if self._dropped:
            self._pending.append(
                JobLogLine(
                    job_id=self._job.id,
                    attempt=self._job.attempt,
                    logged_at=timezone.now(),
                    level="WARNING",
                    message=f"{self._dropped} more log line(s) of this attempt were not kept (limit {self._max_lines})",
                )  # fmt: skip
            )
            self._dropped = 0
        if self._pending:
            lines, self._pending = self._pending, []
            JobLogLine.objects.bulk_create(lines)


class JobContext:
    """What a running job may know and do: its ids, payload, progress, log, cancellation."""

    def __init__(self, *, job: Job, spec: JobType):
        self.job = job
        self.spec = spec
        self.log = _JobLog(job=job, max_lines=getattr(settings, "JOBS_LOG_MAX_LINES", 200))
        self._last_progress_write = 0.0

    @property
    def job_id(self) -> str:
        return self.job.id

    @property
    def attempt(self) -> int:
        return self.job.attempt

    @property
    def correlation_id(self) -> str:
        return self.job.correlation_id

    def progress(self, percent: float, message: str = "", *, force: bool = False) -> None:
        """Report progress (0-100) with a short message. Writes are throttled; checks cancellation."""
        percent = int(max(0, min(100, percent)))
        now = time.monotonic()
        if not force and percent < 100 and now - self._last_progress_write < PROGRESS_MIN_INTERVAL:
            return
        self._last_progress_write = now
        _tracking_write(
            lambda: Job.objects.filter(id=self.job.id, status=S.RUNNING).update(
                progress=percent, progress_message=message[:255], updated_at=timezone.now()
            ),
            what="progress",
        )
        self.job.progress, self.job.progress_message = percent, message[:255]
        _tracking_write(self.log.flush, what="log lines")
        self.raise_if_cancelled()

    def raise_if_cancelled(self) -> None:
        """Raise JobCancelled if someone asked this job to stop. Call it at safe points."""
        if Job.objects.filter(id=self.job.id, cancel_requested=True).exists():
            raise JobCancelled(f"job {self.job.id} was asked to stop")


def _tracking_write(write: Callable[[], Any], *, what: str, tries: int = 3) -> bool:
    """Run a bookkeeping write; a database hiccup must not fail the job itself."""
    for attempt in range(1, tries + 1):
        try:
            run_with_fresh_connection(write)  # a broken connection is replaced, not retried as is
            return True
        except DatabaseError:
            if attempt == tries:
                logger.exception("could not record %s after %d tries; the reaper will reconcile the job", what, tries)
                return False
            time.sleep(0.2 * attempt)
    return False


_switch_cache: dict[str, float] = {}


def _type_enabled_cached(job_type: str) -> bool:
    # Only "on" is cached (switching off takes effect within SWITCH_CACHE_SECONDS); "off"
    # is always re-read, so a job is never shelved on a stale answer.
    now = time.monotonic()
    cached_at = _switch_cache.get(job_type)
    if cached_at is not None and now - cached_at < SWITCH_CACHE_SECONDS:
        return True
    enabled = job_type_is_enabled(job_type=job_type)
    if enabled:
        _switch_cache[job_type] = now
    else:
        _switch_cache.pop(job_type, None)
    return enabled


def _error_code(error: BaseException) -> str:
    if isinstance(error, SoftTimeLimitExceeded):
        return "time_limit_exceeded"
    if isinstance(error, JobsError):
        return error.code
    return error.__class__.__name__


def _json_result(value: Any) -> Any:
    if value is None:
        return None
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        return {"repr": repr(value)[:1000], "note": "the job returned a value that is not JSON; only its repr is kept"}


def execute(*, task, spec: JobType, job_id: str | None, attempt: int | None, schema_version: int | None) -> dict:
    """Run one delivery of a job message. Returns a small summary stored as the Celery result."""
    if not job_id or not attempt:
        logger.error("message for %s without job_id/attempt (got %r, %r): dropped", spec.name, job_id, attempt)
        return {"skipped": "malformed message"}
    if schema_version not in SUPPORTED_MESSAGE_VERSIONS:
        return _fail_unsupported_version(job_id, schema_version)
    if not _type_enabled_cached(spec.name):
        # Leave it queued and unpublished: the relay sends it once the type is switched on.
        Job.objects.filter(id=job_id, status__in=[S.QUEUED, S.RETRYING], attempt=attempt - 1).update(published_at=None)
        logger.info("job type %s is switched off; job %s waits", spec.name, job_id)
        return {"job_id": job_id, "skipped": "type switched off"}
    job = job_start_attempt(
        job_id=job_id, attempt=attempt, worker=getattr(task.request, "hostname", "") or "",
        celery_task_id=task.request.id or "",
    )  # fmt: skip
    if job is None:
        if not Job.objects.filter(id=job_id).exists():
            logger.warning("message for unknown job %s (pruned or never committed): dropped", job_id)
            return {"job_id": job_id, "skipped": "unknown job"}
        # A duplicate or stale delivery (the broker redelivered, the relay re-published):
        # someone else runs or ran this attempt.
        logger.info("job %s attempt %s is not due (duplicate or stale message): skipped", job_id, attempt)
        return {"job_id": job_id, "skipped": "duplicate or stale delivery"}
    with correlation_scope(job.correlation_id):
        with job_scope(JobLogContext(job_id=job.id, job_type=job.type, queue=job.queue, attempt=attempt)):
            return _run_attempt(job=job, spec=spec)


def _run_attempt(*, job: Job, spec: JobType) -> dict:
    ctx = JobContext(job=job, spec=spec)
    started = time.monotonic()
    try:
        value = _run_handler(ctx, spec)
    except JobCancelled as error:
        outcome = _finish(job, ctx, to_status=S.CANCELLED, attempt_outcome=JobAttempt.Outcome.CANCELLED, error=error)
    except JobSnoozed as error:
        outcome = _snooze(job, ctx, error)
    except BaseException as error:  # noqa: BLE001 - every failure is recorded, then classified
        if not isinstance(error, Exception) and not isinstance(error, SoftTimeLimitExceeded):
            raise  # KeyboardInterrupt / SystemExit: let the worker die; the reaper rescues the job
        outcome = _fail(job, ctx, spec, error)
    else:
        outcome = _finish(
            job, ctx, to_status=S.SUCCEEDED, attempt_outcome=JobAttempt.Outcome.SUCCEEDED, result=_json_result(value)
        )
    duration_ms = int((time.monotonic() - started) * 1000)
    logger.info(
        "job %s finished attempt %s: %s",
        job.id,
        job.attempt,
        outcome,
        extra={"duration_ms": duration_ms, "outcome": outcome},
    )
    return {"job_id": job.id, "attempt": job.attempt, "outcome": outcome}


def _run_handler(ctx: JobContext, spec: JobType) -> Any:
    if not spec.singleton:
        return spec.handler(ctx, ctx.job.payload)
    from .locks import RedisLock

    lock = RedisLock(name=f"singleton:{spec.name}", ttl=spec.effective_time_limit + 60)
    if not lock.acquire(blocking=False):
        raise _SingletonBusy(f"another run of singleton job type {spec.name!r} is in progress; this run was skipped")
    try:
        return spec.handler(ctx, ctx.job.payload)
    finally:
        lock.release()


class _SingletonBusy(JobsError):
    code = "singleton_running"


def _finish(job: Job, ctx: JobContext, *, to_status: str, attempt_outcome: str, result=None, error=None) -> str:
    now = timezone.now()
    if to_status == S.SUCCEEDED:

        def write() -> None:
            job_finish_succeeded(job=job, finished_at=now, result=result)
            ctx.log.flush()

        _tracking_write(write, what="succeeded state")
        return to_status
    fields: dict[str, Any] = {"finished_at": now}
    if error is not None:
        fields.update(error_code=_error_code(error), error_message=str(error)[:5000])

    def write() -> None:
        with transaction.atomic():
            if job_transition(job_id=job.id, from_statuses=[S.RUNNING], to_status=to_status, **fields):
                job_record_attempt(
                    job=job, outcome=attempt_outcome, finished_at=now, error_code=fields.get("error_code", ""),
                    error_message=fields.get("error_message", ""),
                )  # fmt: skip
            ctx.log.flush()

    _tracking_write(write, what=f"{to_status} state")
    return to_status


def _snooze(job: Job, ctx: JobContext, error: JobSnoozed) -> str:
    """Postpone without spending an attempt (rate limit, busy singleton)."""
    now = timezone.now()
    wait = max(0.05, float(error.wait_seconds))

    def write() -> None:
        with transaction.atomic():
            if job_transition(
                job_id=job.id, from_statuses=[S.RUNNING], to_status=S.QUEUED, attempt=job.attempt - 1,
                next_retry_at=now + timedelta(seconds=wait), published_at=None,
            ):  # fmt: skip
                job_record_attempt(
                    job=job, outcome=JobAttempt.Outcome.SNOOZED, finished_at=now, error_code=_error_code(error),
                    error_message=str(error)[:5000],
                )  # fmt: skip
                job.attempt -= 1
                _publish_on_commit([job], countdown=wait)
            ctx.log.flush()

    _tracking_write(write, what="snooze")
    return "snoozed"


def _fail(job: Job, ctx: JobContext, spec: JobType, error: BaseException) -> str:
    now = timezone.now()
    if isinstance(error, _SingletonBusy):
        # Another run of this singleton holds the lock: recorded as skipped, not retried.
        return _finish(job, ctx, to_status=S.CANCELLED, attempt_outcome=JobAttempt.Outcome.SKIPPED, error=error)
    retryable = spec.retry.is_retryable(error)
    exhausted = job.attempt >= job.max_attempts
    code, message = _error_code(error), str(error)[:5000] or error.__class__.__name__
    trace = "".join(traceback.format_exception(error))[-20_000:]
    ctx.log._emit(logging.ERROR, "attempt %s failed: %s: %s", job.attempt, code, message)
    if retryable and not exhausted:
        delay = spec.retry.backoff.delay(job.attempt)
        to_status, attempt_outcome = S.RETRYING, JobAttempt.Outcome.RETRY
        fields = {"next_retry_at": now + timedelta(seconds=delay), "published_at": None}
    else:
        delay = None
        to_status = S.DEAD if retryable else S.FAILED
        attempt_outcome = JobAttempt.Outcome.DEAD if retryable else JobAttempt.Outcome.FAILED
        fields = {"finished_at": now}

    def write() -> None:
        with transaction.atomic():
            if job_transition(
                job_id=job.id, from_statuses=[S.RUNNING], to_status=to_status, error_code=code,
                error_message=message, error_traceback=trace, **fields,
            ):  # fmt: skip
                job_record_attempt(
                    job=job, outcome=attempt_outcome, finished_at=now, error_code=code, error_message=message,
                    error_traceback=trace, retry_delay_ms=int(delay * 1000) if delay is not None else None,
                )  # fmt: skip
                if delay is not None:
                    _publish_on_commit([job], countdown=delay)
            ctx.log.flush()

    _tracking_write(write, what=f"{to_status} state")
    if delay is not None:
        logger.warning("job %s attempt %s failed (%s), retry in %.1fs", job.id, job.attempt, code, delay)
    else:
        logger.error("job %s attempt %s failed (%s): %s", job.id, job.attempt, code, to_status)
        run_give_up_hook(spec, job.payload, code, message)
    return to_status


def run_give_up_hook(spec: JobType, payload: dict, error_code: str, error_message: str) -> None:
    """Tell the domain a job gave up; a failing hook is logged, never raised into the worker."""
    if spec.on_give_up is None:
        return
    try:
        spec.on_give_up(payload, error_code, error_message)
    except Exception:
        logger.exception("on_give_up hook of %s failed", spec.name)


def _fail_unsupported_version(job_id: str, version) -> dict:
    error = UnsupportedMessageVersion(
        f"message schema version {version!r} is not supported by this worker "
        f"(supported: {sorted(SUPPORTED_MESSAGE_VERSIONS)}); deploy a worker that knows it, then retry the job"
    )
    now = timezone.now()
    job_transition(
        job_id=job_id, from_statuses=[S.QUEUED, S.RETRYING], to_status=S.FAILED, finished_at=now,
        error_code=error.code, error_message=error.message,
    )  # fmt: skip
    logger.error("job %s: %s", job_id, error.message)
    return {"job_id": job_id, "outcome": S.FAILED, "error": error.code}
