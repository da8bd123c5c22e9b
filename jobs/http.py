"""The API's one JSON error shape, and the view wrapper that guarantees it.

Every error is ``{"error": {"code", "message", "detail", "retryable"}}`` with a status
that says whose fault it was; no request, however malformed, gets an HTML page or a
bare 500.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from . import exceptions as errors

logger = logging.getLogger("jobs.api")

# Status code per error class (the most specific class listed wins).
STATUS_FOR: list[tuple[type[errors.JobsError], int]] = [
    (errors.JobNotFound, 404),
    (errors.UnknownJobType, 422),
    (errors.PayloadInvalid, 422),
    (errors.IdempotencyKeyConflict, 422),
    (errors.IllegalTransition, 409),
    (errors.JobTypeDisabled, 503),
    (errors.LockNotAcquired, 409),
    (errors.RateLimited, 429),
    (errors.UnknownSchedule, 404),
]


class ApiError(errors.JobsError):
    """An error raised by the HTTP layer itself (authentication, request format)."""

    def __init__(self, message: str, *, code: str, status: int, detail: dict | None = None, retryable: bool = False,
                 headers: dict | None = None):  # fmt: skip
        super().__init__(message, detail=detail)
        self.code, self.status, self.retryable, self.headers = code, status, retryable, headers or {}


def error_response(*, code: str, message: str, status: int, detail: dict | None = None, retryable: bool = False,
                   headers: dict | None = None) -> JsonResponse:  # fmt: skip
    response = JsonResponse(
        {"error": {"code": code, "message": message, "detail": detail or {}, "retryable": retryable}}, status=status
    )
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def response_for(error: errors.JobsError) -> JsonResponse:
    if isinstance(error, ApiError):
        return error_response(code=error.code, message=error.message, status=error.status, detail=error.detail,
                              retryable=error.retryable, headers=error.headers)  # fmt: skip
    status = next((status for cls, status in STATUS_FOR if isinstance(error, cls)), 400)
    headers = {}
    if isinstance(error, errors.JobSnoozed):
        headers["Retry-After"] = str(max(1, int(error.wait_seconds + 0.999)))
    return error_response(code=error.code, message=error.message, status=status, detail=error.detail,
                          retryable=error.retryable, headers=headers)  # fmt: skip


def parse_json_object(request: HttpRequest) -> dict:
    """The request body as a JSON object, or a 400/415 saying what was wrong with it."""
    content_type = request.content_type or ""
    if content_type != "application/json":
        raise ApiError(f"expected a JSON body with Content-Type: application/json, got {content_type or 'none'!r}",
                       code="unsupported_media_type", status=415)  # fmt: skip
    try:
        body = json.loads(request.body or b"")
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(f"request body is not valid JSON: {exc}", code="malformed_json", status=400) from None
    if not isinstance(body, dict):
        raise ApiError(f"expected a JSON object, got {type(body).__name__}", code="invalid_body", status=422)
    return body


def api_view(*, methods: tuple[str, ...]) -> Callable:
    """Wrap a view: allowed methods, JSON errors for every failure, never an HTML page.

    CSRF is enforced by the authentication step (for session callers only), so the
    middleware's HTML 403 is bypassed here.
    """

    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @csrf_exempt
        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            if request.method not in methods:
                response = error_response(
                    code="method_not_allowed", status=405, detail={"allowed": list(methods)},
                    message=f"{request.method} is not allowed here; allowed: {', '.join(methods)}",
                )  # fmt: skip
                response["Allow"] = ", ".join(methods)
                return response
            try:
                return view(request, *args, **kwargs)
            except errors.JobsError as error:
                return response_for(error)
            except Exception:
                logger.exception("unhandled error in %s %s", request.method, request.path)
                return error_response(
                    code="internal_error", status=500, retryable=True,
                    message="the server failed to handle this request; it was logged, and retrying may succeed",
                )  # fmt: skip

        return wrapper

    return decorator
