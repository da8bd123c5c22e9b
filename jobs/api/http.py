"""The API's one JSON error shape, and the view wrapper that guarantees it.

Every error is ``{"error": {"code", "message", "detail", "retryable"}}`` with a status
that says whose fault it was; no request, however malformed, gets an HTML page or a
bare 500. Unexpected failures are logged and answered with a JSON 500 ``internal_error``.
"""

from __future__ import annotations

import functools
import json
import logging
import math
from collections.abc import Callable
from typing import Any, NoReturn

from django.conf import settings
from django.core.exceptions import PermissionDenied, RequestDataTooBig, SuspiciousOperation
from django.http import Http404, HttpRequest, HttpResponseBase, JsonResponse
from django.urls import register_converter
from django.views.decorators.csrf import csrf_exempt

from jobs.foundation import exceptions as errors

logger = logging.getLogger("jobs.api")

# Status code per error class; the first matching entry wins, so subclasses come first.
STATUS_FOR: list[tuple[type[errors.JobsError], int]] = [
    (errors.JobNotFound, 404),
    (errors.UnknownJobType, 422),
    (errors.PayloadInvalid, 422),
    (errors.ScheduleInvalid, 422),
    (errors.IdempotencyKeyConflict, 422),
    (errors.IllegalTransition, 409),
    (errors.JobTypeDisabled, 503),
    (errors.LockNotAcquired, 409),
    (errors.RateLimited, 429),
    (errors.UnknownSchedule, 404),
]

# A switched-off type comes back when an operator says so; a minute is a polite polling interval.
DISABLED_TYPE_RETRY_AFTER_SECONDS = 60

JSON_CONTENT_TYPES = ("application/json",)
# Ids in paths and query parameters are bounded by the column (bigint), so none can overflow it.
BIGINT_MAX = 2**63 - 1


class PathIdConverter:
    """``<id:name>`` in a URL pattern: a database id, ASCII digits only, within a bigint.

    Not ``\\d`` (in Python it matches every script's digits, and ``int("١")`` is 1, so ``/exports/١``
    would name export 1) and not an unbounded ``int``. Anything else does not match the pattern, so the
    path answers the API's JSON 404.
    """

    regex = "[0-9]+"

    def to_python(self, value: str) -> int:
        number = int(value) if len(value) <= 19 else BIGINT_MAX + 1
        if number > BIGINT_MAX:
            raise ValueError(f"{value[:30]} is beyond a database id")  # Django reads this as "no match"
        return number

    def to_url(self, value: int | str) -> str:
        return str(value)


# Registered where the API helpers live: every URLconf with API views imports this module first.
register_converter(PathIdConverter, "id")


class ApiError(errors.JobsError):
    """An error raised by the HTTP layer itself (authentication, request format, query parameters)."""

    def __init__(self, message: str, *, code: str, status: int, detail: dict[str, Any] | None = None, retryable: bool = False,
                 headers: dict[str, str] | None = None):  # fmt: skip
        super().__init__(message, detail=detail)
        self.code, self.status, self.retryable, self.headers = code, status, retryable, headers or {}


def error_response(*, code: str, message: str, status: int, detail: dict[str, Any] | None = None, retryable: bool = False,
                   headers: dict[str, str] | None = None) -> JsonResponse:  # fmt: skip
    """Render the one error shape; every API error response is built here."""
    response = JsonResponse(
        {"error": {"code": code, "message": message, "detail": detail or {}, "retryable": retryable}}, status=status
    )
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def response_for(error: errors.JobsError) -> JsonResponse:
    """The HTTP answer for a platform error: its code, message and detail, with the status its class maps to."""
    if isinstance(error, ApiError):
        return error_response(code=error.code, message=error.message, status=error.status, detail=error.detail,
                              retryable=error.retryable, headers=error.headers)  # fmt: skip
    status = next((status for cls, status in STATUS_FOR if isinstance(error, cls)), 400)
    headers = {}
    if isinstance(error, errors.JobSnoozed):
        headers["Retry-After"] = str(max(1, math.ceil(error.wait_seconds)))
    elif isinstance(error, errors.JobTypeDisabled):
        retry_after = getattr(settings, "JOBS_DISABLED_TYPE_RETRY_AFTER_SECONDS", DISABLED_TYPE_RETRY_AFTER_SECONDS)
        headers["Retry-After"] = str(int(retry_after))
    return error_response(code=error.code, message=error.message, status=status, detail=error.detail,
                          retryable=error.retryable, headers=headers)  # fmt: skip


