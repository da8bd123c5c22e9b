"""Email job types, on the ``emails`` queue: thin wrappers that parse the payload and call one service."""

from __future__ import annotations

from typing import Any

from django.conf import settings

from jobs.public import Backoff, JobContext, job_type, schedule_declare

from . import services


def _send_gave_up(payload: dict[str, Any], error_code: str, error_message: str) -> None:
    services.email_give_up(email_id=int(payload["email_id"]), error=f"{error_code}: {error_message}")


@job_type(
    services.SEND_JOB_TYPE, queue="emails", max_attempts=settings.EMAILS_SEND_MAX_ATTEMPTS, on_give_up=_send_gave_up,
    backoff=Backoff(base_seconds=settings.EMAILS_RETRY_BASE_SECONDS, cap_seconds=settings.EMAILS_RETRY_CAP_SECONDS),
    # Above EMAIL_TIMEOUT for each of a conversation's steps; the soft limit is handled like any other failure.
    soft_time_limit=settings.EMAILS_SEND_SOFT_TIME_LIMIT, time_limit=settings.EMAILS_SEND_SOFT_TIME_LIMIT + 20,
)  # fmt: skip
def send(ctx: JobContext, payload: dict[str, Any]) -> dict[str, Any]:
    """Send one outbox email (at most once unless its template opts into at-least-once)."""
    return services.email_deliver(email_id=int(payload["email_id"]), claim=f"{ctx.job_id}.{ctx.attempt}")


@job_type("emails.export_ready", queue="emails", max_attempts=5, time_limit=60, soft_time_limit=50)
def export_ready(ctx: JobContext, payload: dict[str, Any]) -> dict[str, Any]:
    """Queue the "your export is ready" email (enqueued by name by the exports app)."""
    # "what", "format" and "rows" describe the file; jobs enqueued before they were sent have only the ids.
    email = services.email_export_ready(export_id=payload["export_id"], user_id=int(payload["user_id"]),
                                        what=str(payload.get("what") or ""), file_format=str(payload.get("format") or ""),
                                        rows=payload.get("rows"))  # fmt: skip
    return {"email_id": email.pk, "state": email.state}


@job_type("emails.send_template", queue="emails", max_attempts=5, time_limit=60, soft_time_limit=50)
def send_template(ctx: JobContext, payload: dict[str, Any]) -> dict[str, Any]:
    """Queue any template by name: ``{"template", "to", "context", "key"}`` (for apps that must not import emails)."""
    email = services.email_send(template=payload["template"], to=payload["to"], context=payload.get("context") or {},
                                key=payload["key"])  # fmt: skip
    return {"email_id": email.pk, "state": email.state}


@job_type("emails.dead_letter_digest", queue="emails", max_attempts=3, time_limit=60, soft_time_limit=50)
def dead_letter_digest(ctx: JobContext, payload: dict[str, Any]) -> dict[str, Any]:
    """Mail the operators a digest of the dead-letter queue when it is not empty (once per window)."""
    email = services.dead_letter_digest_send()
    if email is None:
        return {"skipped": "no JOBS_ALERT_EMAILS configured, or the dead-letter queue is empty"}
    return {"email_id": email.pk, "state": email.state, "key": email.key}


schedule_declare("emails.dead_letter_digest", float(settings.EMAILS_DIGEST_INTERVAL_SECONDS),
                 job_type="emails.dead_letter_digest",
                 description="Mail JOBS_ALERT_EMAILS a digest of the dead-letter queue while it is not empty.")  # fmt: skip
