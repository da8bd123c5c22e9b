from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse

from .context import correlation_scope

CORRELATION_HEADER = "X-Request-ID"
security_logger = logging.getLogger("jobs.security")


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


class AdminLoginThrottleMiddleware:
    """Throttle admin login attempts per username and per client address, with an audit entry.

    Each POST to the admin's login page takes a slot from two shared limiters (Redis, so every
    web process counts together): ADMIN_LOGIN_MAX_ATTEMPTS_PER_USER for the username tried and
    ADMIN_LOGIN_MAX_ATTEMPTS_PER_ADDRESS for the address, per ADMIN_LOGIN_WINDOW_SECONDS. Over
    either, the attempt is not even checked: 429 with Retry-After and a page saying when to
    retry, and a ``JobAuditEntry`` (action ``admin_login_throttled``) plus a warning log.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        is_login = request.method == "POST" and request.path == reverse("admin:login")
        if is_login and (refusal := self._refusal(request)) is not None:
            return refusal
        return self.get_response(request)

    def _refusal(self, request: HttpRequest) -> HttpResponse | None:
        from .http import client_address
        from .models import JobAuditEntry
        from .ratelimit import RateLimiter

        window = settings.ADMIN_LOGIN_WINDOW_SECONDS
        address = client_address(request)
        username = request.POST.get("username", "")[:150]
        checks = (("address", address, settings.ADMIN_LOGIN_MAX_ATTEMPTS_PER_ADDRESS),
                  ("user", username.lower(), settings.ADMIN_LOGIN_MAX_ATTEMPTS_PER_USER))  # fmt: skip
        for scope, value, limit in checks:
            if not limit:
                continue
            digest = hashlib.sha256(value.encode("utf-8", "backslashreplace")).hexdigest()[:32]
            wait = RateLimiter(name=f"admin-login:{scope}:{digest}", limit=limit, period=window).try_acquire_or_allow()
            if wait:
                retry_after = max(1, math.ceil(wait))
                security_logger.warning("admin login throttled: %s over %d attempts in %ds (user %r, address %s)",
                                        scope, limit, window, username, address)  # fmt: skip
                JobAuditEntry.objects.create(
                    actor_label=username, action="admin_login_throttled",
                    detail={"scope": scope, "address": address, "limit": limit, "window_seconds": window},
                )  # fmt: skip
                context = {"title": "Too many login attempts", "scope": scope, "retry_after": retry_after,
                           "minutes": math.ceil(retry_after / 60), "site_header": "Django administration"}  # fmt: skip
                response = render(request, "admin/login_throttled.html", context, status=429)
                response["Retry-After"] = str(retry_after)
                return response
        return None
