"""Counts and times every ``/api/`` request by route pattern (bounded labels), method and status."""

from __future__ import annotations

import time
from collections.abc import Callable

from django.http import HttpRequest, HttpResponseBase

from jobs.foundation import metrics


class ApiMetricsMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        if not request.path.startswith("/api/"):
            return self.get_response(request)
        started = time.perf_counter()
        response = self.get_response(request)
        match = request.resolver_match
        # The pattern, never the path: a job id in a label would make a series per job.
        route = f"/{match.route}" if match is not None and match.route else "unmatched"
        metrics.http_request_finished(
            route=route, method=request.method or "", status=response.status_code,
            seconds=time.perf_counter() - started,
        )  # fmt: skip
        return response
