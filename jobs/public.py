"""The jobs platform's public API for domain apps. Import from here, never from other ``jobs.*`` modules.

    from jobs.public import JobContext, job_enqueue, job_type

    @job_type("exports.build", queue="exports", max_attempts=5)
    def build(ctx: JobContext, payload: dict) -> dict:
        return export_build(export_id=payload["export_id"], progress=ctx.progress)

    job_enqueue(job_type="exports.build", payload={"export_id": export.id}, owner=user)

What is here, by concern:

- declaring and running jobs: ``job_type``, ``JobContext``, ``Backoff``;
- enqueueing and reading: ``job_enqueue``, ``job_bulk_enqueue`` (both take ``run_at`` / ``delay`` for a job
  that runs later), ``job_cancel``, ``job_get``, ``EnqueueResult``, ``job_type_is_declared``;
- outcomes a handler raises: ``TransientJobError`` (retry), ``PermanentJobError`` (fail now),
  ``JobSnoozed`` (postpone, no attempt spent), ``JobCancelled``, ``RateLimited``;
- errors a caller may catch: ``JobsError`` (the base), ``JobTypeDisabled``, ``PayloadInvalid``,
  ``IdempotencyKeyConflict``, ``LockNotAcquired``, ``UnknownJobType``, ``ScheduleInvalid`` (a naive or too
  distant ``run_at``);
- coordination: ``RedisLock``, ``RateLimiter``, ``parse_retry_after``;
- schedules: ``schedule_declare`` (with Celery's ``crontab`` or a number of seconds);
- operations: ``dead_letter_summary`` (``DeadLetterSummary``: the dead-letter queue's size per type),
  ``job_audit_record`` (an operator action a domain admin performed, into the jobs audit trail);
- HTTP: ``api_view``, ``ApiError`` (the one JSON error shape), ``api_authenticate`` (bearer token or
  session + CSRF, as /api/jobs), ``api_parse_json_object``, ``api_idempotency_key`` (the header, parsed),
  ``api_query_int`` / ``api_query_choice`` (query parameters read and refused as /api/jobs does),
  ``strict_json_loads`` / ``JsonRefused`` (bodies refused the way the API refuses them),
  ``schema_validate`` (JSON Schema 2020-12, field errors), ``openapi_path_add`` / ``openapi_register_paths``
  (an app's paths in /api/openapi.json) with ``openapi_error_responses(*statuses)`` (the shared error
  responses, 500 included);
- reads for exports of platform data: ``job_list_for`` (the jobs a user may see), ``user_sees_all_jobs``
  (holds the ``jobs.view_job`` permission: every user's jobs), ``job_error_message_visible_to`` (a job's
  error text as that user may read it: an unexpected exception's only for operators), ``audit_entry_list``;
- migrations: ``AddIndexConcurrently``, ``RemoveIndexConcurrently``, ``AddConstraintConcurrently``,
  ``RemoveConstraintConcurrently`` (``CONCURRENTLY`` on PostgreSQL, plain on SQLite; see CONTRIBUTING.md);
- admin: ``ViewOnlyAdmin`` (records nobody edits by hand), loaded lazily so that importing
  this module never pulls in ``django.contrib.admin``; ``job_admin_hooks_register`` (per job type: the
  ``AdminLink`` to the record a job works on, shown on its page, and ``ReplayAdvice`` shown before a replay
  is confirmed), so the jobs admin links to domain records without knowing them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from jobs.api.auth import authenticate as api_authenticate
from jobs.api.http import ApiError, JsonRefused, api_view, strict_json_loads
from jobs.api.http import parse_json_object as api_parse_json_object
from jobs.api.openapi import _errors as openapi_error_responses
from jobs.api.openapi import openapi_path_add
from jobs.api.openapi import register_paths as openapi_register_paths
from jobs.coordination.locks import RedisLock
from jobs.coordination.ratelimit import RateLimiter, parse_retry_after
from jobs.core.admin_hooks import AdminLink, ReplayAdvice
from jobs.core.admin_hooks import register as job_admin_hooks_register
from jobs.core.audit import audit_record as job_audit_record
from jobs.core.job_context import JobContext
from jobs.core.lifecycle import job_cancel
from jobs.core.permissions import user_sees_all_jobs
from jobs.core.registry import is_declared as job_type_is_declared
from jobs.core.retry import Backoff
from jobs.core.schema import validate as schema_validate
from jobs.delivery.enqueue import EnqueueResult, job_bulk_enqueue, job_enqueue
from jobs.delivery.schedules import declare as schedule_declare
from jobs.foundation.exceptions import (
    IdempotencyKeyConflict,
    JobCancelled,
    JobsError,
    JobSnoozed,
    JobTypeDisabled,
    LockNotAcquired,
    PayloadInvalid,
    PermanentJobError,
    RateLimited,
    ScheduleInvalid,
    TransientJobError,
    UnknownJobType,
)
from jobs.foundation.schema_operations import (
    AddConstraintConcurrently,
    AddIndexConcurrently,
    RemoveConstraintConcurrently,
    RemoveIndexConcurrently,
)
from jobs.ops.selectors import (
    DeadLetterSummary,
    dead_letter_summary,
    job_error_message_visible_to,
    job_get,
    job_list_for,
)
from jobs.worker.decorator import job_type

if TYPE_CHECKING:
    from django.db.models import QuerySet
    from django.http import HttpRequest

    from jobs.admin.bases import ViewOnlyAdmin
    from jobs.models import JobAuditEntry


def api_idempotency_key(request: HttpRequest) -> str | None:
    """The request's ``Idempotency-Key`` (quoted or bare), None when absent; a malformed one raises a 422 ApiError."""
    from jobs.api.views import _idempotency_key

    return _idempotency_key(request)


