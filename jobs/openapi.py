"""The API's OpenAPI 3.1 document, built from the job type registry."""

from __future__ import annotations

from . import registry
from .models import Job

ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "detail", "retryable"],
            "properties": {
                "code": {"type": "string", "description": "machine-readable, e.g. invalid_payload"},
                "message": {"type": "string", "description": "what was wrong and what was expected"},
                "detail": {"type": "object"},
                "retryable": {"type": "boolean", "description": "whether sending the same request again can succeed"},
            },
        }
    },
}
TIMESTAMP = {"type": ["string", "null"], "format": "date-time"}
JOB = {
    "type": "object",
    "properties": {
        "id": {"type": "string"}, "type": {"type": "string"}, "queue": {"type": "string"},
        "status": {"type": "string", "enum": list(Job.Status.values)},
        "progress": {"type": "object", "properties": {"percent": {"type": "integer"}, "message": {"type": "string"}}},
        "attempt": {"type": "integer"}, "max_attempts": {"type": "integer"}, "cancel_requested": {"type": "boolean"},
        "created_at": TIMESTAMP, "enqueued_at": TIMESTAMP, "started_at": TIMESTAMP, "finished_at": TIMESTAMP,
        "next_retry_at": TIMESTAMP,
        "error": {"type": ["object", "null"], "properties": {"code": {"type": "string"}, "message": {"type": "string"}}},
        "result": {}, "result_url": {"type": ["string", "null"]}, "correlation_id": {"type": "string"},
        "replay_of": {"type": ["string", "null"]}, "url": {"type": "string"},
        "attempts": {"type": "array", "items": {"type": "object"}},
    },
}  # fmt: skip


def _error_responses(*codes: int) -> dict:
    descriptions = {400: "Malformed request", 401: "Not authenticated", 403: "Not allowed", 404: "No such job (or not yours)",
                    405: "Method not allowed", 409: "Not in a state that allows this", 415: "Not JSON",
                    422: "Invalid request: each field and what was expected", 503: "Job type switched off"}  # fmt: skip
    return {
        str(code): {"description": descriptions[code], "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
        for code in codes
    }


def openapi_document(*, server_url: str = "/") -> dict:
    api_types = [spec for spec in registry.all_types() if spec.enqueueable_over_api]
    enqueue_variants = [
        {
            "type": "object",
            "title": spec.name,
            "description": spec.description + (" (staff only)" if spec.api_staff_only else ""),
            "required": ["type"],
            "properties": {"type": {"const": spec.name}, "payload": spec.api_schema},
        }
        for spec in api_types
    ]
    job_id = {"name": "job_id", "in": "path", "required": True, "schema": {"type": "string"}}
    request_id = {"name": "X-Request-ID", "in": "header", "required": False, "schema": {"type": "string"},
                  "description": "Correlation id, carried into the job and its logs; echoed back (generated if absent)."}  # fmt: skip
    job_response = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Job"}}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "jobplatform API", "version": "1",
                 "description": "Enqueue background jobs and poll their state. Errors share one shape (Error)."},  # fmt: skip
        "servers": [{"url": server_url.rstrip("/") + "/api"}],
        "security": [{"bearer": []}, {"session": []}],
        "paths": {
            "/jobs": {
                "post": {
                    "summary": "Enqueue a job",
                    "parameters": [
                        {"name": "Idempotency-Key", "in": "header", "required": False, "schema": {"type": "string", "maxLength": 200},
                         "description": "Same key and payload: the original job again (Idempotent-Replayed: true). "
                                        "Same key, different payload: 422 idempotency_key_conflict."},  # fmt: skip
                        request_id,
                    ],
                    "requestBody": {"required": True, "content": {"application/json": {"schema": {"oneOf": enqueue_variants}}}},
                    "responses": {
                        "202": {"description": "Accepted; Location points at the job", **job_response,
                                "headers": {"Location": {"schema": {"type": "string"}}}},  # fmt: skip
                        **_error_responses(400, 401, 403, 415, 422, 503),
                    },
                },
                "get": {
                    "summary": "List your jobs (staff: all), newest first",
                    "parameters": [
                        {"name": "status", "in": "query", "schema": {"type": "string", "enum": list(Job.Status.values)}},
                        {"name": "type", "in": "query", "schema": {"type": "string"}},
                        {"name": "owner", "in": "query", "schema": {"type": "integer"}, "description": "staff only"},
                        {"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 1, "default": 1}},
                        {"name": "page_size", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20}},
                        request_id,
                    ],
                    "responses": {
                        "200": {"description": "A page of jobs", "content": {"application/json": {"schema": {
                            "type": "object", "properties": {
                                "count": {"type": "integer"}, "page": {"type": "integer"}, "page_size": {"type": "integer"},
                                "next": {"type": ["string", "null"]}, "previous": {"type": ["string", "null"]},
                                "results": {"type": "array", "items": {"$ref": "#/components/schemas/Job"}}}}}}},  # fmt: skip
                        **_error_responses(401, 422),
                    },
                },
            },
            "/jobs/{job_id}": {"get": {"summary": "One job: state, progress, attempts, errors, result",
                                       "parameters": [job_id, request_id],
                                       "responses": {"200": {"description": "The job", **job_response},
                                                     **_error_responses(401, 404)}}},  # fmt: skip
            "/jobs/{job_id}/cancel": {"post": {"summary": "Cancel a queued job, or ask a running one to stop",
                                               "parameters": [job_id, request_id],
                                               "responses": {"200": {"description": "The job after the request", **job_response},
                                                             **_error_responses(401, 404, 409)}}},  # fmt: skip
            "/cron/{name}": {"post": {"summary": "Trigger a declared schedule (for external schedulers)",
                                      "security": [{"cronSecret": []}],
                                      "parameters": [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}],
                                      "responses": {"200": {"description": "What was enqueued, or why it was skipped"},
                                                    **_error_responses(401, 404)}}},  # fmt: skip
        },
        "components": {
            "schemas": {"Error": ERROR, "Job": JOB},
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "API token (manage.py create_api_token)"},
                "session": {"type": "apiKey", "in": "cookie", "name": "sessionid",
                            "description": "Browser session; unsafe methods need X-CSRFToken"},  # fmt: skip
                "cronSecret": {"type": "http", "scheme": "bearer", "description": "CRON_SECRET"},
            },
        },
    }
