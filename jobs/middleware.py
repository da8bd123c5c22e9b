from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from .context import correlation_scope

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
