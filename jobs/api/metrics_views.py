"""``GET /metrics``: the web service's Prometheus exposition, behind a bearer token.

Refused (``503``) until ``METRICS_TOKEN`` is set, ``401`` without the right
``Authorization: Bearer <token>``. The answer sums every web process's samples (multiprocess
directory) and adds the scrape-time gauges of the operations overview.
"""

from __future__ import annotations

import hmac

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from jobs.api.http import bearer_credentials
from jobs.ops.metrics_scrape import registry_for_scrape


@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    token = str(getattr(settings, "METRICS_TOKEN", "") or "")
    if not token:
        return HttpResponse(
            "metrics are off: set METRICS_TOKEN and scrape with Authorization: Bearer <token>\n",
            status=503, content_type="text/plain",
        )  # fmt: skip
    # Read as the API reads it (any case of "Bearer"), compared in constant time.
    sent = bearer_credentials(request)
    if sent is None or not hmac.compare_digest(sent.encode(), token.encode()):
        response = HttpResponse("a valid bearer token is required\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    body = generate_latest(registry_for_scrape(with_overview=True))
    return HttpResponse(body, content_type=CONTENT_TYPE_LATEST)
