"""Exports job types: thin wrappers that parse the payload and call one service."""

from __future__ import annotations

from typing import Any

from celery.schedules import crontab
from django.conf import settings
from django.db import OperationalError

from jobs.public import Backoff, JobContext, job_type, schedule_declare

from . import services


def _build_gave_up(payload: dict[str, Any], error_code: str, error_message: str) -> None:
    services.export_give_up(export_id=int(payload["export_id"]), error_code=error_code, error_message=error_message)


# OSError: the storage (disk, S3 endpoint) or the database connection failed; a fresh attempt may succeed.
@job_type("exports.build", queue="exports", max_attempts=3, backoff=Backoff(base_seconds=10, cap_seconds=300),
          retry_on=(OSError, OperationalError), on_give_up=_build_gave_up,
          soft_time_limit=settings.EXPORTS_TIME_LIMIT_SECONDS,
          time_limit=settings.EXPORTS_TIME_LIMIT_SECONDS + 60)  # fmt: skip
def build(ctx: JobContext, payload: dict[str, Any]) -> dict[str, Any]:
    """Build one export's file from its source and store it (progress = rows written of the estimate)."""
    return services.export_build(export_id=int(payload["export_id"]), job_id=ctx.job_id, progress=ctx.progress)


@job_type("exports.cleanup", queue="exports", max_attempts=3, time_limit=600, soft_time_limit=540)
def cleanup(ctx: JobContext, payload: dict[str, Any]) -> dict[str, Any]:
    """Delete the files of exports past their retention period."""
    return {"expired": services.exports_cleanup()}


schedule_declare("exports.cleanup", crontab(minute=17), job_type="exports.cleanup",
                 description="Delete export files past EXPORTS_RETENTION_SECONDS.")  # fmt: skip
