"""The platform's errors: one base, small named subclasses.

Every message says what failed and what was expected; ``retryable`` says whether
trying the same thing again can succeed.
"""

from __future__ import annotations

from typing import Any


class JobsError(Exception):
    """Base of every error raised by the jobs platform."""

    code = "jobs_error"
    retryable = False

    def __init__(self, message: str, *, detail: dict[str, Any] | None = None):
        super().__init__(message)
        self.message = message
        self.detail = detail or {}


class TransientJobError(JobsError):
    """Raise from a job to say: this attempt failed for a passing reason, retry it."""

    code = "transient_error"
    retryable = True


class PermanentJobError(JobsError):
    """Raise from a job to say: this will fail the same way every time, do not retry."""

    code = "permanent_error"
    retryable = False


class JobCancelled(JobsError):
    """Raised inside a running job when an operator or owner asked it to stop."""

    code = "cancelled"


class JobNotFound(JobsError):
    code = "job_not_found"


class IllegalTransition(JobsError):
    """A state change the job lifecycle does not allow (for example succeeded -> running)."""

    code = "illegal_transition"


class UnknownJobType(JobsError):
    code = "unknown_job_type"


class JobTypeDisabled(JobsError):
    """The job type is switched off by configuration or in the admin."""

    code = "job_type_disabled"
    retryable = True


class PayloadInvalid(JobsError):
    """The payload does not match the job type's declared schema; ``detail['errors']`` names each field."""

    code = "invalid_payload"


class ScheduleInvalid(JobsError, ValueError):
    """A due time that cannot be used (naive, too far ahead, both ``run_at`` and ``delay``); ``detail['field']`` names it."""

    code = "invalid_schedule"


class IdempotencyKeyConflict(JobsError):
    """The idempotency key was already used for this job type with a different payload."""

    code = "idempotency_key_conflict"


class UnsupportedMessageVersion(PermanentJobError):
    """A worker received a message schema version it does not know."""

    code = "unsupported_message_version"


class PublishFailed(JobsError):
    """The broker did not take the message; the job row is kept and the relay re-publishes it."""

    code = "publish_failed"
    retryable = True


class JobSnoozed(JobsError):
    """Raise from a job to postpone it by ``wait_seconds`` without spending an attempt."""

    code = "snoozed"
    retryable = True

    def __init__(self, message: str, *, wait_seconds: float, detail: dict[str, Any] | None = None):
        super().__init__(message, detail=detail)
        self.wait_seconds = wait_seconds


class LockNotAcquired(JobsError):
    """Another process holds the lock."""

    code = "lock_not_acquired"
    retryable = True


class RateLimited(JobSnoozed):
    """A downstream's shared rate limit has no slot free for ``wait_seconds``.

    Raised from a job, the platform postpones the job by that long without spending an attempt.
    """

    code = "rate_limited"


class UnknownRateLimit(JobsError):
    code = "unknown_rate_limit"


class UnknownSchedule(JobsError):
    code = "unknown_schedule"
