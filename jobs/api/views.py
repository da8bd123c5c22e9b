"""The JSON API polled by frontends. Thin: authenticate, parse, call a service or selector, render.

Paths are a contract (see /api/openapi.json); none has a trailing slash:
    POST /api/jobs                  enqueue (Idempotency-Key honoured)   202 + Location
    POST /api/jobs/bulk             up to 1,000 jobs in one transaction; a result per item, in order
    GET  /api/jobs                  the caller's jobs, filtered, paginated
    GET  /api/jobs/<id>             one job's state, progress, attempts, errors, result
    POST /api/jobs/<id>/cancel      cancel a waiting job (200) / ask a running one to stop (202)
    POST /api/cron/<name>           fire a declared schedule (Authorization: Bearer CRON_SECRET)
    GET  /api/ops/overview          staff: queue depths, backlog age, dead-letter queue, alerts
    GET  /api/openapi.json, /api/docs
"""

from __future__ import annotations

import hmac
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.core.paginator import EmptyPage, Paginator
from django.http import HttpRequest, HttpResponse, JsonResponse, QueryDict
from django.shortcuts import render
from django.urls import get_script_prefix, reverse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt, ensure_csrf_cookie

from jobs.api.auth import authenticate
from jobs.api.http import (
    BIGINT_MAX,
    ApiError,
    api_view,
    bearer_credentials,
    client_address,
    json_type_name,
    method_not_allowed,
    parse_json_object,
    response_for,
)
from jobs.api.openapi import BULK_MAX_ITEMS, openapi_document
from jobs.coordination.ratelimit import RateLimiter
from jobs.core import registry
from jobs.core.lifecycle import job_cancel
from jobs.core.permissions import (
    error_message_for,
    user_cancels_any_job,
    user_enqueues_restricted_types,
    user_sees_all_jobs,
)
from jobs.delivery.enqueue import (
    BatchRefused,
    EnqueueResult,
    WantedJob,
    due_time,
    job_enqueue,
    job_enqueue_many,
    job_validate_payload,
)
from jobs.delivery.schedules import declared, schedule_trigger
from jobs.foundation.exceptions import IdempotencyKeyConflict, JobsError, JobTypeDisabled, RateLimited, ScheduleInvalid
from jobs.models import Job, JobAttempt
from jobs.ops.selectors import (
    DUE_FILTERS,
    job_attempt_list,
    job_get_for,
    job_get_with_attempts_for,
    job_list_for,
    job_type_names_enqueueable_by,
    jobs_overview,
)

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
IDEMPOTENCY_KEY_MAX = 200
# RFC 3339's date-time (a "T" or space between date and time, an offset required); fromisoformat reads it.
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$")
JOB_TYPE_FILTER = re.compile(r"^[A-Za-z0-9_.:-]{1,100}$")
# Result keys a job uses for "where to fetch what I made"; the first one present becomes result_url.
RESULT_LINK_KEYS = ("download_url", "result_url", "url")
ENQUEUE_FIELDS = ("type", "payload", "run_at", "delay_seconds")
BULK_ITEM_FIELDS = (*ENQUEUE_FIELDS, "idempotency_key")


# ---------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _result_url(result: Any) -> str | None:
    if not isinstance(result, dict):
        return None
    return next((result[key] for key in RESULT_LINK_KEYS if isinstance(result.get(key), str)), None)


_URL_SAFE_ID = re.compile(r"^[A-Za-z0-9_-]+$")
# The job detail path up to the id, per script prefix: reverse() per response cost more than the rest of it.
_job_path_prefixes: dict[str, str] = {}


def job_path(job_id: str) -> str:
    """``reverse("jobs:job-detail", args=[job_id])`` for an id that needs no quoting (every id new_job_id makes)."""
    script_prefix = get_script_prefix()
    prefix = _job_path_prefixes.get(script_prefix)
    if prefix is None:
        prefix = _job_path_prefixes[script_prefix] = reverse("jobs:job-detail", args=["0"])[:-1]
    return prefix + job_id if _URL_SAFE_ID.match(job_id) else reverse("jobs:job-detail", args=[job_id])


