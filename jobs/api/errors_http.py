"""Project-wide 404/500 handlers: JSON under /api/ (frontends parse it), Django's pages elsewhere."""

from django.http import HttpRequest, HttpResponse
from django.views import defaults

from jobs.api.http import error_response


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    if request.path.startswith("/api/"):
        return error_response(code="not_found", status=404, message=f"no API endpoint at {request.path}; see /api/docs")
    return defaults.page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    if request.path.startswith("/api/"):
        return error_response(code="internal_error", status=500, retryable=True,
                              message="the server failed to handle this request; it was logged, and retrying may succeed")  # fmt: skip
    return defaults.server_error(request)
