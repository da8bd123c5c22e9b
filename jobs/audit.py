"""The operator audit trail: who did what to which jobs."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from .models import Job, JobAuditEntry

Action = JobAuditEntry.Action
# Domain apps record their own operator actions, named "<app>.<verb>" (e.g. "emails.resend"),
# so the platform's vocabulary stays closed and theirs cannot collide with it.
_DOMAIN_ACTION = re.compile(r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$")


def _action_value(action: str) -> str:
    if action in Action.values:
        return str(action)
    if _DOMAIN_ACTION.match(action) and len(action) <= 50:
        return action
    raise ValueError(
        f"unknown audit action {action!r}: expected one of {', '.join(Action.values)} "
        "or a domain app's '<app>.<verb>' (at most 50 characters)"
    )


def audit_record(
    *,
    actor: Any,
    action: str,
    jobs: Sequence[Job] | Sequence[str],
    detail: dict[str, Any] | None = None,
    actor_label: str = "",
) -> JobAuditEntry:
    """Write who did what to which jobs. ``actor`` is a user or None (then ``actor_label`` names the caller).

    ``action`` is one of ``JobAuditEntry.Action``, or a domain app's own ``"<app>.<verb>"``.
    """
    job_ids = [job.id if isinstance(job, Job) else job for job in jobs]
    label = actor_label or (actor.get_username() if getattr(actor, "pk", None) else "system")
    return JobAuditEntry.objects.create(
        actor=actor if getattr(actor, "pk", None) else None,
        actor_label=label or "system",
        action=_action_value(action),
        job_ids=job_ids,
        job_count=len(job_ids),
        detail=detail or {},
    )