def _absolute_uri(request: HttpRequest, path: str) -> str:
    """``request.build_absolute_uri(path)`` for an absolute ASCII path, its scheme and host read once per request."""
    origin = getattr(request, "_api_origin", None)
    if origin is None:
        origin = request._api_origin = request.build_absolute_uri("/")[:-1]  # type: ignore[attr-defined]
    return origin + path


def _attempt_representation(attempt: JobAttempt, *, user: AbstractUser) -> dict[str, Any]:
    body = {
        "number": attempt.number,
        "outcome": attempt.outcome,
        "started_at": _iso(attempt.started_at),
        "finished_at": _iso(attempt.finished_at),
        "duration_ms": attempt.duration_ms,
        "error_code": attempt.error_code or None,
        "error_message": error_message_for(user, code=attempt.error_code, message=attempt.error_message) or None,
    }
    # Tracebacks show code and sometimes data: operators (the admin's "view job" permission) need them.
    if user_sees_all_jobs(user):
        body["traceback"] = attempt.error_traceback or None
    return body


def job_representation(
    job: Job, *, user: AbstractUser, request: HttpRequest, attempts: list[JobAttempt] | None = None
) -> dict[str, Any]:
    """The job as the API shows it; ``attempts`` (one job's detail) are left out of lists to keep them one query."""
    body = {
        "id": job.id,
        "type": job.type,
        "queue": job.queue,
        "status": job.status,
        "progress": {"percent": job.progress, "message": job.progress_message},
        "attempt": job.attempt,
        "max_attempts": job.max_attempts,
        "cancel_requested": job.cancel_requested,
        "created_at": _iso(job.created_at),
        "enqueued_at": _iso(job.enqueued_at),
        "started_at": _iso(job.started_at),
        "finished_at": _iso(job.finished_at),
        "next_retry_at": _iso(job.next_retry_at),
        "run_at": _iso(job.run_at),
        "error": (
            {"code": job.error_code, "message": error_message_for(user, code=job.error_code, message=job.error_message)}
            if job.error_code
            else None
        ),
        "result": job.result,
        "result_url": _result_url(job.result),
        "correlation_id": job.correlation_id,
        "replay_of": job.replay_of_id,
        "url": _absolute_uri(request, job_path(job.id)),
    }
    if attempts is not None:
        body["attempts"] = [_attempt_representation(attempt, user=user) for attempt in attempts]
    return body


def _job_response(job: Job, *, user: AbstractUser, request: HttpRequest, status: int = 200) -> JsonResponse:
    attempts = job_attempt_list(job=job)
    return JsonResponse(job_representation(job, user=user, request=request, attempts=attempts), status=status)


# ---------------------------------------------------------------------------
# Input
# ---------------------------------------------------------------------------


def _invalid_parameter(name: str, message: str, **detail: Any) -> ApiError:
    return ApiError(f"query parameter {name!r}: {message}", code="invalid_parameter", status=422,
                    detail={"parameter": name, **detail})  # fmt: skip


def _given(params: QueryDict, name: str) -> str | None:
    """The parameter's value, None when absent; present but empty is refused (it filters nothing)."""
    if name not in params:
        return None
    value = params.get(name, "")
    if value == "":
        raise _invalid_parameter(name, "expected a value; leave the parameter out for no filter")
    return value


def _int_parameter(params: QueryDict, name: str, *, default: int, minimum: int, maximum: int = BIGINT_MAX) -> int:
    raw = _given(params, name)
    if raw is None:
        return default
    if not (raw.isascii() and raw.lstrip("-").isdigit() and len(raw) <= 20):
        raise _invalid_parameter(name, f"expected a whole number, got {raw[:40]!r}")
    value = int(raw)
    if not minimum <= value <= maximum:
        raise _invalid_parameter(name, f"expected a number between {minimum} and {maximum}, got {value}",
                                 minimum=minimum, maximum=maximum)  # fmt: skip
    return value


def _choice_parameter(params: QueryDict, name: str, *, allowed: list[str]) -> str | None:
    value = _given(params, name)
    if value is not None and value not in allowed:
        raise _invalid_parameter(name, f"expected one of {allowed}, got {value[:60]!r}", allowed=allowed)
    return value


