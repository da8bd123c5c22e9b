"""The exports API, the download endpoint and the page users watch. Thin: authenticate, parse, call, render.

POST   /api/exports         request an export (Idempotency-Key honoured)   202 + Location
GET    /api/exports         the caller's exports, newest first, paginated
GET    /api/exports/<id>    one export: status, progress, rows, size, download_url when ready
DELETE /api/exports/<id>    cancel a queued/running export, or delete a ready one's file
GET    /api/exports/sources what the caller may export (columns and filter schemas)
GET    /exports/download/<signed token>   the file (owner only; expiring)
GET    /exports/            the page
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import AnonymousUser
from django.core.paginator import EmptyPage, Paginator
from django.http import FileResponse, HttpRequest, HttpResponse, HttpResponseBase, HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import content_disposition_header
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.decorators.http import require_safe

from jobs.public import (
    ApiError,
    api_authenticate,
    api_idempotency_key,
    api_parse_json_object,
    api_query_choice,
    api_query_int,
    api_view,
)

from .exceptions import ExportRequestInvalid, ExportTooLarge
from .formats import CONTENT_TYPES
from .models import Export
from .selectors import export_get_for, export_list_for
from .services import (
    ExportRequest,
    download_link_issue,
    download_link_open,
    export_cancel_or_delete,
    export_create,
    export_local_path,
    export_presigned_url,
)
from .sources import sources_for

REQUEST_FIELDS = {"source": str, "format": str, "filters": dict, "gzip": bool, "bom": bool}
PAGE_SIZE_DEFAULT, PAGE_SIZE_MAX = 20, 100
PAGE_MAX = 10**6  # as /api/jobs (and the OpenAPI document) bound it

# What the owner is told about a failed attempt or export. An exception's text can hold SQL, paths or
# settings: it stays in the export's record (the admin), the job's attempts and the log. Only the outcomes
# written for users keep their words; everything else is one stable code and message.
EXPORT_FAILED = {"code": "export_failed",
                 "message": "the export could not be built; it was logged, and a new export may succeed"}  # fmt: skip
ERRORS_FOR_USERS = {
    "cancelled": "cancelled on request",
    ExportTooLarge.code: "the export has more rows than allowed (EXPORTS_MAX_ROWS); narrow the filters",
    "time_limit_exceeded": "the export took longer than allowed (EXPORTS_TIME_LIMIT_SECONDS); narrow the filters",
}


def _iso(value: Any) -> str | None:
    return value.isoformat() if value else None


def _error_for_users(export: Export) -> dict[str, Any] | None:
    if not export.error_code:
        return None
    if export.error_code in ERRORS_FOR_USERS:
        return {"code": export.error_code, "message": ERRORS_FOR_USERS[export.error_code]}
    return dict(EXPORT_FAILED)


def export_representation(export: Export, *, request: HttpRequest) -> dict[str, Any]:
    """The export as the API shows it; ``download_url`` (fresh, expiring) only when the file is ready."""
    link = download_link_issue(export=export) if export.status == Export.Status.SUCCEEDED else None
    return {
        "id": export.pk,
        "source": export.source,
        "format": export.format,
        "gzip": export.gzip,
        "bom": export.bom,
        "filters": export.filters,
        "status": export.status,
        "progress": {"percent": export.progress, "rows": export.row_count, "rows_estimated": export.rows_estimated},
        "row_count": export.row_count,
        "byte_size": export.byte_size,
        "sha256": export.sha256 or None,
        "file_name": export.file_name or None,
        "job_id": export.job_id or None,
        "error": _error_for_users(export),
        "created_at": _iso(export.created_at),
        "started_at": _iso(export.started_at),
        "finished_at": _iso(export.finished_at),
        "expires_at": _iso(export.expires_at),
        "download_url": request.build_absolute_uri(link.path) if link else None,
        "download_url_expires_at": _iso(link.expires_at) if link else None,
        "url": request.build_absolute_uri(reverse("exports-api:export-detail", args=[export.pk])),
    }


def _parse_request(request: HttpRequest) -> ExportRequest:
    body = api_parse_json_object(request)
    errors = [{"field": name, "message": "unexpected field"} for name in sorted(set(body) - set(REQUEST_FIELDS))]
    errors += [{"field": name, "message": f"expected {kind.__name__.replace('str', 'string')}"}
               for name, kind in REQUEST_FIELDS.items()
               if name in body and not isinstance(body[name], kind)]  # fmt: skip
    errors += [{"field": name, "message": "required"} for name in ("source", "format") if name not in body]
    if errors:
        raise ExportRequestInvalid("; ".join(f"{e['field']}: {e['message']}" for e in errors) +
                                   f" (fields: {', '.join(REQUEST_FIELDS)})", detail={"errors": errors})  # fmt: skip
    return ExportRequest(source=body["source"], format=body["format"], filters=body.get("filters", {}),
                         gzip=body.get("gzip", False), bom=body.get("bom", False))  # fmt: skip


def _create(request: HttpRequest, user: Any) -> JsonResponse:
    wanted = _parse_request(request)
    key = api_idempotency_key(request)
    export, created = export_create(owner=user, wanted=wanted, idempotency_key=key,
                                    correlation_id=getattr(request, "correlation_id", None))  # fmt: skip
    response = JsonResponse(export_representation(export, request=request), status=202)
    response["Location"] = reverse("exports-api:export-detail", args=[export.pk])
    if key:
        response["Idempotent-Replayed"] = "false" if created else "true"
    return response


def _list(request: HttpRequest, user: Any) -> JsonResponse:
    # Read (and refused: empty, out of range) exactly as /api/jobs reads its query parameters.
    status = api_query_choice(request, "status", allowed=list(Export.Status.values))
    number = api_query_int(request, "page", default=1, maximum=PAGE_MAX)
    size = api_query_int(request, "page_size", default=PAGE_SIZE_DEFAULT, maximum=PAGE_SIZE_MAX)
    paginator = Paginator(export_list_for(user=user, status=status), size)
    try:
        exports = list(paginator.page(number).object_list)
    except EmptyPage:
        exports = []

    def page_url(page: int) -> str:
        query = request.GET.copy()
        query["page"] = str(page)
        return request.build_absolute_uri(f"{request.path}?{query.urlencode()}")

    return JsonResponse({
        "count": paginator.count, "page": number, "page_size": size,
        "next": page_url(number + 1) if number < paginator.num_pages else None,
        "previous": page_url(min(number - 1, paginator.num_pages)) if number > 1 else None,
        "results": [export_representation(export, request=request) for export in exports],
    })  # fmt: skip


@api_view(methods=("GET", "POST"))
def exports_collection(request: HttpRequest) -> JsonResponse:
    """POST: request an export. GET: the caller's exports, newest first."""
    # Token scopes as for /api/jobs: requesting (and cancelling) needs "enqueue", reading "read".
    user = api_authenticate(request, scope="enqueue" if request.method == "POST" else "read")
    return _create(request, user) if request.method == "POST" else _list(request, user)


