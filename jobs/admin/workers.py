"""Which workers consume each queue, for the overview: Celery's inspect, cached briefly."""

from __future__ import annotations

import logging

from celery import current_app
from django.core.cache import cache

logger = logging.getLogger("jobs.admin")

CACHE_KEY = "jobs:admin:workers-by-queue"
# Asking takes the whole inspect timeout; the overview reloads every 15 s by default.
CACHE_SECONDS = 15
INSPECT_TIMEOUT_SECONDS = 1.0


def workers_by_queue() -> dict[str, list[str]] | None:
    """Queue name -> the workers consuming it that answered; None when the broker could not be asked."""
    cached: dict[str, list[str]] | None = cache.get(CACHE_KEY)
    if cached is not None:
        return cached
    try:
        replies = current_app.control.inspect(timeout=INSPECT_TIMEOUT_SECONDS).active_queues() or {}
    except Exception as error:  # noqa: BLE001 - a dashboard must render without the broker
        logger.warning("could not ask workers for their queues: %s", error)
        return None
    by_queue: dict[str, list[str]] = {}
    for worker, queues in replies.items():
        for queue in queues or []:
            by_queue.setdefault(queue["name"], []).append(worker)
    cache.set(CACHE_KEY, by_queue, CACHE_SECONDS)
    return by_queue