def _idempotency_key(request: HttpRequest) -> str | None:
    """The Idempotency-Key header's value, or None when absent.

    The draft defines the header as a structured-field string (``"abc"``); bare values are
    accepted too, and both spellings of a key are the same key.
    """
    raw = request.headers.get("Idempotency-Key")
    if raw is None:
        return None
    key = _sf_string(raw.strip()) if raw.strip().startswith('"') else raw.strip()
    if key is None or (not raw.strip().startswith('"') and "," in key):
        # A server joins repeated headers with commas: two keys in one request cannot both be honoured.
        raise ApiError("expected one Idempotency-Key header with one value (a quoted string, or bare without commas; "
                       "two headers arrive joined by a comma)", code="invalid_idempotency_key", status=422,
                       detail={"header": "Idempotency-Key"})  # fmt: skip
    if not 0 < len(key) <= IDEMPOTENCY_KEY_MAX or not all(" " <= char <= "~" for char in key):
        raise ApiError(f"Idempotency-Key must be 1 to {IDEMPOTENCY_KEY_MAX} printable ASCII characters, "
                       "e.g. a UUID", code="invalid_idempotency_key", status=422,
                       detail={"header": "Idempotency-Key", "max_length": IDEMPOTENCY_KEY_MAX})  # fmt: skip
    return key


def _sf_string(raw: str) -> str | None:
    """The value of one RFC 8941 sf-string (``"..."`` with ``\\"`` and ``\\\\`` escapes), or None if
    ``raw`` is not exactly one (e.g. ``"a", "b"``: two headers joined)."""
    chars: list[str] = []
    index = 1
    while index < len(raw):
        char = raw[index]
        if char == "\\":
            if index + 1 >= len(raw) or raw[index + 1] not in '"\\':
                return None  # RFC 8941: only \" and \\ are escapes
            chars.append(raw[index + 1])
            index += 2
            continue
        if char == '"':
            return "".join(chars) if index == len(raw) - 1 else None
        chars.append(char)
        index += 1
    return None


@dataclass(frozen=True)
class EnqueueItem:
    """One job a request asks for, checked: a type the caller may enqueue, its payload with defaults filled."""

    job_type: str
    payload: dict[str, Any]
    idempotency_key: str | None
    run_at: datetime | None = None


def _schedule_error(field: str, message: str) -> ScheduleInvalid:
    return ScheduleInvalid(
        f"{field!r}: {message}", detail={"field": field, "errors": [{"field": field, "message": message}]}
    )


def _run_at(body: dict[str, Any], *, now: datetime) -> datetime | None:
    """The due time asked for: ``run_at`` (RFC 3339, with an offset) or ``delay_seconds`` (a number >= 0)."""
    # Present means given: null is a wrong type, not "now" (the document says string and number).
    if "run_at" in body and "delay_seconds" in body:
        raise _schedule_error("run_at", "give either run_at or delay_seconds, not both")
    if "delay_seconds" in body:
        delay = body["delay_seconds"]
        if isinstance(delay, bool) or not isinstance(delay, int | float) or not 0 <= delay <= 10**10:
            raise _schedule_error("delay_seconds", f"expected a number of seconds >= 0, got {json_type_name(delay)}")
        return now + timedelta(seconds=delay)
    if "run_at" not in body:
        return None
    run_at = body["run_at"]
    parsed = None
    if isinstance(run_at, str) and RFC3339.match(run_at):
        try:
            # In UTC, or refused: a time the database cannot hold (a leap second, before year 1 in UTC).
            parsed = datetime.fromisoformat(run_at.upper()).astimezone(UTC)
        except (ValueError, OverflowError):
            parsed = None
    if parsed is None:
        shown = repr(run_at[:40]) if isinstance(run_at, str) else json_type_name(run_at)
        raise _schedule_error("run_at", f"expected an RFC 3339 date-time with an offset, "
                                     f"e.g. 2027-01-31T09:00:00Z; got {shown}")  # fmt: skip
    return parsed


def _item_refusal(message: str, *, code: str, status: int = 422, field: str, **detail: Any) -> ApiError:
    return ApiError(
        message, code=code, status=status, detail={"errors": [{"field": field, "message": message}], **detail}
    )


