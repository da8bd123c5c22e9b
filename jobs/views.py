"""The JSON API polled by frontends. Thin: authenticate, parse, call a service or selector, render.

Paths are a contract (see /api/openapi.json):
    POST /api/jobs                  enqueue (Idempotency-Key honoured)   202 + Location
    GET  /api/jobs                  the caller's jobs, filtered, paginated
    GET  /api/jobs/<id>             one job's state, progress, attempts, errors, result
    POST /api/jobs/<id>/cancel      cancel a waiting job / ask a running one to stop
    POST /api/cron/<name>           fire a declared schedule (Authorization: Bearer CRON_SECRET)
"""

from __future__ import annotations

import hmac

from django.conf import settings
from django.core.paginator import EmptyPage, Paginator
from django.http import HttpRequest, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.csrf import ensure_csrf_cookie

from . import registry
from .auth import authenticate
from .http import ApiError, api_view, parse_json_object
from .models import Job
from .openapi import openapi_document
from .ratelimit import RateLimiter
from .schedules import declared, schedule_trigger
from .selectors import job_get_for, job_list_for
from .services import job_cancel, job_enqueue, job_validate_payload

MAX_PAGE_SIZE = 100
IDEMPOTENCY_KEY_MAX = 200


def _iso(value) -> str | None:
    return value.isoformat() if value else None


def job_representation(job: Job, *, user, request: HttpRequest, with_attempts: bool = True) -> dict:
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
        "error": {"code": job.error_code, "message": job.error_message} if job.error_code else None,
        "result": job.result,
        "result_url": (job.result or {}).get("download_url") if isinstance(job.result, dict) else None,
        "correlation_id": job.correlation_id,
        "replay_of": job.replay_of_id,
        "url": request.build_absolute_uri(reverse("jobs:job-detail", args=[job.id])),
    }
    if with_attempts:
        body["attempts"] = [
            {
                "number": attempt.number,
                "outcome": attempt.outcome,
                "started_at": _iso(attempt.started_at),
                "finished_at": _iso(attempt.finished_at),
                "duration_ms": attempt.duration_ms,
                "error": {"code": attempt.error_code, "message": attempt.error_message} if attempt.error_code else None,
                **({"traceback": attempt.error_traceback} if user.is_staff and attempt.error_traceback else {}),
            }
            for attempt in job.attempts.order_by("finished_at", "id")
        ]
    return body


def _enqueue(request: HttpRequest, user) -> JsonResponse:
    body = parse_json_object(request)
    job_type_name, payload = body.get("type"), body.get("payload", {})
    api_types = sorted(spec.name for spec in registry.all_types() if spec.enqueueable_over_api)
    if not isinstance(job_type_name, str) or job_type_name not in api_types:
        raise ApiError(
            f"'type' must name a job type that can be enqueued over the API; got {job_type_name!r}",
            code="unknown_job_type", status=422, detail={"field": "type", "allowed": api_types},
        )  # fmt: skip
    unknown = sorted(set(body) - {"type", "payload"})
    if unknown:
        raise ApiError(f"unexpected top-level field(s) {unknown}; expected 'type' and 'payload'",
                       code="invalid_body", status=422, detail={"fields": unknown})  # fmt: skip
    if not isinstance(payload, dict):
        raise ApiError(f"'payload' must be a JSON object, got {type(payload).__name__}", code="invalid_payload",
                       status=422, detail={"errors": [{"field": "payload", "message": "expected object"}]})  # fmt: skip
    spec = registry.get(job_type_name)
    if spec.api_staff_only and not user.is_staff:
        raise ApiError(f"job type {job_type_name!r} can only be enqueued by staff", code="forbidden", status=403)
    payload = job_validate_payload(job_type=job_type_name, payload=payload)
    key = request.headers.get("Idempotency-Key")
    if key is not None and not (0 < len(key) <= IDEMPOTENCY_KEY_MAX):
        raise ApiError(f"Idempotency-Key must be 1 to {IDEMPOTENCY_KEY_MAX} characters", code="invalid_idempotency_key",
                       status=422)  # fmt: skip
    # Keys are scoped per caller, so two users cannot collide on (or probe) each other's keys.
    result = job_enqueue(
        job_type=job_type_name, payload=payload, owner=user, correlation_id=request.correlation_id,
        idempotency_key=f"api:{user.pk}:{key}" if key else None,
    )  # fmt: skip
    response = JsonResponse(job_representation(result.job, user=user, request=request, with_attempts=False), status=202)
    response["Location"] = reverse("jobs:job-detail", args=[result.job.id])
    if key:
        # Same key, same payload: the original job again (the draft's "replay" of the first response).
        response["Idempotent-Replayed"] = "false" if result.created else "true"
    return response


