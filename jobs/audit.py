"""The operator audit trail: who did what to which jobs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .models import Job, JobAuditEntry

Action = JobAuditEntry.Action


def audit_record(
    *,
    actor: Any,
    action: str,
    jobs: Sequence[Job] | Sequence[str],
    detail: dict[str, Any] | None = None,
    actor_label: str = "",
) -> JobAuditEntry:
    """Write who did what to which jobs. ``actor`` is a user or None (then ``actor_label`` names the caller).

    ``action`` is one of ``JobAuditEntry.Action``.
    """
    job_ids = [job.id if isinstance(job, Job) else job for job in jobs]
    label = actor_label or (actor.get_username() if getattr(actor, "pk", None) else "system")
    return JobAuditEntry.objects.create(
        actor=actor if getattr(actor, "pk", None) else None,
        actor_label=label or "system",
        action=Action(action).value,
        job_ids=job_ids,
        job_count=len(job_ids),
        detail=detail or {},
    )