def enqueue_item_check(
    body: dict[str, Any], *, user: AbstractUser, idempotency_key: str | None, fields: tuple[str, ...] = ENQUEUE_FIELDS
) -> EnqueueItem:
    """Check one job's ``{"type", "payload"}`` (the single enqueue's body, or one item of a bulk one) for ``user``;
    every refusal (ApiError, PayloadInvalid) names what was expected. ``fields``: the keys the object may have."""
    job_type_name = body.get("type")
    spec = _api_job_types_by_name().get(job_type_name) if isinstance(job_type_name, str) else None
    if spec is None:
        allowed = job_type_names_enqueueable_by(user=user)
        shown = repr(job_type_name) if isinstance(job_type_name, str) else json_type_name(job_type_name)
        raise ApiError(f"'type' must name a job type you can enqueue over the API ({', '.join(allowed) or 'none'}); "
                       f"got {shown}", code="unknown_job_type", status=422,
                       detail={"field": "type", "allowed": allowed})  # fmt: skip
    unknown = sorted(set(body) - set(fields))
    if unknown:
        raise ApiError(f"unexpected field(s) {', '.join(unknown)}; the object has only {', '.join(map(repr, fields))}",
                       code="invalid_body", status=422,
                       detail={"errors": [{"field": name, "message": f"unexpected field (allowed: {', '.join(sorted(fields))})"}
                                          for name in unknown]})  # fmt: skip
    payload = body.get("payload", {})
    if not isinstance(payload, dict):
        message = f"expected object, got {json_type_name(payload)}"
        raise ApiError(f"'payload' must be a JSON object, got {json_type_name(payload)}", code="invalid_payload",
                       status=422, detail={"errors": [{"field": "payload", "message": message}]})  # fmt: skip
    # The payload's schema before the caller's permission: the schema is public (the OpenAPI document), and a bulk
    # request refuses what the document says is malformed as a whole, before any item is refused on its own.
    payload = job_validate_payload(job_type=spec.name, payload=payload)
    now = timezone.now()
    run_at = due_time(run_at=_run_at(body, now=now), now=now)  # beyond the horizon: invalid_schedule, as one job's
    if spec.api_staff_only and not user_enqueues_restricted_types(user):
        raise ApiError(f"job type {spec.name!r} can only be enqueued by staff", code="forbidden", status=403,
                       detail={"type": spec.name})  # fmt: skip
    return EnqueueItem(job_type=spec.name, payload=payload, idempotency_key=idempotency_key, run_at=run_at)


def _api_job_types() -> list[registry.JobType]:
    return [spec for spec in registry.all_types() if spec.enqueueable_over_api]


def _api_job_types_by_name() -> dict[str, registry.JobType]:
    return {spec.name: spec for spec in _api_job_types()}


# ---------------------------------------------------------------------------
# Views
# ---------------------------------------------------------------------------


def _enqueue_rate_limit(request: HttpRequest, user: AbstractUser, *, jobs: int = 1) -> None:
    """Per token (or per session user): JOBS_API_ENQUEUE_RATE_LIMIT jobs per period, else 429 + Retry-After.

    Counts jobs, not requests: a bulk request of ``jobs`` items takes that many slots, all or none."""
    limit = getattr(settings, "JOBS_API_ENQUEUE_RATE_LIMIT", 0)
    if not limit or jobs < 1:
        return
    period = getattr(settings, "JOBS_API_ENQUEUE_RATE_PERIOD", 60)
    token = getattr(request, "api_token", None)
    caller = f"token:{token.pk}" if token is not None else f"user:{user.pk}"
    detail = {"limit": limit, "period_seconds": period, "jobs": jobs}
    if jobs > limit:
        raise ApiError(f"this request has {jobs} jobs, more than the enqueue limit of {limit} jobs per {period:g}s "
                       f"for this {caller.split(':')[0]}; send at most {limit} per request", code="rate_limited",
                       status=429, detail=detail)  # fmt: skip
    wait = RateLimiter(name=f"api-enqueue:{caller}", limit=limit, period=period).try_acquire_or_allow(slots=jobs)
    if wait:
        raise RateLimited(
            f"enqueue limit reached: {limit} jobs per {period:g}s for this {caller.split(':')[0]}; "
            f"retry after {wait:.1f}s", wait_seconds=wait, detail=detail,
        )  # fmt: skip


