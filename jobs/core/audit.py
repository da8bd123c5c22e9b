"""The operator audit trail: who did what to which jobs."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from jobs.models import Job, JobAuditEntry

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


def audit_record_counted(
    *, action: str, actor_label: str, address: str, window_seconds: int, detail: dict[str, Any],
    now: datetime | None = None,
) -> None:  # fmt: skip
    """Record an event anyone can cause (a throttled login) as one row per ``address`` and window.

    The window's first event writes the row, with its ``actor_label`` and ``detail``; later ones from that
    address only count (``occurrences``, ``last_seen_at``). However fast someone repeats the event, the trail
    grows by one row per address and ``window_seconds``, not one per event.
    """
    now = now or timezone.now()
    window_start = int(now.timestamp()) // window_seconds * window_seconds
    digest = hashlib.sha256(address.encode("utf-8", "backslashreplace")).hexdigest()[:32]
    key = f"{_action_value(action)}:{window_start}:{digest}"
    rows = JobAuditEntry.objects.filter(aggregation_key=key)
    if rows.update(occurrences=F("occurrences") + 1, last_seen_at=now):
        return
    try:
        with transaction.atomic():  # a savepoint: losing the race below leaves the caller's transaction usable
            JobAuditEntry.objects.create(actor_label=actor_label[:150] or "anonymous", action=action, detail=detail,
                                         aggregation_key=key, occurrences=1, last_seen_at=now)  # fmt: skip
    except IntegrityError:  # another process wrote the window's first row meanwhile: count into it
        rows.update(occurrences=F("occurrences") + 1, last_seen_at=now)
