"""Platform tasks: diagnostics and housekeeping (relay, reaper, pruner)."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="jobs.ping")
def ping(value: str = "pong") -> str:
    """Round-trip check for the broker, a worker and the result store."""
    return value