def enqueue_items(
    items: Sequence[EnqueueItem], *, user: AbstractUser, request: HttpRequest, atomic: bool = False
) -> list[EnqueueResult | JobsError]:
    """Enqueue checked items for ``user``: one result per item, in order (created, replayed, or the error that
    refused it). One item takes ``job_enqueue``'s one-round-trip path; more go in one transaction
    (``job_enqueue_many``; with ``atomic``, BatchRefused when any is refused and none is written).

    Keys are scoped per caller, so two users cannot collide on (or probe) each other's keys, and a key is one
    request: reusing it for another API type is a conflict too (key_exclusive_among)."""
    scope = f"api:{user.pk}:"
    api_types = [spec.name for spec in _api_job_types()]
    correlation_id = getattr(request, "correlation_id", None)
    outcomes: list[EnqueueResult | JobsError]
    if len(items) == 1:
        item = items[0]
        try:
            outcomes = [job_enqueue(
                job_type=item.job_type, payload=item.payload, owner=user, correlation_id=correlation_id,
                idempotency_key=scope + item.idempotency_key if item.idempotency_key else None,
                key_exclusive_among=api_types, run_at=item.run_at,
            )]  # fmt: skip
        except (IdempotencyKeyConflict, JobTypeDisabled) as error:
            outcomes = [error]
    else:
        wanted = [WantedJob(job_type=item.job_type, payload=item.payload,
                            idempotency_key=scope + item.idempotency_key if item.idempotency_key else None,
                            run_at=item.run_at)
                  for item in items]  # fmt: skip
        outcomes = job_enqueue_many(wanted=wanted, owner=user, correlation_id=correlation_id,
                                    key_exclusive_among=api_types, all_or_nothing=atomic)  # fmt: skip
    return [_in_callers_words(outcome, item) for outcome, item in zip(outcomes, items, strict=True)]


def _in_callers_words(outcome: EnqueueResult | JobsError, item: EnqueueItem) -> EnqueueResult | JobsError:
    # The core's conflict names the stored key (api:<user>:<key>): answer with the caller's own key only.
    if isinstance(outcome, IdempotencyKeyConflict):
        return IdempotencyKeyConflict(
            f"Idempotency-Key {item.idempotency_key!r} was already used for another request; "
            "use a new key for a different request",
            detail={"job_id": outcome.detail.get("job_id"), "idempotency_key": item.idempotency_key},
        )
    return outcome


def _enqueue(request: HttpRequest, user: AbstractUser) -> JsonResponse:
    _enqueue_rate_limit(request, user)
    item = enqueue_item_check(parse_json_object(request), user=user, idempotency_key=_idempotency_key(request))
    outcome = enqueue_items([item], user=user, request=request)[0]
    if isinstance(outcome, JobsError):
        raise outcome
    # A replay answers like the original request did: 202 and the job (in its current state).
    attempts = [] if outcome.created else job_attempt_list(job=outcome.job)
    response = JsonResponse(job_representation(outcome.job, user=user, request=request, attempts=attempts), status=202)
    response["Location"] = job_path(outcome.job.id)
    if item.idempotency_key:
        response["Idempotent-Replayed"] = "false" if outcome.created else "true"
    return response


def _bulk_items(request: HttpRequest, user: AbstractUser) -> tuple[list[EnqueueItem | ApiError], bool]:
    """The bulk body's items, each checked (an EnqueueItem) or refused for this caller (403: a type they may not
    enqueue), and ``atomic``. What the OpenAPI document can say is wrong with an item (its shape, its type's
    payload schema, its key's form) refuses the whole request, naming the item's position and field."""
    body = parse_json_object(request)
    unknown = sorted(set(body) - {"jobs", "atomic"})
    if unknown:
        raise _item_refusal(f"unexpected field(s) {', '.join(unknown)}; the body has only 'jobs' and 'atomic'",
                            code="invalid_body", field=unknown[0])  # fmt: skip
    raw_items, atomic = body.get("jobs"), body.get("atomic", False)
    if not isinstance(atomic, bool):
        raise _item_refusal(f"'atomic' must be true or false, got {json_type_name(atomic)}", code="invalid_body",
                            field="atomic")  # fmt: skip
    if not isinstance(raw_items, list) or not raw_items:
        shown = "an empty array" if raw_items == [] else json_type_name(raw_items)
        raise _item_refusal(f"'jobs' must be an array of 1 to {BULK_MAX_ITEMS} jobs, got {shown}",
                            code="invalid_body", field="jobs")  # fmt: skip
    if len(raw_items) > BULK_MAX_ITEMS:
        raise ApiError(f"'jobs' has {len(raw_items)} items; at most {BULK_MAX_ITEMS} per request (split it)",
                       code="too_many_items", status=413, detail={"max_items": BULK_MAX_ITEMS, "items": len(raw_items)})  # fmt: skip
    checked: list[EnqueueItem | ApiError] = []
    first_at: dict[str, int] = {}
    for index, raw in enumerate(raw_items):
        try:
            if not isinstance(raw, dict):
                raise _item_refusal(f"expected a job object, got {json_type_name(raw)}", code="invalid_body", field="")
            key = _idempotency_key_value(raw.get("idempotency_key"), field="idempotency_key")
            if key is not None and key in first_at:
                raise ApiError(f"idempotency_key {key!r} appears at positions {first_at[key]} and {index}; each "
                               "job of a request needs its own key", code="duplicate_idempotency_key", status=422,
                               detail={"idempotency_key": key, "positions": [first_at[key], index]})  # fmt: skip
            if key is not None:
                first_at[key] = index
            checked.append(enqueue_item_check(raw, user=user, idempotency_key=key, fields=BULK_ITEM_FIELDS))
        except ApiError as error:
            if error.status != 403:
                raise _at_position(error, index) from None
            checked.append(error)
        except JobsError as error:  # PayloadInvalid: the type's schema, which the document holds
            raise _at_position(error, index) from None
    return checked, atomic