def _list(request: HttpRequest, user) -> JsonResponse:
    params = request.GET
    status = params.get("status") or None
    if status and status not in Job.Status.values:
        raise ApiError(f"unknown status {status!r}", code="invalid_parameter", status=422,
                       detail={"parameter": "status", "allowed": list(Job.Status.values)})  # fmt: skip
    try:
        page_number = int(params.get("page", 1))
        page_size = int(params.get("page_size", 20))
        owner_id = int(params["owner"]) if params.get("owner") else None
    except ValueError:
        raise ApiError("page, page_size and owner must be whole numbers", code="invalid_parameter", status=422) from None
    if not (1 <= page_size <= MAX_PAGE_SIZE) or page_number < 1:
        raise ApiError(f"page must be >= 1 and page_size between 1 and {MAX_PAGE_SIZE}", code="invalid_parameter",
                       status=422, detail={"max_page_size": MAX_PAGE_SIZE})  # fmt: skip
    jobs = job_list_for(user=user, status=status, job_type=params.get("type") or None, owner_id=owner_id)
    paginator = Paginator(jobs, page_size)
    try:
        page = paginator.page(page_number)
    except EmptyPage:
        page = None

    def link(number: int) -> str:
        query = params.copy()
        query["page"] = str(number)
        return request.build_absolute_uri(f"{request.path}?{query.urlencode()}")

    return JsonResponse({
        "count": paginator.count,
        "page": page_number,
        "page_size": page_size,
        "next": link(page_number + 1) if page and page.has_next() else None,
        "previous": link(page_number - 1) if page_number > 1 else None,
        "results": [job_representation(job, user=user, request=request, with_attempts=False) for job in (page or [])],
    })  # fmt: skip


@api_view(methods=("GET", "POST"))
def jobs_collection(request: HttpRequest) -> JsonResponse:
    user = authenticate(request)
    return _enqueue(request, user) if request.method == "POST" else _list(request, user)


@api_view(methods=("GET",))
def job_detail(request: HttpRequest, job_id: str) -> JsonResponse:
    user = authenticate(request)
    return JsonResponse(job_representation(job_get_for(user=user, job_id=job_id), user=user, request=request))


@api_view(methods=("POST",))
def job_cancel_view(request: HttpRequest, job_id: str) -> JsonResponse:
    user = authenticate(request)
    job = job_get_for(user=user, job_id=job_id)
    job_cancel(job=job, actor=user)
    return JsonResponse(job_representation(job, user=user, request=request))


@api_view(methods=("GET",))
def openapi_json(request: HttpRequest) -> JsonResponse:
    return JsonResponse(openapi_document(server_url=request.build_absolute_uri("/")))


@ensure_csrf_cookie  # the page's own "Send" buttons post with the session's CSRF token
def api_docs(request: HttpRequest):
    return render(request, "jobs/api_docs.html", {"schema_url": reverse("jobs:openapi")})


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
    scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
    # Constant-time comparison: response timing must not reveal how much of a guess was right.
    if scheme.lower() != "bearer" or not hmac.compare_digest(presented.strip().encode(), secret.encode()):
        raise ApiError("missing or wrong cron secret: send 'Authorization: Bearer <CRON_SECRET>'", code="unauthenticated",
                       status=401, headers={"WWW-Authenticate": 'Bearer realm="cron"'})  # fmt: skip
    RateLimiter.named("cron-endpoint").acquire(max_wait=0)
    schedule = declared().get(name)
    if schedule is None or schedule.job_type is None:
        job_schedules = sorted(n for n, s in declared().items() if s.job_type)
        raise ApiError(f"no job schedule named {name!r}", code="unknown_schedule", status=404,
                       detail={"schedules": job_schedules})  # fmt: skip
    result = schedule_trigger(name=name, source="http")
    return JsonResponse(result.as_dict(), status=202 if result.enqueued_job_id else 200)
