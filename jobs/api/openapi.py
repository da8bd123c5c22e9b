"""The API's OpenAPI 3.1 document, built from the job type registry.

Each job type that declares an ``api_schema`` appears as one variant of the enqueue body
(``oneOf`` discriminated by ``type``), so the document never drifts from what the API accepts.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable
from typing import Any, cast

from django.conf import settings

from jobs.core import registry
from jobs.models import Job, JobAttempt
from jobs.ops.runbook import ALERT_GUIDES
from jobs.ops.selectors import DUE_FILTERS

ERROR_CODES = {
    "unauthenticated": "401: no credentials, or not a Bearer scheme (the scheme is case-insensitive)",
    "invalid_token": "401: the bearer token is unknown, revoked or expired",
    "insufficient_scope": "403: the token lacks the scope this needs (read, enqueue or ops); detail.required_scope",
    "csrf_failed": "403: a session-authenticated write without the X-CSRFToken header",
    "forbidden": "403: the caller lacks the permission (e.g. a restricted job type, another user's job)",
    "job_not_found": "404: no such job, or not yours",
    "not_found": "404: no such endpoint (any path under /api/ naming none, e.g. an id not in ASCII digits)",
    "method_not_allowed": "405",
    "illegal_transition": "409: the job's state does not allow this (e.g. cancelling a finished job)",
    "malformed_json": "400: the body is not JSON",
    "bad_request": "400: refused by the server's request checks",
    "body_too_large": "413: detail.limit_bytes is the limit",
    "too_many_items": "413: a bulk enqueue with more items than detail.max_items",
    "duplicate_idempotency_key": "422: one idempotency_key twice in a bulk enqueue; detail.positions names both",
    "batch_refused": "422: an atomic bulk enqueue with a refused item; detail.refused lists each, none enqueued",
    "unsupported_media_type": "415: send Content-Type: application/json",
    "invalid_body": "422: the body is not an object, or has fields other than type, payload, run_at, delay_seconds",
    "unknown_job_type": "422: detail.allowed lists the types you can enqueue",
    "invalid_payload": "422: detail.errors lists each field and what was expected",
    "invalid_schedule": "422: run_at / delay_seconds cannot be used (not RFC 3339 with an offset, both given, or "
    "beyond the horizon, JOBS_SCHEDULE_HORIZON_DAYS); detail.errors names the field",
    "invalid_idempotency_key": "422: the Idempotency-Key header is empty, too long, not printable ASCII, or two keys",
    "idempotency_key_conflict": "422: the key was already used for a different request",
    "invalid_parameter": "422: a query parameter is invalid; detail.allowed lists valid values",
    "rate_limited": "429: too many requests (enqueues per token, cron calls per address); retry after Retry-After",
    "job_type_disabled": "503: the type is switched off; retry later (Retry-After)",
    "cron_disabled": "503: CRON_SECRET is not set",
    "unknown_schedule": "404: no job schedule of that name; detail.schedules lists them",
    "invalid_signature": "401: webhook: X-Supplier-Signature missing, malformed or wrong",
    "stale_signature": "401: webhook: the signature's timestamp is outside the tolerance",
    "invalid_event": "422: webhook: the event is not the documented JSON; detail.errors names each field",
    "webhooks_disabled": "503: webhook: SUPPLIER_WEBHOOK_SECRET is not set",
    "internal_error": "500: logged on the server; retrying may succeed",
}

ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "detail", "retryable"],
            "properties": {
                "code": {"type": "string", "description": "Machine-readable. " + "; ".join(
                    f"`{code}` ({meaning})" for code, meaning in ERROR_CODES.items())},  # fmt: skip
                "message": {"type": "string", "description": "What was wrong and what was expected."},
                "detail": {
                    "type": "object",
                    "description": "Specifics, e.g. `errors: [{field, message}]` for invalid payloads.",
                    "properties": {
                        "errors": {"type": "array", "items": {"type": "object", "required": ["field", "message"],
                                   "properties": {"field": {"type": "string"}, "message": {"type": "string"}}}},
                        "allowed": {"type": "array", "items": {}},
                    },
                },  # fmt: skip
                "retryable": {"type": "boolean", "description": "Whether sending the same request again can succeed."},
            },
        }
    },
    "example": {"error": {"code": "invalid_payload", "retryable": False,
                          "message": "payload for job type 'jobs.canary' is invalid: seconds: expected number, got str",
                          "detail": {"errors": [{"field": "seconds", "message": "expected number, got str"}]}}},
}  # fmt: skip

# One key: bare (printable ASCII, no comma: two headers arrive joined by one) or an RFC 8941 sf-string.
IDEMPOTENCY_KEY_PATTERN = r'^(?:[!#-+\--~][ -+\--~]{0,199}|"(?:[ !#-\[\]-~]|\\["\\]){1,200}")$'
TIMESTAMP = {"type": ["string", "null"], "format": "date-time"}
UNEXPECTED_CODE = "snake_case for a declared error; an exception's class name (e.g. `DataError`) for an unexpected one."
UNEXPECTED_TEXT = ("An unexpected error's text (it can quote data or SQL) only with *Can view job*; others read "
                   "a fixed message.")  # fmt: skip
ATTEMPT = {
    "type": "object",
    "properties": {
        "number": {"type": "integer"},
        "outcome": {"type": "string", "enum": list(JobAttempt.Outcome.values)},
        "started_at": TIMESTAMP, "finished_at": TIMESTAMP,
        "duration_ms": {"type": ["integer", "null"]},
        "error_code": {"type": ["string", "null"], "description": UNEXPECTED_CODE},
        "error_message": {"type": ["string", "null"], "description": UNEXPECTED_TEXT},
        "traceback": {"type": ["string", "null"], "description": "Staff only."},
    },
}  # fmt: skip
JOB = {
    "type": "object",
    "properties": {
        "id": {"type": "string"}, "type": {"type": "string"}, "queue": {"type": "string"},
        "status": {"type": "string", "enum": list(Job.Status.values),
                   "description": "Finished: succeeded, failed (permanent error), dead (out of retries), cancelled."},
        "progress": {"type": "object", "properties": {"percent": {"type": "integer", "minimum": 0, "maximum": 100},
                                                      "message": {"type": "string"}}},
        "attempt": {"type": "integer", "description": "Attempts started so far."}, "max_attempts": {"type": "integer"},
        "cancel_requested": {"type": "boolean"},
        "created_at": TIMESTAMP, "enqueued_at": TIMESTAMP, "started_at": TIMESTAMP, "finished_at": TIMESTAMP,
        "next_retry_at": TIMESTAMP,
        "run_at": TIMESTAMP | {"description": "Due time of a job that runs later (null: ran when enqueued). It waits, "
                                              "queued, until then; start - run_at is its lateness."},
        "error": {"type": ["object", "null"], "description": "The last failure; null once the job succeeds.",
                  "properties": {"code": {"type": "string", "description": UNEXPECTED_CODE},
                                 "message": {"type": "string", "description": UNEXPECTED_TEXT}}},
        "result": {"description": "What the job returned (JSON), once it succeeded."},
        "result_url": {"type": ["string", "null"], "description": "A link the result holds (e.g. a download)."},
        "correlation_id": {"type": "string"},
        "replay_of": {"type": ["string", "null"], "description": "The job this one replays."},
        "url": {"type": "string", "description": "Absolute URL of this job."},
        "attempts": {"type": "array", "items": {"$ref": "#/components/schemas/JobAttempt"},
                     "description": "On single-job responses, not in lists."},
    },
}  # fmt: skip
JOB_PAGE = {
    "type": "object",
    "properties": {
        "count": {"type": "integer"}, "page": {"type": "integer"}, "page_size": {"type": "integer"},
        "next": {"type": ["string", "null"]}, "previous": {"type": ["string", "null"]},
        "results": {"type": "array", "items": {"$ref": "#/components/schemas/Job"}},
    },
}  # fmt: skip

ERROR_DESCRIPTIONS = {
    400: "Malformed request (the body is not JSON)", 401: "Not authenticated", 403: "Not allowed",
    404: "No such job (or not yours)", 405: "Method not allowed", 409: "The job's state does not allow this",
    413: "Body too large", 415: "Not JSON",
    422: "Invalid request: says which field or parameter and what was expected",
    429: "Too many requests; retry after Retry-After seconds",
    500: "Unexpected server error (logged)", 503: "Switched off (a job type, or by configuration); see the code",
}  # fmt: skip

HEADERS = {
    "X-Request-ID": {"description": "The request's correlation id (yours, or a generated one).",
                     "schema": {"type": "string"}},
    "Location": {"description": "Path of the job: poll it with GET.", "schema": {"type": "string"}},
    "Idempotent-Replayed": {"description": "Sent with an Idempotency-Key: `true` when this is the original job "
                                           "answered again, `false` when the request created it.",
                            "schema": {"type": "string", "enum": ["true", "false"]}},
    "Retry-After": {"description": "Seconds to wait before retrying.", "schema": {"type": "integer"}},
    "WWW-Authenticate": {"schema": {"type": "string"}},
}  # fmt: skip


def _ref(kind: str, name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/{kind}/{name}"}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _errors(*statuses: int) -> dict[str, Any]:
    return {str(status): _ref("responses", f"Error{status}") for status in (*statuses, 500)}


def _ok(description: str, schema: dict[str, Any], *headers: str) -> dict[str, Any]:
    return {"description": description, "content": _json(schema),
            "headers": {name: _ref("headers", name) for name in ("X-Request-ID", *headers)}}  # fmt: skip


def _linked(response: dict[str, Any], *operation_ids: str) -> dict[str, Any]:
    """``response`` with OpenAPI links from the job it returns to operations on that job (clients and the
    stateful fuzzer follow them: enqueue -> get -> cancel)."""
    response["links"] = {
        operation_id[0].upper() + operation_id[1:]: {"operationId": operation_id,
                                                      "parameters": {"job_id": "$response.body#/id"}}
        for operation_id in operation_ids
    }  # fmt: skip
    return response


def _error_response(status: int) -> dict[str, Any]:
    headers = {"X-Request-ID": _ref("headers", "X-Request-ID")}
    if status == 401:
        headers["WWW-Authenticate"] = _ref("headers", "WWW-Authenticate")
    if status in (429, 503):
        headers["Retry-After"] = _ref("headers", "Retry-After")
    return {"description": ERROR_DESCRIPTIONS[status], "content": _json(_ref("schemas", "Error")), "headers": headers}


def _query_parameter(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "schema": schema, "description": description}


def _enqueue_schema_name(job_type: str) -> str:
    return f"Enqueue_{job_type}"  # component names allow letters, digits, '.', '-' and '_'


def _run_later() -> dict[str, Any]:
    """The enqueue body's due-time fields: one of the two, or neither to run now. The horizon follows the clock,
    which a date-time schema cannot: a run_at beyond it is refused with invalid_schedule."""
    horizon_days = int(getattr(settings, "JOBS_SCHEDULE_HORIZON_DAYS", 365))
    return {
        "run_at": {"type": "string", "format": "date-time",
                   "description": "Run at this time (RFC 3339 with an offset); a time in the past runs now. At most "
                                  f"{horizon_days} days ahead (JOBS_SCHEDULE_HORIZON_DAYS). Not with delay_seconds."},
        "delay_seconds": {"type": "number", "minimum": 0, "maximum": horizon_days * 86400,
                          "description": "Run this many seconds from now, instead of run_at."},
    }  # fmt: skip


def _enqueue_variant(spec: registry.JobType) -> dict[str, Any]:
    payload = copy.deepcopy(spec.api_schema) or {}
    return {
        "type": "object",
        "title": spec.name,
        "description": (spec.description or spec.name) + (" Staff only." if spec.api_staff_only else ""),
        "required": ["type", "payload"] if payload.get("required") else ["type"],
        "additionalProperties": False,
        "properties": {"type": {"const": spec.name}, "payload": payload, **_run_later()},
    }


OPS_OVERVIEW = {
    "type": "object",
    "required": ["status", "generated_at", "alerts", "queues", "jobs", "dead_letter_queue", "last_window"],
    "properties": {
        "status": {"type": "string", "enum": ["ok", "alerting"]},
        "generated_at": {"type": "string", "format": "date-time"},
        "alerts": {"type": "array", "items": {
            "type": "object", "required": ["code", "title", "message", "runbook_url"],
            "properties": {"code": {"type": "string", "enum": list(ALERT_GUIDES),
                                    "description": "Stable, for probes to match on."},
                           "title": {"type": "string", "description": "What the alert is about, in words, "
                                                                     "e.g. 'Dead-letter queue not empty'."},
                           "message": {"type": "string", "description": "The figures behind it."},
                           "runbook_url": {"type": "string", "description": "The runbook section saying what "
                                           "to do: under JOBS_RUNBOOK_URL, or the admin's copy of the runbook."}}}},
        "queues": {"type": "array", "items": {
            "type": "object", "required": ["name", "broker_depth", "due_jobs", "oldest_due_seconds"],
            "properties": {
                "name": {"type": "string"},
                "broker_depth": {"type": ["integer", "null"], "description": "Messages in the broker's list; "
                                                                             "null when the broker did not answer."},
                "due_jobs": {"type": "integer", "description": "Jobs due to run whose type is switched on."},
                "oldest_due_seconds": {"type": ["number", "null"]},
            }}},
        "jobs": {"type": "object", "description": "Jobs now queued, retrying, running and dead.",
                 "additionalProperties": {"type": "integer"}},
        "dead_letter_queue": {"type": "integer"},
        "last_window": {"type": "object", "properties": {
            "seconds": {"type": "integer"},
            "ended": {"type": "object", "additionalProperties": {"type": "integer"}},
            "success_rate": {"type": ["number", "null"],
                             "description": "Succeeded / (succeeded + failed + dead); cancelled jobs left out."},
        }},
    },
}  # fmt: skip


# Paths other apps serve under /api/ (e.g. sync's supplier webhook), added with ``openapi_path_add``.
_EXTRA_PATHS: dict[str, Callable[[], dict[str, Any]]] = {}


def openapi_path_add(path: str, build: Callable[[], dict[str, Any]]) -> None:
    """Document an API path another app serves: ``build()`` returns its OpenAPI path item.

    ``path`` is relative to /api (e.g. ``/webhooks/supplier``). ``build`` runs each time the
    document is made, so schemas that depend on settings stay current. Responses may use
    ``{"$ref": "#/components/responses/Error<status>"}`` for the shared error shape.
    """
    _EXTRA_PATHS[path] = build


# Component schemas apps add (see register_paths); keyed by name, so re-registering replaces.
_app_schemas: dict[str, dict[str, Any]] = {}


def register_paths(*, paths: dict[str, dict[str, Any]], schemas: dict[str, dict[str, Any]] | None = None) -> None:
    """Add a domain app's API paths (relative to /api) and component schemas to the OpenAPI document.

    Operations may reference the shared components: ``#/components/responses/Error<status>``,
    ``#/components/schemas/Error``, ``#/components/parameters/Idempotency-Key`` and the headers.
    """
    for path, item in paths.items():
        openapi_path_add(path, functools.partial(copy.deepcopy, copy.deepcopy(item)))
    _app_schemas.update(copy.deepcopy(schemas or {}))


# Jobs per POST /api/jobs/bulk (the view reads it here): 1,000 small payloads fit in DATA_UPLOAD_MAX_MEMORY_SIZE.
BULK_MAX_ITEMS = 1000


def _bulk_item_variant(variant: dict[str, Any]) -> dict[str, Any]:
    item = copy.deepcopy(variant)
    item["properties"]["idempotency_key"] = {
        "type": ["string", "null"], "minLength": 1, "maxLength": 200, "pattern": "^[ -~]+$",
        "description": "This job's own key (scoped to the caller, like the Idempotency-Key header of POST /jobs); "
                       "null or absent: none.",
    }  # fmt: skip
    return item


BULK_RESULT = {
    "type": "object",
    "required": ["index", "outcome", "status"],
    "properties": {
        "index": {"type": "integer", "description": "The item's position in `jobs`."},
        "outcome": {"type": "string", "enum": ["created", "replayed", "refused"]},
        "status": {"type": "integer", "description": "The status a POST /jobs of this item alone would have had."},
        "job": {"type": "object", "description": "created, replayed: the job.",
                "properties": {"id": {"type": "string"}, "type": {"type": "string"},
                               "status": {"type": "string", "enum": list(Job.Status.values)},
                               "url": {"type": "string", "description": "Path of the job: poll it with GET."}}},
        "error": {**cast(dict[str, Any], ERROR["properties"])["error"], "description": "refused: why, in the API's error shape."},
    },
}  # fmt: skip


def _bulk_path(enqueue_schemas: dict[str, dict[str, Any]], *, window_hours: float) -> dict[str, Any]:
    items = {"oneOf": [_bulk_item_variant(variant) for variant in enqueue_schemas.values()]}
    body = {
        "type": "object", "required": ["jobs"], "additionalProperties": False,
        "properties": {
            "jobs": {"type": "array", "minItems": 1, "maxItems": BULK_MAX_ITEMS, "items": items},
            "atomic": {"type": "boolean", "default": False,
                       "description": "true: one refused item refuses the request (422 batch_refused), none is "
                                      "enqueued. false: each item stands alone."},
        },
    }  # fmt: skip
    return {
        "post": {
            "operationId": "enqueueJobsBulk",
            "summary": f"Enqueue up to {BULK_MAX_ITEMS} jobs in one request",
            "description": (
                "One transaction for every job of the request, one publish to the broker after it commits. "
                "Jobs of one or several types; each item may carry its own `idempotency_key` (the same keys as "
                f"POST /jobs' header, remembered for {window_hours:g} hours). The answer has one result per item, "
                "in request order: `created`, `replayed` (the key's job, same type and payload) or `refused` with "
                "the error POST /jobs would have answered (403 for a type you may not enqueue, 422 for an "
                "invalid payload or a key conflict, 503 for a switched-off type). A refused item does not refuse "
                "the others unless `atomic` is true. The per-token enqueue limit counts jobs, not requests. "
                f"More than {BULK_MAX_ITEMS} items, or a body over the size limit: 413 naming the limit. The "
                "same key twice in one request: 422 `duplicate_idempotency_key` naming both positions."
            ),
            "parameters": [_ref("parameters", "X-Request-ID")],
            "requestBody": {"required": True, "content": _json(body)},
            "responses": {
                "200": _ok(
                    "A result per item, in request order",
                    {
                        "type": "object",
                        "required": ["atomic", "results"],
                        "properties": {
                            "atomic": {"type": "boolean"},
                            "results": {"type": "array", "items": BULK_RESULT},
                        },
                    },
                ),
                **_errors(400, 401, 403, 413, 415, 422, 429),
            },  # fmt: skip
        }
    }


HEALTH = {
    "type": "object",
    "required": ["status", "checks"],
    "properties": {
        "status": {"type": "string", "enum": ["ok", "unavailable"]},
        "checks": {"type": "object", "additionalProperties": {"type": "string"},
                   "description": "Each dependency (database, broker): `ok` or why it failed."},
    },
}  # fmt: skip


def openapi_document(*, server_url: str = "/") -> dict[str, Any]:
    """The OpenAPI 3.1 document for the API under ``server_url`` (an absolute URL of the site root)."""
    api_types = [spec for spec in registry.all_types() if spec.enqueueable_over_api]
    enqueue_schemas = {_enqueue_schema_name(spec.name): _enqueue_variant(spec) for spec in api_types}
    enqueue_body = {
        "oneOf": [_ref("schemas", name) for name in enqueue_schemas],
        "discriminator": {"propertyName": "type",
                          "mapping": {spec.name: f"#/components/schemas/{_enqueue_schema_name(spec.name)}"
                                      for spec in api_types}},
    }  # fmt: skip
    job_id = _ref("parameters", "JobId")
    request_id = _ref("parameters", "X-Request-ID")
    query = _query_parameter
    window_hours = getattr(settings, "JOBS_IDEMPOTENCY_WINDOW_SECONDS", 24 * 3600) / 3600
    document = {
        "openapi": "3.1.0",
        "info": {
            "title": "jobplatform API",
            "version": "1",
            "description": (
                "Enqueue background jobs and poll their state. Paths have no trailing slash.\n\n"
                "**Auth**: `Authorization: Bearer <token>` (server-side callers; `manage.py create_api_token`) or "
                "the browser session (then POSTs need the `X-CSRFToken` header).\n\n"
                "**Errors** share one shape (`Error`): a machine `code`, a `message` saying what was wrong and what "
                "was expected, `detail`, and `retryable`.\n\n"
                "**Polling**: `POST /jobs` answers `202` with `Location`; GET it until `status` is one of "
                "succeeded, failed, dead, cancelled.\n\n"
                "**Correlation**: send `X-Request-ID` to have your id carried into the job and its logs; "
                "every response echoes it."
            ),
        },
        "servers": [{"url": server_url.rstrip("/") + "/api"}],
        "security": [{"bearer": []}, {"session": []}],
        "paths": {
            "/jobs": {
                "post": {
                    "operationId": "enqueueJob",
                    "summary": "Enqueue a job",
                    "description": (
                        "Only the types below can be enqueued over the API; the payload is validated against the "
                        "type's schema. With `Idempotency-Key` (IETF httpapi draft), the same key and payload answer "
                        "`202` with the original job again (`Idempotent-Replayed: true`) instead of creating "
                        "another; the same key with a different type or payload is `422 idempotency_key_conflict`. "
                        f"Keys are scoped to the caller and remembered for {window_hours:g} hours."
                    ),
                    "parameters": [_ref("parameters", "Idempotency-Key"), request_id],
                    "requestBody": {"required": True, "content": _json(enqueue_body)},
                    "responses": {
                        "202": _linked(
                            _ok(
                                "Accepted (or replayed); Location points at the job",
                                _ref("schemas", "Job"),
                                "Location",
                                "Idempotent-Replayed",
                            ),
                            "getJob",
                            "cancelJob",
                        ),  # fmt: skip
                        **_errors(400, 401, 403, 413, 415, 422, 429, 503),
                    },
                },
                "get": {
                    "operationId": "listJobs",
                    "summary": "List your jobs (staff: everyone's), newest first",
                    "parameters": [
                        query("status", {"type": "string", "enum": list(Job.Status.values)}, "Only this state."),
                        query(
                            "due",
                            {"type": "string", "enum": list(DUE_FILTERS)},
                            "Jobs that run later: `later`, still waiting for their due time; `scheduled`, any job "
                            "given a due time (run_at).",
                        ),
                        query(
                            "type",
                            {"type": "string", "pattern": "^[A-Za-z0-9_.:-]{1,100}$"},
                            "Only jobs of this type (an unknown name finds none).",
                        ),
                        query(
                            "owner",
                            {"type": "integer", "minimum": 1, "maximum": 2**63 - 1},
                            "Operators only ('Can view job'): only this user's jobs (user id).",
                        ),
                        query(
                            "page",
                            {"type": "integer", "minimum": 1, "maximum": 10**6, "default": 1},
                            "1-based page number.",
                        ),
                        query(
                            "page_size",
                            {"type": "integer", "minimum": 1, "maximum": 100, "default": 20},
                            "Jobs per page.",
                        ),  # fmt: skip
                        request_id,
                    ],
                    "responses": {
                        "200": _ok("A page of jobs (without attempts)", _ref("schemas", "JobPage")),
                        **_errors(401, 403, 422),
                    },  # fmt: skip
                },
            },
            "/jobs/{job_id}": {
                "get": {
                    "operationId": "getJob",
                    "summary": "One job: state, progress, attempts, error, result",
                    "parameters": [job_id, request_id],
                    "responses": {
                        "200": _linked(_ok("The job", _ref("schemas", "Job")), "cancelJob"),
                        **_errors(401, 404, 405),
                    },  # fmt: skip
                }
            },
            "/jobs/{job_id}/cancel": {
                "post": {
                    "operationId": "cancelJob",
                    "summary": "Cancel a queued job, or ask a running one to stop",
                    "description": "A queued or retrying job is cancelled at once (`200`). A running job is asked "
                    "to stop (`202`, `cancel_requested: true`) and stops at its next progress check. "
                    "A finished job is `409`. No request body.",
                    "parameters": [job_id, request_id],
                    "responses": {
                        "200": _linked(_ok("Cancelled", _ref("schemas", "Job")), "getJob"),
                        "202": _linked(
                            _ok("Stop requested; the job is still running", _ref("schemas", "Job")), "getJob"
                        ),
                        **_errors(401, 403, 404, 405, 409),
                    },
                }
            },
            "/cron/{name}": {
                "post": {
                    "operationId": "triggerSchedule",
                    "summary": "Trigger a declared schedule (for external schedulers)",
                    "security": [{"cronSecret": []}],
                    "parameters": [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}],
                    "responses": {
                        "202": _ok("A job was enqueued", {"type": "object"}),
                        "200": _ok("Nothing enqueued, and why (e.g. already done this window)", {"type": "object"}),
                        **_errors(401, 404, 429, 503),
                    },  # fmt: skip
                }
            },
            "/ops/overview": {
                "get": {
                    "operationId": "getOpsOverview",
                    "summary": "Staff: queue depths, backlog age, dead-letter queue, success rate, alerts",
                    "description": "For dashboards and alerting probes. `status` is `alerting` when any threshold "
                    "(`JOBS_ALERT_*` settings) is crossed, and `alerts` says which and why. Always "
                    "`200` when answered; an unreachable database or broker is `/healthz`'s to report.",
                    "parameters": [request_id],
                    "responses": {"200": _ok("The overview", OPS_OVERVIEW), **_errors(401, 403)},
                }
            },
            "/healthz": {
                "get": {
                    "operationId": "getHealth",
                    "summary": "Liveness and readiness: can this process reach the database and the broker?",
                    "description": "Served at the site root (`/healthz`), not under `/api`; for load balancers and "
                    "compose healthchecks. `503` when a dependency is unreachable.",
                    "servers": [{"url": server_url.rstrip("/") or "/"}],
                    "security": [],
                    "responses": {
                        "200": {"description": "Everything reachable", "content": _json(HEALTH)},
                        "503": {"description": "A dependency is unreachable", "content": _json(HEALTH)},
                    },
                }
            },
            "/openapi.json": {
                "get": {
                    "operationId": "getOpenApi",
                    "summary": "This document",
                    "security": [],
                    "responses": {"200": _ok("OpenAPI 3.1", {"type": "object"})},
                }  # fmt: skip
            },
            "/docs": {
                "get": {
                    "operationId": "getDocs",
                    "summary": "Interactive docs (HTML)",
                    "security": [],
                    "responses": {
                        "200": {"description": "An HTML page", "content": {"text/html": {"schema": {"type": "string"}}}}
                    },
                }  # fmt: skip
            },
        },
        "components": {
            "schemas": {"Error": ERROR, "Job": JOB, "JobAttempt": ATTEMPT, "JobPage": JOB_PAGE, **enqueue_schemas},
            "parameters": {
                "JobId": {"name": "job_id", "in": "path", "required": True, "schema": {"type": "string"}},
                "X-Request-ID": {
                    "name": "X-Request-ID",
                    "in": "header",
                    "required": False,
                    "schema": {"type": "string"},
                    "description": "Correlation id carried into the job and its logs; echoed back. Used when it "
                    "matches `^[A-Za-z0-9._:-]{1,128}$`; otherwise (or when absent) one is generated.",
                },  # fmt: skip
                "Idempotency-Key": {
                    "name": "Idempotency-Key",
                    "in": "header",
                    "required": False,
                    "schema": {"type": "string", "pattern": IDEMPOTENCY_KEY_PATTERN},
                    "description": "A unique value per logical request (e.g. a UUID), as a "
                    'structured-field string (`"..."`) or bare. Send it again '
                    "with a retried request to get the original job back.",
                },  # fmt: skip
            },
            "headers": HEADERS,
            "responses": {f"Error{status}": _error_response(status) for status in ERROR_DESCRIPTIONS},
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "API token (admin → API tokens, or manage.py create_api_token). Each token has "
                    "scopes: `read` (list and get jobs), `enqueue` (enqueue and cancel), `ops` (the overview), "
                    "and an expiry; the user's permissions apply on top.",
                },
                "session": {
                    "type": "apiKey",
                    "in": "cookie",
                    "name": settings.SESSION_COOKIE_NAME,
                    "description": "Browser session; unsafe methods also need the X-CSRFToken header.",
                },
                "cronSecret": {"type": "http", "scheme": "bearer", "description": "The CRON_SECRET setting."},
            },  # fmt: skip
        },
    }
    paths = cast(dict[str, Any], document["paths"])
    paths["/jobs/bulk"] = _bulk_path(enqueue_schemas, window_hours=window_hours)
    for path, build in sorted(_EXTRA_PATHS.items()):
        paths[path] = build()
    cast(dict[str, Any], document["components"])["schemas"].update(copy.deepcopy(_app_schemas))
    return document