def _at_position(error: JobsError, index: int) -> ApiError:
    """An item's refusal as the whole request's: the message and each field name say which item."""
    if isinstance(error, ApiError) and error.code == "duplicate_idempotency_key":
        return error
    detail = dict(error.detail)
    if isinstance(detail.get("errors"), list):
        detail["errors"] = [{**entry, "field": f"jobs[{index}]" + (f".{entry['field']}" if entry["field"] else "")}
                            for entry in detail["errors"]]  # fmt: skip
    status = error.status if isinstance(error, ApiError) else 422
    return ApiError(
        f"jobs[{index}]: {error.message}", code=error.code, status=status, detail={**detail, "index": index}
    )


def _idempotency_key_value(value: Any, *, field: str) -> str | None:
    if value is None:
        return None
    if (
        not isinstance(value, str)
        or not 0 < len(value) <= IDEMPOTENCY_KEY_MAX
        or not all(" " <= c <= "~" for c in value)
    ):
        raise _item_refusal(f"'{field}' must be 1 to {IDEMPOTENCY_KEY_MAX} printable ASCII characters, e.g. a UUID",
                            code="invalid_idempotency_key", field=field, max_length=IDEMPOTENCY_KEY_MAX)  # fmt: skip
    return value


def _bulk_result(index: int, outcome: EnqueueItem | EnqueueResult | JobsError) -> dict[str, Any]:
    if isinstance(outcome, JobsError):
        error = response_for(outcome)
        return {"index": index, "outcome": "refused", "status": error.status_code, **json.loads(error.content)}
    assert isinstance(outcome, EnqueueResult)
    job = outcome.job
    return {"index": index, "outcome": "created" if outcome.created else "replayed", "status": 202,
            "job": {"id": job.id, "type": job.type, "status": job.status, "url": job_path(job.id)}}  # fmt: skip


@api_view(methods=("POST",))
def jobs_bulk(request: HttpRequest) -> JsonResponse:
    """POST: enqueue up to BULK_MAX_ITEMS jobs in one transaction (scope ``enqueue``); results per item, in order."""
    user = authenticate(request, scope="enqueue")
    checked, atomic = _bulk_items(request, user)
    refused: dict[int, JobsError] = {index: item for index, item in enumerate(checked) if isinstance(item, ApiError)}
    if atomic and refused:
        raise _batch_refusal(BatchRefused(refused), checked)
    valid = [(index, item) for index, item in enumerate(checked) if isinstance(item, EnqueueItem)]
    _enqueue_rate_limit(request, user, jobs=len(valid))
    outcomes: list[EnqueueItem | EnqueueResult | JobsError] = list(checked)
    if valid:
        try:
            enqueued = enqueue_items([item for _, item in valid], user=user, request=request, atomic=atomic)
        except BatchRefused as batch:
            refused = {valid[position][0]: cast(JobsError, _in_callers_words(error, valid[position][1]))
                       for position, error in batch.refused.items()}  # fmt: skip
            raise _batch_refusal(BatchRefused(refused), checked) from None
        for (index, _), outcome in zip(valid, enqueued, strict=True):
            outcomes[index] = outcome
            if atomic and isinstance(outcome, JobsError):  # one item (job_enqueue's path): refused, nothing written
                raise _batch_refusal(BatchRefused({index: outcome}), checked)
    return JsonResponse(
        {"atomic": atomic, "results": [_bulk_result(index, outcome) for index, outcome in enumerate(outcomes)]}
    )


