"""The exports API in the platform's OpenAPI document (registered by ExportsConfig.ready)."""

from __future__ import annotations

from jobs.public import openapi_error_responses as _errors


def _ref(kind: str, name: str) -> dict:
    return {"$ref": f"#/components/{kind}/{name}"}


def _json(schema: dict) -> dict:
    return {"application/json": {"schema": schema}}


LIMIT_REACHED = {
    "description": "Too many of your exports are queued or running (EXPORTS_MAX_ACTIVE_PER_USER); retry later",
    "content": _json(_ref("schemas", "Error")),
    "headers": {"Retry-After": _ref("headers", "Retry-After")},
}
EXPORT_ID = {"name": "export_id", "in": "path", "required": True, "schema": {"type": "integer"}}

EXPORT = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "source": {"type": "string"},
        "format": {"type": "string", "enum": ["csv", "xlsx", "jsonl"]},
        "gzip": {"type": "boolean"},
        "bom": {"type": "boolean"},
        "filters": {"type": "object"},
        "status": {"type": "string", "enum": ["queued", "running", "succeeded", "failed", "cancelled", "expired"]},
        "progress": {"type": "object", "properties": {"percent": {"type": "integer"}, "rows": {"type": "integer"},
                                                      "rows_estimated": {"type": "integer"}}},
        "row_count": {"type": "integer"},
        "byte_size": {"type": "integer"},
        "sha256": {"type": ["string", "null"]},
        "file_name": {"type": ["string", "null"]},
        "job_id": {"type": ["string", "null"], "description": "the job building the file (GET /api/jobs/{id})"},
        "error": {"type": ["object", "null"], "properties": {"code": {"type": "string"},
                                                              "message": {"type": "string"}}},
        "created_at": {"type": "string", "format": "date-time"},
        "started_at": {"type": ["string", "null"], "format": "date-time"},
        "finished_at": {"type": ["string", "null"], "format": "date-time"},
        "expires_at": {"type": ["string", "null"], "format": "date-time", "description": "the file is deleted then"},
        "download_url": {"type": ["string", "null"], "description": "when succeeded: a signed link for the owner "
                         "only, valid for EXPORTS_LINK_MAX_AGE_SECONDS (fetch the export again for a new one)"},
        "download_url_expires_at": {"type": ["string", "null"], "format": "date-time"},
        "url": {"type": "string"},
    },
}  # fmt: skip

EXPORT_REQUEST = {
    "type": "object",
    "required": ["source", "format"],
    "additionalProperties": False,
    "properties": {
        "source": {"type": "string", "description": "a name from GET /exports/sources (products, jobs, audit, ...)"},
        "format": {"type": "string", "enum": ["csv", "xlsx", "jsonl"]},
        "filters": {"type": "object", "description": "checked against the source's filter schema"},
        "gzip": {"type": "boolean", "default": False, "description": "gzip the file (csv, jsonl)"},
        "bom": {"type": "boolean", "default": False, "description": "csv: UTF-8 byte order mark for Excel"},
    },
}

PATHS = {
    "/exports": {
        "post": {
            "operationId": "createExport",
            "summary": "Request an export (built in the background)",
            "description": "Answers `202` at once with the export and `Location`; poll it until `status` is "
            "succeeded (then `download_url` is set), failed or cancelled. With `Idempotency-Key` a retried "
            "request answers the original export (`Idempotent-Replayed: true`).",
            "parameters": [_ref("parameters", "Idempotency-Key")],
            "requestBody": {"required": True, "content": _json(_ref("schemas", "ExportRequest"))},
            "responses": {
                "202": {
                    "description": "Accepted; Location points at the export",
                    "content": _json(_ref("schemas", "Export")),
                    "headers": {
                        "Location": _ref("headers", "Location"),
                        "Idempotent-Replayed": _ref("headers", "Idempotent-Replayed"),
                    },
                },
                "429": LIMIT_REACHED,
                **_errors(400, 401, 403, 415, 422),
            },
        },  # fmt: skip
        "get": {
            "operationId": "listExports",
            "summary": "Your exports, newest first",
            "parameters": [
                {"name": "status", "in": "query", "schema": {"type": "string"}},
                {"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 1, "default": 1}},
                {"name": "page_size", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100}},
            ],
            "responses": {
                "200": {
                    "description": "A page of exports",
                    "content": _json(
                        {
                            "type": "object",
                            "properties": {
                                "count": {"type": "integer"},
                                "next": {"type": ["string", "null"]},
                                "previous": {"type": ["string", "null"]},
                                "results": {"type": "array", "items": _ref("schemas", "Export")},
                            },
                        }
                    ),
                },
                **_errors(401, 422),
            },
        },  # fmt: skip
    },
    "/exports/sources": {
        "get": {
            "operationId": "listExportSources",
            "summary": "What you may export: sources with their columns and filter schemas, and the formats",
            "responses": {"200": {"description": "Sources", "content": _json({"type": "object"})}, **_errors(401)},
        }
    },
    "/exports/{export_id}": {
        "get": {
            "operationId": "getExport",
            "summary": "One export: status, progress, rows, size, download_url when ready",
            "parameters": [EXPORT_ID],
            "responses": {
                "200": {"description": "The export", "content": _json(_ref("schemas", "Export"))},
                **_errors(401, 404),
            },  # fmt: skip
        },
        "delete": {
            "operationId": "deleteExport",
            "summary": "Cancel a queued export (200), ask a running one to stop (202), or delete a ready file (200)",
            "parameters": [EXPORT_ID],
            "responses": {
                "200": {
                    "description": "`outcome`: cancelled, deleted or unchanged",
                    "content": _json({"type": "object"}),
                },
                "202": {"description": "`outcome`: cancel_requested", "content": _json({"type": "object"})},
                **_errors(401, 403, 404),
            },  # fmt: skip
        },
    },
}

SCHEMAS = {"Export": EXPORT, "ExportRequest": EXPORT_REQUEST}