def json_type_name(value: Any) -> str:
    """The JSON name of a parsed value's type, for messages a non-Python caller understands."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    names: dict[type, str] = {str: "string", list: "array", dict: "object"}
    return names.get(type(value), type(value).__name__)


class JsonRefused(ValueError):
    """A body that is not the strict JSON the API accepts; ``status`` 400 (not JSON) or 422 (JSON we cannot take)."""

    def __init__(self, message: str, *, status: int = 400, field: str | None = None):
        super().__init__(message)
        self.message, self.status, self.field = message, status, field


def _refuse_constant(name: str) -> NoReturn:
    # NaN and Infinity are not JSON; PostgreSQL's jsonb refuses them, so refuse them here instead of failing later.
    raise JsonRefused(f"{name} is not valid JSON")


def _finite(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise JsonRefused(f"number {text[:40]} is out of range")
    return number


def _number(text: str) -> float | int:
    number = _finite(text)
    # JSON has one number type: 0 and 0.0 are the same value, so they must be the same payload
    # (idempotency compares payloads by their canonical JSON, where 0.0 would differ from 0).
    return int(number) if number.is_integer() else number


def _object_without_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    body: dict[str, Any] = {}
    for key, value in pairs:
        if key in body:
            # RFC 8259 leaves duplicates undefined; parsers disagree on which wins, so neither does.
            raise JsonRefused(f"duplicate key {key[:60]!r} in a JSON object")
        body[key] = value
    return body


def _unstorable(text: str) -> str | None:
    if "\x00" in text:
        return "NUL characters (\\u0000) are not accepted"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "lone surrogate escapes (e.g. \\ud800) are not accepted: they are not Unicode text"
    return None


def find_unstorable(value: Any, path: str = "") -> tuple[str, str] | None:
    """Where ``value`` holds a string PostgreSQL cannot store (a NUL, a lone surrogate), and why; or None."""
    if isinstance(value, str):
        reason = _unstorable(value)
        return (path or "body", reason) if reason else None
    if isinstance(value, dict):
        for key, item in value.items():
            here = f"{path}.{key}" if path else str(key)
            if reason := _unstorable(key):
                return here.encode("utf-8", "backslashreplace").decode(), reason
            if (found := find_unstorable(item, here)) is not None:
                return found
    if isinstance(value, list):
        for index, item in enumerate(value):
            if (found := find_unstorable(item, f"{path}[{index}]")) is not None:
                return found
    return None


def strict_json_loads(raw: bytes, *, floats_as_written: bool = False) -> Any:
    """Parse ``raw`` as the strict JSON the platform stores, or raise JsonRefused saying why.

    UTF-8 only (no BOM, no UTF-16/32), no NaN/Infinity, no duplicate keys, and no string a
    PostgreSQL text or jsonb column refuses (NUL, lone surrogates): what SQLite would take and
    PostgreSQL would fail on is refused on both. A number with a fraction or an exponent that is
    whole (``1.0``, ``1e0``) becomes an int, unless ``floats_as_written``: then it stays a float, so
    a caller can refuse it where only an integer literal will do (an id).
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise JsonRefused("the body is not UTF-8 text; JSON must be sent as UTF-8 (RFC 8259)") from None
    if text.startswith("\ufeff"):
        raise JsonRefused("the body starts with a byte order mark; send UTF-8 JSON without one (RFC 8259)")
    try:
        value = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite if floats_as_written else _number,
                           object_pairs_hook=_object_without_duplicate_keys)  # fmt: skip
    except JsonRefused:
        raise
    except RecursionError:
        raise JsonRefused("the body is nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, and ints beyond Python's digit limit
        raise JsonRefused(f"the body is not valid JSON: {str(exc)[:200]}") from None
    # A NUL or a lone surrogate can only arrive as a \u escape (a raw NUL is refused by the parser, a raw
    # surrogate is not UTF-8): without one, there is nothing to look for in every string.
    if "\\u" in text and (found := find_unstorable(value)) is not None:
        where, reason = found
        raise JsonRefused(f"{where}: {reason}", status=422, field=where)
    return value


def parse_json_object(request: HttpRequest) -> dict[str, Any]:
    """The request body as a JSON object, or an ApiError saying what was wrong with it (400, 413, 415, 422)."""
    try:
        raw = request.body
    except RequestDataTooBig:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        raise ApiError(f"request body is larger than {limit} bytes (DATA_UPLOAD_MAX_MEMORY_SIZE)",
                       code="body_too_large", status=413, detail={"limit_bytes": limit}) from None  # fmt: skip
    if not raw.strip():
        raise ApiError("the request body is empty; expected a JSON object", code="malformed_json", status=400)
    content_type = request.content_type or ""
    if content_type not in JSON_CONTENT_TYPES:
        raise ApiError(f"expected a JSON body with Content-Type: application/json, got {content_type or 'none'!r}",
                       code="unsupported_media_type", status=415)  # fmt: skip
    try:
        body = strict_json_loads(raw)
    except JsonRefused as refused:
        if refused.status == 422:
            raise ApiError(refused.message, code="invalid_body", status=422,
                           detail={"errors": [{"field": refused.field, "message": refused.message}]}) from None  # fmt: skip
        raise ApiError(f"request body refused: {refused.message}", code="malformed_json", status=400) from None
    if not isinstance(body, dict):
        raise ApiError(f"expected a JSON object, got {json_type_name(body)}", code="invalid_body", status=422,
                       detail={"errors": [{"field": "body", "message": "expected object"}]})  # fmt: skip
    return body


def client_address(request: HttpRequest) -> str:
    """The caller's IP address, for per-address limits.

    ``REMOTE_ADDR`` unless ``TRUST_PROXY_HEADERS`` says a proxy in front of the app sets
    ``X-Forwarded-For``; then its last entry, the one that proxy appended (earlier entries are
    whatever the client sent, so never trusted).
    """
    if getattr(settings, "TRUST_PROXY_HEADERS", False):
        forwarded: str = request.META.get("HTTP_X_FORWARDED_FOR", "")
        last = forwarded.rsplit(",", 1)[-1].strip()
        if last:
            return last[:64]
    return request.META.get("REMOTE_ADDR", "") or "unknown"


def bearer_credentials(request: HttpRequest) -> str | None:
    """The token of ``Authorization: Bearer <token>``; None when the header is absent, empty, of another scheme
    or without a token. The one reading of the header (API, cron, /metrics): the scheme is case-insensitive
    (RFC 9110 section 11.1), so ``bearer`` and ``BEARER`` are ``Bearer``."""
    scheme, _, credentials = request.headers.get("Authorization", "").strip().partition(" ")
    token = credentials.strip()
    return token if scheme.lower() == "bearer" and token else None


def method_not_allowed(request: HttpRequest, methods: tuple[str, ...]) -> JsonResponse:
    """The API's 405: the error shape, with ``Allow``."""
    response = error_response(
        code="method_not_allowed", status=405, detail={"allowed": list(methods)},
        message=f"{request.method} is not allowed here; allowed: {', '.join(methods)}",
    )  # fmt: skip
    response["Allow"] = ", ".join(methods)
    return response


def _response_for_django_error(error: Exception) -> JsonResponse:
    # Django's own exceptions would otherwise become HTML pages from the default handlers.
    if isinstance(error, Http404):
        return error_response(code="not_found", message=str(error) or "not found", status=404)
    if isinstance(error, PermissionDenied):
        return error_response(code="forbidden", message=str(error) or "not allowed", status=403)
    if isinstance(error, RequestDataTooBig):
        return error_response(code="body_too_large", message=str(error), status=413)
    return error_response(code="bad_request", message=f"request refused: {error}", status=400)


def api_view(
    *, methods: tuple[str, ...]
) -> Callable[[Callable[..., HttpResponseBase]], Callable[..., HttpResponseBase]]:
    """Wrap a view: allowed methods, JSON errors for every failure, never an HTML page.

    Any response passes through: a download view returns a streaming ``FileResponse``.

    CSRF is enforced by the authentication step (for session callers only), so the
    middleware's HTML 403 is bypassed here.
    """

    def decorator(view: Callable[..., HttpResponseBase]) -> Callable[..., HttpResponseBase]:
        @csrf_exempt
        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            if request.method not in methods:
                return method_not_allowed(request, methods)
            try:
                return view(request, *args, **kwargs)
            except errors.JobsError as error:
                return response_for(error)
            except (Http404, PermissionDenied, SuspiciousOperation) as error:
                return _response_for_django_error(error)
            except Exception:
                logger.exception("unhandled error in %s %s", request.method, request.path)
                return error_response(
                    code="internal_error", status=500, retryable=True,
                    message="the server failed to handle this request; it was logged, and retrying may succeed",
                )  # fmt: skip

        return wrapper

    return decorator
