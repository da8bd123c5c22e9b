"""Who is calling the API: a bearer token (server-side callers) or a browser session (with CSRF)."""

from __future__ import annotations

from django.http import HttpRequest
from django.middleware.csrf import CsrfViewMiddleware

from .http import ApiError
from .tokens import api_token_user

SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


def _csrf_failure_reason(request: HttpRequest) -> str | None:
    reasons: list[str] = []
    checker = CsrfViewMiddleware(lambda req: None)
    checker._reject = lambda req, reason: reasons.append(reason)  # capture instead of an HTML 403
    checker.process_request(request)
    checker.process_view(request, None, (), {})
    return reasons[0] if reasons else None


def authenticate(request: HttpRequest):
    """Return the calling user or raise a 401/403 ApiError.

    ``Authorization: Bearer <token>`` wins; a browser session also works, and then unsafe
    methods need the CSRF token like any Django form.
    """
    header = request.headers.get("Authorization", "")
    if header:
        scheme, _, credentials = header.partition(" ")
        if scheme.lower() != "bearer" or not credentials.strip():
            raise ApiError("expected 'Authorization: Bearer <token>'", code="unauthenticated", status=401,
                           headers={"WWW-Authenticate": 'Bearer realm="api"'})  # fmt: skip
        user = api_token_user(plaintext=credentials.strip())
        if user is None:
            raise ApiError("the bearer token is unknown or revoked; create a new one", code="invalid_token",
                           status=401, headers={"WWW-Authenticate": 'Bearer realm="api", error="invalid_token"'})  # fmt: skip
        return user
    if request.user.is_authenticated:
        if request.method not in SAFE_METHODS:
            reason = _csrf_failure_reason(request)
            if reason:
                raise ApiError(f"CSRF check failed for a session-authenticated request: {reason}",
                               code="csrf_failed", status=403,
                               detail={"hint": "send the csrftoken cookie's value in X-CSRFToken"})  # fmt: skip
        return request.user
    raise ApiError("authentication required: send 'Authorization: Bearer <token>' or log in", code="unauthenticated",
                   status=401, headers={"WWW-Authenticate": 'Bearer realm="api"'})  # fmt: skip