def api_query_int(
    request: HttpRequest, name: str, *, default: int, minimum: int = 1, maximum: int | None = None
) -> int:
    """A whole-number query parameter as /api/jobs reads it: ``default`` when absent; empty, not a number or
    outside ``minimum``..``maximum`` raises a 422 ApiError (``invalid_parameter``)."""
    from jobs.api.http import BIGINT_MAX
    from jobs.api.views import _int_parameter

    return _int_parameter(request.GET, name, default=default, minimum=minimum,
                          maximum=BIGINT_MAX if maximum is None else maximum)  # fmt: skip


def api_query_choice(request: HttpRequest, name: str, *, allowed: list[str]) -> str | None:
    """A query parameter that must be one of ``allowed``, as /api/jobs reads it: None when absent; empty or
    anything else raises a 422 ApiError (``invalid_parameter``)."""
    from jobs.api.views import _choice_parameter

    return _choice_parameter(request.GET, name, allowed=allowed)


def audit_entry_list() -> QuerySet[JobAuditEntry]:
    """Operator audit entries (who did what to which jobs), oldest first. Staff data: callers check who asks."""
    from jobs.models import JobAuditEntry

    return JobAuditEntry.objects.order_by("created_at", "id")


def __getattr__(name: str) -> Any:
    # The admin base imports django.contrib.admin; only admin modules need it.
    if name == "ViewOnlyAdmin":
        from jobs.admin.bases import ViewOnlyAdmin

        return ViewOnlyAdmin
    raise AttributeError(f"module 'jobs.public' has no attribute {name!r}")


__all__ = [
    "AddConstraintConcurrently",
    "AddIndexConcurrently",
    "AdminLink",
    "ApiError",
    "Backoff",
    "DeadLetterSummary",
    "EnqueueResult",
    "IdempotencyKeyConflict",
    "JobCancelled",
    "JobContext",
    "JobSnoozed",
    "JobTypeDisabled",
    "JobsError",
    "JsonRefused",
    "LockNotAcquired",
    "PayloadInvalid",
    "PermanentJobError",
    "RateLimited",
    "RateLimiter",
    "RedisLock",
    "RemoveConstraintConcurrently",
    "RemoveIndexConcurrently",
    "ReplayAdvice",
    "ScheduleInvalid",
    "TransientJobError",
    "UnknownJobType",
    "ViewOnlyAdmin",
    "api_authenticate",
    "api_idempotency_key",
    "api_parse_json_object",
    "api_query_choice",
    "api_query_int",
    "api_view",
    "audit_entry_list",
    "dead_letter_summary",
    "job_admin_hooks_register",
    "job_audit_record",
    "job_bulk_enqueue",
    "job_cancel",
    "job_enqueue",
    "job_get",
    "job_list_for",
    "job_error_message_visible_to",
    "job_type",
    "job_type_is_declared",
    "openapi_error_responses",
    "openapi_path_add",
    "openapi_register_paths",
    "parse_retry_after",
    "user_sees_all_jobs",
    "schedule_declare",
    "schema_validate",
    "strict_json_loads",
]
