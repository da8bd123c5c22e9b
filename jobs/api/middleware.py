from __future__ import annotations

import math
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.template.loader import select_template

from jobs.foundation.context import correlation_scope

CORRELATION_HEADER = "X-Request-ID"


class CorrelationIdMiddleware:
    """Take the caller's X-Request-ID (or make one), expose it on the request and echo it back."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        with correlation_scope(request.headers.get(CORRELATION_HEADER)) as correlation_id:
            request.correlation_id = correlation_id  # type: ignore[attr-defined]
            response = self.get_response(request)
        response[CORRELATION_HEADER] = correlation_id
        return response


class SecurityHeadersMiddleware:
    """Content-Security-Policy and Permissions-Policy on every response (settings of the same names).

    Django's SecurityMiddleware covers HSTS, nosniff and Referrer-Policy; these two it does not set.
    A view that set its own policy keeps it. An empty setting sends no header.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        for header, setting in (("Content-Security-Policy", "CONTENT_SECURITY_POLICY"),
                                ("Permissions-Policy", "PERMISSIONS_POLICY")):  # fmt: skip
            value = getattr(settings, setting, "")
            if value and header not in response:
                response[header] = value
        return response


class LoginThrottleMiddleware:
    """Answer a login the authentication backend refused as throttled with a 429 page saying when to retry.

    The throttle itself is in ``jobs.api.auth_backends.ThrottledModelBackend`` (every login path goes through
    it); its LoginThrottled propagates out of the login view to here. The page is the view's app's
    ``<namespace>/login_throttled.html`` (the admin's, the exports page's), with a Retry-After header.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        from jobs.api.auth_backends import LoginThrottled

        if not isinstance(exception, LoginThrottled):
            return None
        match = request.resolver_match
        namespace = match.namespaces[0] if match and match.namespaces else "admin"
        template = select_template([f"{namespace}/login_throttled.html", "admin/login_throttled.html"])
        context = {"title": "Too many login attempts", "scope": exception.scope, "retry_after": exception.retry_after,
                   "minutes": math.ceil(exception.retry_after / 60), "login_url": request.path,
                   "site_header": "Django administration"}  # fmt: skip
        response = HttpResponse(template.render(context, request), status=429)
        response["Retry-After"] = str(exception.retry_after)
        return response
