"""The authentication backend every password login goes through: Django's ModelBackend, throttled.

The throttle lives here rather than in a view or a middleware watching one URL, so every way in (the
admin's login, the exports page's, any view added later that calls ``django.contrib.auth.authenticate``)
takes from the same two counts: one per username, one per client address.
"""

from __future__ import annotations

import hashlib
import logging
import math
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.http import HttpRequest

from jobs.api.http import client_address
from jobs.coordination.ratelimit import RateLimiter
from jobs.core.audit import audit_record_counted
from jobs.foundation.exceptions import JobsError
from jobs.models import JobAuditEntry

security_logger = logging.getLogger("jobs.security")


class LoginThrottled(JobsError):
    """Too many login attempts for a username or from an address: this one was refused unchecked.

    Deliberately not a PermissionDenied, which ``authenticate()`` would swallow into "wrong password":
    it reaches ``jobs.api.middleware.LoginThrottleMiddleware``, which answers 429 with when to retry.
    """

    code = "login_throttled"
    retryable = True

    def __init__(self, *, scope: str, limit: int, window_seconds: int, retry_after: int):
        super().__init__(
            f"too many login attempts {'for this username' if scope == 'user' else 'from this address'} "
            f"({limit} per {window_seconds} s); retry in {retry_after} s",
            detail={"scope": scope, "limit": limit, "window_seconds": window_seconds, "retry_after": retry_after},
        )  # fmt: skip
        self.scope, self.retry_after = scope, retry_after


class ThrottledModelBackend(ModelBackend):
    """ModelBackend whose password checks are limited per username and per client address.

    Each attempt (username and password given) takes a slot from two shared limiters in Redis, so every
    web process counts together: ADMIN_LOGIN_MAX_ATTEMPTS_PER_USER for the username (case-blind) and
    ADMIN_LOGIN_MAX_ATTEMPTS_PER_ADDRESS for the address, per ADMIN_LOGIN_WINDOW_SECONDS (0: that limit
    off). Over either, the password is not checked: LoginThrottled is raised, a warning logged and the
    attempt counted into the audit trail (one row per address and window). Permissions are ModelBackend's.
    """

    def authenticate(self, request: HttpRequest | None, username: str | None = None, password: str | None = None,
                     **kwargs: Any) -> Any:  # fmt: skip
        if username is None:
            username = kwargs.get(get_user_model().USERNAME_FIELD)
        if username is not None and password is not None:
            login_attempt_take(request=request, username=str(username))
        return super().authenticate(request, username=username, password=password, **kwargs)

    async def aauthenticate(self, request: HttpRequest | None, username: str | None = None,
                            password: str | None = None, **kwargs: Any) -> Any:  # fmt: skip
        # ModelBackend's async version checks the password on its own: it must go through the throttle too.
        return await sync_to_async(self.authenticate)(request, username=username, password=password, **kwargs)


def login_attempt_take(*, request: HttpRequest | None, username: str) -> None:
    """Take this attempt's slots, or raise LoginThrottled (logged and audited) when either limit is spent.

    Without a request (a call outside a web request) only the username is counted: there is no address.
    """
    window = settings.ADMIN_LOGIN_WINDOW_SECONDS
    address = client_address(request) if request is not None else ""
    username = username[:150]
    checks = (("address", address, settings.ADMIN_LOGIN_MAX_ATTEMPTS_PER_ADDRESS),
              ("user", username.lower(), settings.ADMIN_LOGIN_MAX_ATTEMPTS_PER_USER))  # fmt: skip
    for scope, value, limit in checks:
        if not limit or (scope == "address" and not address):
            continue
        digest = hashlib.sha256(value.encode("utf-8", "backslashreplace")).hexdigest()[:32]
        wait = RateLimiter(name=f"login:{scope}:{digest}", limit=limit, period=window).try_acquire_or_allow()
        if wait:
            path = request.path if request is not None else ""
            security_logger.warning("login throttled: %s over %d attempts in %ds (user %r, address %s, path %s)",
                                    scope, limit, window, username, address, path)  # fmt: skip
            audit_record_counted(
                action=JobAuditEntry.Action.ADMIN_LOGIN_THROTTLED, actor_label=username, address=address,
                window_seconds=window,
                detail={"scope": scope, "address": address, "limit": limit, "window_seconds": window, "path": path},
            )  # fmt: skip
            raise LoginThrottled(scope=scope, limit=limit, window_seconds=window, retry_after=max(1, math.ceil(wait)))
