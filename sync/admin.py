from collections.abc import Sequence
from typing import Any

from django.contrib import admin
from django.core.paginator import Paginator
from django.db.models import Case, Q, When
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.html import format_html

from jobs.public import AdminLink, ReplayAdvice, ViewOnlyAdmin, job_admin_hooks_register

from .models import Product, SyncPage, SyncRun, WebhookEvent

# Pages listed per screen of a run's page: a 2,000-page run rendered 4 MB of HTML in one go.
PAGES_PER_SCREEN = 50
STATUS_COLOURS: dict[str, str] = {SyncRun.Status.COMPLETED: "#1b5e20", SyncRun.Status.PARTIAL: "#e65100",
                                  SyncRun.Status.FAILED: "#b71c1c", SyncRun.Status.RUNNING: "#0d47a1"}  # fmt: skip


@admin.register(SyncRun)
class SyncRunAdmin(ViewOnlyAdmin):
    # What fits 1440 px beside the filter (eleven columns did not): products' counts in one cell, the duration.
    list_display = ("id", "status_badge", "progress", "products", "started_at", "took", "job_link")
    list_filter = ("status", "full")
    # The run's page: its job as a link at the top (not the bare job id), and when it started.
    fields = ("status", "job_link", "full", "started_at", "finished_at", "page_size", "total_pages", "catalog_total",
              "pages_done", "pages_failed", "products_created", "products_updated", "products_unchanged",
              "records_rejected", "products_deactivated")  # fmt: skip
    readonly_fields = ("job_link", "started_at")
    change_form_template = "admin/sync/syncrun/change_form.html"

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        """The run's pages, failed first, a screen at a time (``?pages=N``)."""
        run = self.get_object(request, object_id)
        if run is not None:
            failed_first = Case(When(status=SyncPage.Status.FAILED, then=0), When(status=SyncPage.Status.PENDING,
                                then=1), default=2)  # fmt: skip
            pages = run.pages.defer("seen_ids").order_by(failed_first, "number")
            extra_context = {**(extra_context or {}),
                             "sync_pages": Paginator(pages, PAGES_PER_SCREEN).get_page(request.GET.get("pages"))}  # fmt: skip
        return super().change_view(request, object_id, form_url, extra_context)

    @admin.display(description="status", ordering="status")
    def status_badge(self, run: SyncRun) -> str:
        # One word, the long label as its tooltip (as the jobs admin shows states): the column stays narrow.
        colour = STATUS_COLOURS.get(run.status, "#455a64")
        return format_html('<span class="job-badge" style="background:{}" title="{}">{}</span>', colour,
                           run.get_status_display(), run.status)  # fmt: skip

    @admin.display(description="pages synced")
    def progress(self, run: SyncRun) -> str:
        # Pages synced, not pages processed: a partial run of 28 of 30 pages is not "100%".
        synced = int(100 * run.pages_done / run.total_pages) if run.total_pages else 0
        failed = f", {run.pages_failed} failed" if run.pages_failed else ""
        return f"{run.pages_done} of {run.total_pages} ({synced}%){failed}"

    @admin.display(description="products")
    def products(self, run: SyncRun) -> str:
        counts = ((run.products_created, "new"), (run.products_updated, "updated"),
                  (run.records_rejected, "rejected"), (run.products_deactivated, "deactivated"))  # fmt: skip
        return ", ".join(f"{count:,} {what}" for count, what in counts if count) or "-"

    @admin.display(description="took", ordering="finished_at")
    def took(self, run: SyncRun) -> str:
        if not run.finished_at:
            return "running"
        seconds = int((run.finished_at - run.started_at).total_seconds())
        return f"{seconds // 60} min {seconds % 60} s" if seconds >= 60 else f"{seconds} s"

    @admin.display(description="job")
    def job_link(self, run: SyncRun) -> str:
        if not run.job_id:
            return "-"
        return format_html('<a href="{}">{}</a>', reverse("admin:jobs_job_change", args=[run.job_id]), run.job_id)


def _run_url(run_id: int) -> str:
    return reverse("admin:sync_syncrun_change", args=[run_id])


def _run_job_link(job_id: str, payload: dict[str, Any]) -> AdminLink | None:
    run_id = SyncRun.objects.filter(job_id=job_id).values_list("pk", flat=True).first()
    return AdminLink(f"Sync run {run_id}", _run_url(run_id)) if run_id is not None else None


def _page_job_link(job_id: str, payload: dict[str, Any]) -> AdminLink | None:
    run_id = payload.get("run_id")
    if not isinstance(run_id, int):
        return None
    return AdminLink(f"Sync run {run_id}, page {payload.get('page')}", _run_url(run_id))


def _page_replay_advice(payloads: Sequence[dict[str, Any]]) -> ReplayAdvice | None:
    """A page job replayed once its page failed or its run ended fetches nothing (sync_page_fetch): say so first."""
    wanted = {(payload.get("run_id"), payload.get("page")) for payload in payloads}
    run_ids = {run_id for run_id, _ in wanted}
    closed_pages = set(
        SyncPage.objects.filter(run_id__in=run_ids)
        .filter(Q(status=SyncPage.Status.FAILED) | ~Q(run__status=SyncRun.Status.RUNNING))
        .values_list("run_id", "number")
    )
    closed = [pair for pair in wanted if pair in closed_pages]
    if not closed:
        return None
    runs = list(SyncRun.objects.filter(pk__in={run_id for run_id, _ in closed}).order_by("-started_at"))
    named = "; ".join(f"run {run.pk}, {run.status}" for run in runs[:5])
    which = f"All {len(wanted)}" if len(closed) == len(wanted) else f"{len(closed)} of these {len(wanted)}"
    message = (
        f"{which} page jobs would end sync_page_closed and fetch nothing: their pages already failed, and a "
        f"finished sync run is never reopened ({named}). To fetch these pages again, start a new run:"
    )
    latest = runs[0]
    if latest.job_id:
        label = f"replay sync run {latest.pk}'s job (sync.run) as a new run"
        return ReplayAdvice(message, AdminLink(label, reverse("admin:jobs_job_change", args=[latest.job_id])))
    return ReplayAdvice(message, AdminLink(f"sync run {latest.pk}", _run_url(latest.pk)))


job_admin_hooks_register(job_type="sync.run", record_link=_run_job_link)
job_admin_hooks_register(job_type="sync.fetch_page", record_link=_page_job_link, replay_advice=_page_replay_advice)


@admin.register(Product)
class ProductAdmin(ViewOnlyAdmin):
    list_display = (
        "supplier_id",
        "name",
        "price",
        "currency",
        "stock",
        "is_active",
        "supplier_active",
        "last_changed_at",
    )
    list_filter = ("is_active", "supplier_active", "currency")
    search_fields = ("=supplier_id", "sku", "name")


@admin.register(WebhookEvent)
class WebhookEventAdmin(ViewOnlyAdmin):
    list_display = ("event_id", "event_type", "signed_at", "received_at", "jobs_enqueued")
    search_fields = ("=event_id",)