def _batch_refusal(batch: BatchRefused, checked: Sequence[EnqueueItem | ApiError]) -> ApiError:
    """``atomic: true`` and an item refused: 422 naming each refused item with its error; nothing enqueued."""
    return ApiError(batch.message, code="batch_refused", status=422,
                    detail={"refused": [_bulk_result(index, error) for index, error in sorted(batch.refused.items())],
                            "items": len(checked)})  # fmt: skip


def _list(request: HttpRequest, user: AbstractUser) -> JsonResponse:
    params = request.GET
    status = _choice_parameter(params, "status", allowed=list(Job.Status.values))
    due = _choice_parameter(params, "due", allowed=list(DUE_FILTERS))
    sees_all = user_sees_all_jobs(user)
    # Any well-formed name filters (an unknown one finds nothing): a 422 listing the registered types
    # would show internal type names to callers who may not use them.
    job_type = _given(params, "type")
    if job_type is not None and not JOB_TYPE_FILTER.match(job_type):
        raise _invalid_parameter("type", f"expected a job type name ({JOB_TYPE_FILTER.pattern}), got {job_type[:60]!r}",
                                 allowed=job_type_names_enqueueable_by(user=user))  # fmt: skip
    page_number = _int_parameter(params, "page", default=1, minimum=1, maximum=10**6)
    page_size = _int_parameter(params, "page_size", default=DEFAULT_PAGE_SIZE, minimum=1, maximum=MAX_PAGE_SIZE)
    owner_id = _int_parameter(params, "owner", default=0, minimum=1) or None
    if owner_id is not None and not sees_all and owner_id != user.pk:
        raise ApiError("only staff can list other users' jobs; leave out 'owner' to list yours", code="forbidden",
                       status=403, detail={"parameter": "owner"})  # fmt: skip
    jobs = job_list_for(user=user, status=status, job_type=job_type, owner_id=owner_id, due=due)
    paginator = Paginator(jobs, page_size)
    try:
        page = list(paginator.page(page_number).object_list)
    except EmptyPage:
        page = []  # past the end: an empty page (with a link back), not an error, so pollers need no special case

    def link(number: int) -> str:
        query = params.copy()
        query["page"] = str(number)
        return request.build_absolute_uri(f"{request.path}?{query.urlencode()}")

    return JsonResponse({
        "count": paginator.count,
        "page": page_number,
        "page_size": page_size,
        "next": link(page_number + 1) if page_number < paginator.num_pages else None,
        "previous": link(min(page_number - 1, paginator.num_pages)) if page_number > 1 else None,
        "results": [job_representation(job, user=user, request=request) for job in page],
    })  # fmt: skip


@api_view(methods=("GET", "POST"))
def jobs_collection(request: HttpRequest) -> JsonResponse:
    """POST: enqueue a job (scope ``enqueue``). GET: the caller's jobs (operators: everyone's), newest first."""
    if request.method == "POST":
        return _enqueue(request, authenticate(request, scope="enqueue"))
    return _list(request, authenticate(request, scope="read"))


@api_view(methods=("GET",))
def job_detail(request: HttpRequest, job_id: str) -> JsonResponse:
    """One job with its attempts; another user's job is 404."""
    user = authenticate(request, scope="read")
    job, attempts = job_get_with_attempts_for(user=user, job_id=job_id)
    return JsonResponse(job_representation(job, user=user, request=request, attempts=attempts))


