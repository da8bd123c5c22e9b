"""The exports API in the platform's OpenAPI document (registered by ExportsConfig.ready)."""

from __future__ import annotations

import copy
from typing import Any

from jobs.public import openapi_error_responses as _errors

from .models import Export
from .sources import ExportSource, sources_all

STATUSES = list(Export.Status.values)


def _ref(kind: str, name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/{kind}/{name}"}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


LIMIT_REACHED = {
    "description": "Too many of your exports are queued or running (EXPORTS_MAX_ACTIVE_PER_USER); retry later",
    "content": _json(_ref("schemas", "Error")),
    "headers": {"Retry-After": _ref("headers", "Retry-After")},
}
EXPORT_ID = {"name": "export_id", "in": "path", "required": True,
             "description": "ASCII digits; anything else is a 404 (`not_found`)",
             "schema": {"type": "integer", "minimum": 1, "maximum": 2**63 - 1}}  # fmt: skip
# What a failed (or retrying) export's ``error`` says; exception text stays with operators (admin, logs).
ERROR_DESCRIPTION = ("why the export failed, or why its last attempt did (status queued: it is retried). `code` is "
                     "`export_failed` (details are logged for operators), `cancelled`, `export_too_large` or "
                     "`time_limit_exceeded`; `message` is fixed per code")  # fmt: skip
INSTANT_RANGE = "an ISO 8601 date-time with an offset (or in the server's time zone), within years 1 to 9999 in UTC"
# The correlation middleware serves every path: the caller's id is carried into the export's job and logs.
REQUEST_ID = _ref("parameters", "X-Request-ID")

EXPORT = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "source": {"type": "string"},
        "format": {"type": "string", "enum": ["csv", "xlsx", "jsonl"]},
        "gzip": {"type": "boolean"},
        "bom": {"type": "boolean"},
        "filters": {"type": "object"},
        "status": {"type": "string", "enum": STATUSES},
        "progress": {"type": "object", "properties": {"percent": {"type": "integer"}, "rows": {"type": "integer"},
                                                      "rows_estimated": {"type": "integer"}}},
        "row_count": {"type": "integer"},
        "byte_size": {"type": "integer"},
        "sha256": {"type": ["string", "null"]},
        "file_name": {"type": ["string", "null"]},
        "job_id": {"type": ["string", "null"], "description": "the job building the file (GET /api/jobs/{id})"},
        "error": {"type": ["object", "null"], "description": ERROR_DESCRIPTION,
                  "properties": {"code": {"type": "string"}, "message": {"type": "string"}}},
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

FORMATS = list(Export.Format.values)


def _filters(source: ExportSource) -> dict[str, Any]:
    """The source's filter schema, each date-time filter saying which instants are taken."""
    schema = copy.deepcopy(source.filter_schema)
    for spec in schema.get("properties", {}).values():
        if spec.get("format") == "date-time":
            spec["description"] = "; ".join(filter(None, [spec.get("description"), INSTANT_RANGE]))
    return schema


def _request_variant(source: ExportSource, export_format: str) -> dict[str, Any]:
    """One (source, format) pair a caller may ask for, with the options that format takes."""
    flag = {"type": "boolean", "default": False}
    return {
        "type": "object",
        "title": f"{source.name} as {export_format}",
        "required": ["source", "format"],
        "additionalProperties": False,
        "properties": {
            "source": {"const": source.name, "description": source.title + (" (staff only)" if source.staff_only
                                                                            else "")},
            "format": {"const": export_format},
            "filters": _filters(source),
            # xlsx is already compressed; a byte order mark is for CSV read by spreadsheet programs.
            "gzip": {**flag, "description": "gzip the file"} if export_format != "xlsx" else {"const": False},
            "bom": {**flag, "description": "UTF-8 byte order mark for Excel"} if export_format == "csv"
            else {"const": False},
        },
    }  # fmt: skip


def export_request_schema() -> dict[str, Any]:
    """What POST /exports accepts: one variant per configured source and format, each with that source's
    filter schema, so the document refuses what the API refuses (built when the document is made, so it
    follows EXPORTS_SOURCES)."""
    return {
        "description": "a source from GET /exports/sources, a format, the source's filters and the format's options",
        "oneOf": [_request_variant(source, export_format) for source in sources_all().values()
                  for export_format in FORMATS],
    }  # fmt: skip


PATHS: dict[str, dict[str, Any]] = {
    "/exports": {
        "post": {
            "operationId": "createExport",
            "summary": "Request an export (built in the background)",
            "description": "Answers `202` at once with the export and `Location`; poll it until `status` is "
            "succeeded (then `download_url` is set), failed or cancelled. With `Idempotency-Key` a retried "
            "request answers the original export (`Idempotent-Replayed: true`).",
            "parameters": [_ref("parameters", "Idempotency-Key"), REQUEST_ID],
            "requestBody": {"required": True, "content": {}},  # set by collection_path_item()
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
                {
                    "name": "status",
                    "in": "query",
                    "schema": {"type": "string", "enum": STATUSES},
                    "description": "only exports in this state",
                },
                {
                    "name": "page",
                    "in": "query",
                    "schema": {"type": "integer", "minimum": 1, "maximum": 10**6, "default": 1},
                },
                {"name": "page_size", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100}},
                REQUEST_ID,
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
            "parameters": [REQUEST_ID],
            "responses": {"200": {"description": "Sources", "content": _json({"type": "object"})}, **_errors(401)},
        }
    },
    "/exports/{export_id}": {
        "get": {
            "operationId": "getExport",
            "summary": "One export: status, progress, rows, size, download_url when ready",
            "parameters": [EXPORT_ID, REQUEST_ID],
            "responses": {
                "200": {"description": "The export", "content": _json(_ref("schemas", "Export"))},
                **_errors(401, 404),
            },  # fmt: skip
        },
        "delete": {
            "operationId": "deleteExport",
            "summary": "Cancel a queued export (200), ask a running one to stop (202), or delete a ready file (200)",
            "parameters": [EXPORT_ID, REQUEST_ID],
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

SCHEMAS = {"Export": EXPORT}


def collection_path_item() -> dict[str, Any]:
    """/exports with its request body built from the sources configured now."""
    item = copy.deepcopy(PATHS["/exports"])
    item["post"]["requestBody"]["content"] = _json(export_request_schema())
    return item
