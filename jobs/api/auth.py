"""Who is calling the API: a bearer token (server-side callers) or a browser session (with CSRF)."""

from __future__ import annotations

from typing import Any, cast

from django.contrib.auth.models import AbstractUser
from django.http import HttpRequest, HttpResponse
from django.middleware.csrf import CsrfViewMiddleware

from jobs.api.http import ApiError, bearer_credentials
from jobs.api.tokens import api_token_find, api_token_is_live, api_token_touch
from jobs.models import ApiToken

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
BEARER_CHALLENGE = 'Bearer realm="api"'


class _CsrfCheck(CsrfViewMiddleware):
    """Django's own CSRF check, answering with the reason instead of an HTML 403 page."""

    def _reject(self, request: HttpRequest, reason: str) -> str:
        return reason


def _csrf_failure_reason(request: HttpRequest) -> str | None:
    check = _CsrfCheck(_no_response)
    check.process_request(request)
    # The API views are csrf_exempt for the middleware (it would answer in HTML); passing no
    # callback here runs the full check, so session-authenticated writes still need the token.
    reason: Any = check.process_view(request, None, (), {})  # type: ignore[arg-type]
    return cast(str | None, reason)


def _no_response(request: HttpRequest) -> HttpResponse:
    raise AssertionError("the CSRF check never calls the view")


def _unauthenticated(message: str, *, code: str = "unauthenticated", challenge: str = BEARER_CHALLENGE) -> ApiError:
    return ApiError(message, code=code, status=401, headers={"WWW-Authenticate": challenge})


def _token_user(request: HttpRequest, plaintext: str, *, scope: str) -> AbstractUser:
    token = api_token_find(plaintext=plaintext)
    if token is None or not api_token_is_live(token):
        expired = token is not None and token.revoked_at is None and token.user.is_active
        reason = "has expired; create a new one" if expired else "is unknown or revoked; create a new one"
        raise _unauthenticated(f"the bearer token {reason}", code="invalid_token",
                               challenge=f'{BEARER_CHALLENGE}, error="invalid_token"')  # fmt: skip
    if scope not in token.scopes:
        raise ApiError(f"this token lacks the {scope!r} scope (it has: {', '.join(token.scopes)}); create a token "
                       f"with it", code="insufficient_scope", status=403, detail={"required_scope": scope},
                       headers={"WWW-Authenticate": f'{BEARER_CHALLENGE}, error="insufficient_scope", scope="{scope}"'})  # fmt: skip
    api_token_touch(token)
    request.api_token = token  # type: ignore[attr-defined]  # read by the enqueue limit
    return cast(AbstractUser, token.user)


def authenticate(request: HttpRequest, *, scope: str) -> AbstractUser:
    """Return the calling user or raise a 401/403 ApiError.

    ``Authorization: Bearer <token>`` wins and needs no CSRF token (a browser never sends
    it on its own); the token must be live and hold ``scope`` (read, enqueue or ops). Otherwise
    the browser session is used, and unsafe methods then need the CSRF token (``X-CSRFToken``
    header) like any Django form. The caller's token (or None) is left on ``request.api_token``.
    """
    if scope not in ApiToken.Scope.values:
        raise ValueError(f"unknown scope {scope!r}; expected one of {ApiToken.Scope.values}")
    request.api_token = None  # type: ignore[attr-defined]
    if request.headers.get("Authorization", ""):
        if (credentials := bearer_credentials(request)) is None:
            raise _unauthenticated("expected 'Authorization: Bearer <token>'")
        user = _token_user(request, credentials, scope=scope)
        request.user = user  # type: ignore[assignment]  # so logs and anything downstream see the token's user
        return user
    if request.user.is_authenticated:
        if request.method not in SAFE_METHODS and (reason := _csrf_failure_reason(request)):
            raise ApiError(f"CSRF check failed for a session-authenticated request: {reason}",
                           code="csrf_failed", status=403,
                           detail={"hint": "send the csrftoken cookie's value in the X-CSRFToken header"})  # fmt: skip
        return cast(AbstractUser, request.user)
    raise _unauthenticated("authentication required: send 'Authorization: Bearer <token>' or log in")
