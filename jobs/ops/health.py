"""`/healthz`: is the database reachable, is the broker reachable, can the workers reach the database."""

from __future__ import annotations

import redis
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_safe


def _check_database() -> str | None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # any driver error means "not reachable"
        return f"database unreachable: {exc.__class__.__name__}: {exc}"
    return None


# One client (and its connection pool) per broker URL per process: a probe every few seconds
# used to open and close a TCP connection each time, over half of /healthz's CPU time.
_broker_clients: dict[str, redis.Redis] = {}


def _broker_client(url: str) -> redis.Redis:
    client = _broker_clients.get(url)
    if client is None:
        client = _broker_clients[url] = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
    return client


def _check_broker() -> str | None:
    client = _broker_client(settings.CELERY_BROKER_URL)
    try:
        client.ping()
    except redis.RedisError as exc:
        # A dead pooled connection must not answer the next probe: start from a fresh pool.
        client.connection_pool.disconnect()
        return f"broker unreachable at {_redact(settings.CELERY_BROKER_URL)}: {exc.__class__.__name__}: {exc}"
    return None


def _redact(url: str) -> str:
    # Never echo a password from the URL.
    if "@" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


def _check_workers_database() -> str | None:
    """Worker processes that reported, in the last minutes, that they cannot reach the database."""
    from jobs.foundation.dbresilience import describe_database_failures, worker_database_failures

    try:
        return describe_database_failures(worker_database_failures())
    except redis.RedisError:
        return None  # the broker check names an unreachable Redis


@csrf_exempt  # a probe never posts; other methods get 405, not a CSRF 403
@require_safe
def healthz(request: HttpRequest) -> JsonResponse:
    checks = {"database": _check_database(), "broker": _check_broker()}
    failures = {name: reason for name, reason in checks.items() if reason}
    # The workers' trouble is reported but does not fail this process's own health: the web still
    # serves, and taking it out of a load balancer would not bring the workers' database back.
    workers = _check_workers_database() if not failures else None
    check_results = {name: ("ok" if reason is None else reason) for name, reason in checks.items()}
    check_results["workers_database"] = workers or "ok"
    body = {"status": "unavailable" if failures else ("degraded" if workers else "ok"), "checks": check_results}
    return JsonResponse(body, status=200 if not failures else 503)
