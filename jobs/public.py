"""The jobs platform's public API for domain apps. Import from here, not from internals.

    from jobs.public import job_type, JobContext, job_enqueue, TransientJobError

    @job_type("exports.build_csv", queue="exports", max_attempts=5)
    def build_csv(ctx: JobContext, payload: dict) -> dict:
        return exports.services.export_build(export_id=payload["export_id"], progress=ctx.progress)

    job_enqueue(job_type="exports.build_csv", payload={"export_id": export.id}, owner=user)
"""

from .exceptions import (
    JobCancelled,
    JobsError,
    JobSnoozed,
    JobTypeDisabled,
    PayloadInvalid,
    PermanentJobError,
    TransientJobError,
)
from .http import ApiError, api_view
from .retry import Backoff
from .runner import JobContext, job_type
from .services import EnqueueResult, job_bulk_enqueue, job_cancel, job_enqueue, job_get

__all__ = [
    "ApiError",
    "Backoff",
    "EnqueueResult",
    "JobCancelled",
    "JobContext",
    "JobSnoozed",
    "JobTypeDisabled",
    "JobsError",
    "PayloadInvalid",
    "PermanentJobError",
    "TransientJobError",
    "api_view",
    "job_bulk_enqueue",
    "job_cancel",
    "job_enqueue",
    "job_get",
    "job_type",
]