@api_view(methods=("POST",))
def job_cancel_view(request: HttpRequest, job_id: str) -> JsonResponse:
    """Cancel a waiting job (200, cancelled) or ask a running one to stop (202, still running); 409 if finished."""
    user = authenticate(request, scope="enqueue")
    job = job_get_for(user=user, job_id=job_id)
    if job.owner_id != user.pk and not user_cancels_any_job(user):
        raise ApiError("you may see this job but not cancel it: that needs the 'Can cancel jobs' permission",
                       code="forbidden", status=403, detail={"job_id": job.id})  # fmt: skip
    outcome = job_cancel(job=job, actor=user)
    return _job_response(job, user=user, request=request, status=200 if outcome == Job.Status.CANCELLED else 202)


@api_view(methods=("GET",))
def ops_overview(request: HttpRequest) -> JsonResponse:
    """Staff only: queue depths, backlog age, live counts, the dead-letter queue's size, recent
    success rate, and the alerts their thresholds raise. Always 200 when answered: alerting
    probes read ``status`` and ``alerts`` (a broken database or broker is /healthz's business)."""
    user = authenticate(request, scope="ops")
    if not user_sees_all_jobs(user):
        raise ApiError("the operations overview needs the 'Can view job' permission", code="forbidden", status=403)
    return JsonResponse(jobs_overview().as_dict())


@api_view(methods=("GET",))
def openapi_json(request: HttpRequest) -> JsonResponse:
    """The OpenAPI 3.1 document (public: it describes the API, it reveals no data)."""
    return JsonResponse(openapi_document(server_url=request.build_absolute_uri("/")))


@csrf_exempt  # GET and HEAD only: an unsafe method gets the API's 405, not the CSRF middleware's 403
@ensure_csrf_cookie  # the page's own "Send" buttons post with the session's CSRF token
def api_docs(request: HttpRequest) -> HttpResponse:
    """Interactive docs built from /api/openapi.json by a self-contained page (no CDN)."""
    if request.method not in ("GET", "HEAD"):
        return method_not_allowed(request, ("GET", "HEAD"))
    return render(request, "jobs/api_docs.html", {"schema_url": reverse("jobs:openapi")})


@api_view(methods=("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"))
def api_not_found(request: HttpRequest) -> JsonResponse:
    """Unknown paths under /api/ answer in JSON too, DEBUG or not (Django's 404 pages are HTML)."""
    raise ApiError(f"no API endpoint at {request.path}; API paths have no trailing slash (see /api/openapi.json)",
                   code="not_found", status=404)  # fmt: skip


@api_view(methods=("POST",))
def cron_trigger(request: HttpRequest, name: str) -> JsonResponse:
    """For external schedulers (a frontend host's cron calling a URL): fire a declared job schedule.

    Same path as beat: the schedule's window lock makes a double call (or beat plus this)
    enqueue once. Answers at once with what was enqueued or why nothing was.
    """
    secret = getattr(settings, "CRON_SECRET", "")
    if not secret:
        raise ApiError("the cron endpoint is switched off: set CRON_SECRET to enable it", code="cron_disabled",
                       status=503)  # fmt: skip
    # Before the secret check, per caller address: guesses are throttled too, and one guesser cannot
    # use up the real scheduler's calls (it calls from its own address).
    configured = RateLimiter.named("cron-endpoint")
    limiter = RateLimiter(name=f"cron-endpoint:{client_address(request)}", limit=configured.limit,
                          period=configured.period)  # fmt: skip
    if wait := limiter.try_acquire_or_allow():
        raise RateLimited(f"too many calls to the cron endpoint from your address ({configured.limit} per "
                          f"{configured.period:g}s); retry after {wait:.1f}s", wait_seconds=wait)  # fmt: skip
    presented = bearer_credentials(request)
    # Constant-time comparison: response timing must not reveal how much of a guess was right.
    if presented is None or not hmac.compare_digest(presented.encode(), secret.encode()):
        raise ApiError("missing or wrong cron secret: send 'Authorization: Bearer <CRON_SECRET>'", code="unauthenticated",
                       status=401, headers={"WWW-Authenticate": 'Bearer realm="cron"'})  # fmt: skip
    schedule = declared().get(name)
    if schedule is None or schedule.job_type is None:
        job_schedules = sorted(n for n, s in declared().items() if s.job_type)
        raise ApiError(f"no job schedule named {name!r}", code="unknown_schedule", status=404,
                       detail={"schedules": job_schedules})  # fmt: skip
    result = schedule_trigger(name=name, source="http")
    return JsonResponse(result.as_dict(), status=202 if result.enqueued_job_id else 200)
