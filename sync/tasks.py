"""Sync job types: thin wrappers that parse the payload and call one service."""

from __future__ import annotations

from typing import Any

from celery.schedules import crontab
from django.conf import settings

from jobs.public import Backoff, JobContext, JobSnoozed, job_type, schedule_declare

from . import services
from .exceptions import SyncRunPartial
from .models import SyncRun

RUN_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {"full": {"type": "boolean", "default": True, "description": "mark vanished products inactive"}},
}


def _run_gave_up(payload: dict[str, Any], error_code: str, error_message: str) -> None:
    # A run whose job failed or died (before or during its fan-out) must not block later syncs.
    services.sync_run_end_orphaned(reason=f"{error_code}: {error_message}")


@job_type("sync.run", queue="sync", max_attempts=3, api_schema=RUN_SCHEMA, api_staff_only=True,
          backoff=Backoff(base_seconds=30, cap_seconds=600), on_give_up=_run_gave_up)  # fmt: skip
def run(ctx: JobContext, payload: dict[str, Any]) -> dict[str, Any]:
    """Start a product sync run, fan out its pages, and follow it to the end (progress = pages done)."""
    sync_run = services.sync_run_for_job(job_id=ctx.job_id, full=payload.get("full", True))
    services.sync_run_fan_out(run=sync_run)
    sync_run.refresh_from_db()
    ctx.progress(sync_run.progress_percent, f"{sync_run.pages_done}/{sync_run.total_pages} pages, "
                 f"{sync_run.pages_failed} failed", force=True)  # fmt: skip
    if sync_run.status == SyncRun.Status.RUNNING:
        # Not holding a worker while pages run: come back later, attempt not spent.
        raise JobSnoozed(f"sync run {sync_run.pk} in progress", wait_seconds=settings.SYNC_RUN_POLL_SECONDS)
    if sync_run.status != SyncRun.Status.COMPLETED:
        # A partial (or abandoned) run is not a success: its job says so, and why.
        raise SyncRunPartial(
            f"sync run {sync_run.pk} ended {sync_run.status}: {sync_run.pages_failed} of {sync_run.total_pages} "
            "pages failed (their sync.fetch_page jobs are in the dead-letter queue); vanished products were not "
            "deactivated. Once the cause is fixed, start a new run",
            detail={"run_id": sync_run.pk, "status": sync_run.status, "pages_failed": sync_run.pages_failed},
        )
    return {"run_id": sync_run.pk, "status": sync_run.status, "pages": sync_run.total_pages,
            "pages_failed": sync_run.pages_failed, "created": sync_run.products_created,
            "updated": sync_run.products_updated, "rejected": sync_run.records_rejected,
            "deactivated": sync_run.products_deactivated}  # fmt: skip


def _page_gave_up(payload: dict[str, Any], error_code: str, error_message: str) -> None:
    services.sync_page_give_up(run_id=payload["run_id"], number=payload["page"], error=f"{error_code}: {error_message}")


@job_type("sync.fetch_page", queue="sync", max_attempts=5, on_give_up=_page_gave_up, time_limit=120,
          soft_time_limit=100, backoff=Backoff(base_seconds=2, cap_seconds=120))  # fmt: skip
def fetch_page(ctx: JobContext, payload: dict[str, Any]) -> str:
    """Fetch one catalog page through the shared supplier limiter and upsert its products."""
    return services.sync_page_fetch(run_id=int(payload["run_id"]), number=int(payload["page"]))


@job_type("sync.fetch_product", queue="sync", max_attempts=5, time_limit=60, soft_time_limit=50)
def fetch_product(ctx: JobContext, payload: dict[str, Any]) -> str:
    """Refresh one product (from a supplier webhook)."""
    return services.product_sync_one(supplier_id=str(payload["supplier_id"]))


@job_type("sync.webhook_fan_out", queue="sync", max_attempts=5, time_limit=300, soft_time_limit=280)
def webhook_fan_out(ctx: JobContext, payload: dict[str, Any]) -> dict[str, Any]:
    """Enqueue the product jobs of one recorded webhook event (out of the request, in batches)."""
    return {"product_jobs": services.webhook_fan_out(event_pk=int(payload["event"]))}


@job_type("sync.notify_freshness", queue="default", max_attempts=8, time_limit=60, soft_time_limit=50)
def notify_freshness(ctx: JobContext, payload: dict[str, Any]) -> dict[str, Any]:
    """Tell a frontend (e.g. an on-demand revalidation endpoint) that product pages are stale."""
    return {"status": services.freshness_call(hook_index=int(payload["hook"]), payload=payload)}


schedule_declare("sync.hourly", crontab(minute=0), job_type="sync.run", payload={"full": True},
        description="Full product sync from the supplier.")  # fmt: skip
