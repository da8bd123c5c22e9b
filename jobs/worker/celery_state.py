"""What Celery (its task events, so Flower's dashboard) is told about a delivery: the attempt's outcome.

The runner catches every handler exception to keep the platform's own retry control, so
without this every attempt would be a successful Celery task and Flower would count a dead
job's last attempt as "succeeded". After the runner has recorded the outcome, the task
body ends the way Celery understands:

| attempt outcome | Celery state | how |
| --- | --- | --- |
| succeeded; duplicate, stale or switched-off delivery (nothing ran) | SUCCESS | return |
| failed, will retry; snoozed (postponed, attempt not spent) | RETRY | raise ``Retry`` (nothing is re-sent by Celery: the lifecycle already published the next message) |
| failed permanently, dead (retries exhausted), unreadable message | FAILURE | raise ``AttemptFailed`` (declared in the task's ``throws``: logged on one INFO line, no traceback) |
| cancelled, skipped (busy singleton) | REVOKED | send ``task-revoked``, raise ``Ignore`` |

The stored django-celery-results row is written with the same states by ``jobs.core.attempts``.
"""

from __future__ import annotations

from typing import Any

from celery.exceptions import Ignore, Retry

from jobs.models import Job

S = Job.Status

FAILURE_STATUSES = frozenset({S.FAILED.value, S.DEAD.value})
RETRY_STATUSES = frozenset({S.RETRYING.value, "snoozed"})
REVOKED_STATUSES = frozenset({S.CANCELLED.value})


class AttemptFailed(Exception):
    """Raised to Celery after a failed attempt was recorded: the job is failed or dead (see the job's page)."""


def report_outcome_to_celery(task: Any, summary: dict[str, Any]) -> dict[str, Any]:
    """Return ``summary`` for a success; raise what makes Celery record the attempt's real state otherwise."""
    outcome = str(summary.get("outcome", ""))
    job_id = summary.get("job_id", "")
    if outcome in FAILURE_STATUSES:
        code, message = Job.objects.filter(id=job_id).values_list("error_code", "error_message").first() or ("", "")
        raise AttemptFailed(f"job {job_id} attempt {summary.get('attempt')} {outcome}: {code}: {message[:500]}")
    if outcome in RETRY_STATUSES:
        reason = "failed, will retry" if outcome == S.RETRYING else "postponed, attempt not spent"
        raise Retry(f"job {job_id} attempt {summary.get('attempt')} {reason}", exc=AttemptFailed(reason))
    if outcome in REVOKED_STATUSES:
        task.send_event("task-revoked", terminated=False, signum=None, expired=False)
        raise Ignore(f"job {job_id} cancelled")
    return summary