@api_view(methods=("GET", "DELETE"))
def export_detail(request: HttpRequest, export_id: int) -> JsonResponse:
    """GET: one of the caller's exports. DELETE: cancel it, or delete its file."""
    user = api_authenticate(request, scope="read" if request.method == "GET" else "enqueue")
    export = export_get_for(user=user, export_id=export_id)
    if request.method == "GET":
        return JsonResponse(export_representation(export, request=request))
    outcome = export_cancel_or_delete(export=export, actor=user)
    export.refresh_from_db()
    body = {"outcome": outcome, "export": export_representation(export, request=request)}
    return JsonResponse(body, status=202 if outcome == "cancel_requested" else 200)


@api_view(methods=("GET",))
def export_sources(request: HttpRequest) -> JsonResponse:
    """The sources the caller may export, with their columns and filter schemas."""
    user = api_authenticate(request, scope="read")
    return JsonResponse({"sources": [source.as_dict() for source in sources_for(user=user)],
                         "formats": list(Export.Format.values)})  # fmt: skip


@api_view(methods=("GET", "HEAD"))
def download(request: HttpRequest, token: str) -> HttpResponseBase:
    """The export's file for its owner (session or bearer token), through a signed, expiring link."""
    user: AbstractBaseUser | AnonymousUser | None = request.user if request.user.is_authenticated else None
    if user is None and request.headers.get("Authorization"):
        user = api_authenticate(request, scope="read")
    export = download_link_open(token=token, user=user)
    # None only when not sent as an attachment; as one it is at least "attachment".
    disposition = content_disposition_header(True, export.file_name) or "attachment"
    path = export_local_path(export=export)
    if path is None:  # object storage: the client fetches it from there, with a URL valid for a minute
        return HttpResponseRedirect(export_presigned_url(export=export, content_disposition=disposition))
    content_type = "application/gzip" if export.gzip else CONTENT_TYPES[export.format]
    if settings.EXPORTS_SENDFILE_HEADER:
        # nginx (X-Accel-Redirect to an internal location) or Apache (X-Sendfile) sends the bytes.
        relative = export.storage_key
        value = (settings.EXPORTS_SENDFILE_PREFIX.rstrip("/") + "/" + relative
                 if settings.EXPORTS_SENDFILE_HEADER == "X-Accel-Redirect" else path)  # fmt: skip
        response: HttpResponseBase = HttpResponse(content_type=content_type)
        response[settings.EXPORTS_SENDFILE_HEADER] = value
    else:
        try:
            handle = open(path, "rb")  # noqa: SIM115  (FileResponse closes it)
        except FileNotFoundError:
            raise ApiError(f"the file of export {export.pk} is missing from storage", code="export_gone",
                           status=410) from None  # fmt: skip
        response = FileResponse(handle, content_type=content_type)
        response["Content-Length"] = str(export.byte_size)
    response["Content-Disposition"] = disposition
    response["Cache-Control"] = "private, no-store"
    response["X-Content-Type-Options"] = "nosniff"
    return response


@require_safe
@login_required(login_url="exports:login")
@ensure_csrf_cookie  # the page's script posts to the API with the session's CSRF token
def exports_page(request: HttpRequest) -> HttpResponse:
    """Choose source, format and filters; watch progress; download; see recent exports."""
    return render(request, "exports/page.html", {
        "sources": [source.as_dict() for source in sources_for(user=request.user)], "formats": Export.Format.choices,
        "api_url": reverse("exports-api:export-collection"),
        "link_minutes": settings.EXPORTS_LINK_MAX_AGE_SECONDS // 60,
        "retention_days": settings.EXPORTS_RETENTION_SECONDS / 86400,
    })  # fmt: skip
