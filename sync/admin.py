from typing import Any

from django.contrib import admin
from django.core.paginator import Paginator
from django.db.models import Case, When
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.html import format_html

from jobs.public import ViewOnlyAdmin

from .models import Product, SyncPage, SyncRun, WebhookEvent

# Pages listed per screen of a run's page: a 2,000-page run rendered 4 MB of HTML in one go.
PAGES_PER_SCREEN = 50


@admin.register(SyncRun)
class SyncRunAdmin(ViewOnlyAdmin):
    list_display = ("id", "status", "progress", "pages_failed", "products_created", "products_updated",
                    "records_rejected", "products_deactivated", "started_at", "finished_at", "job_link")  # fmt: skip
    list_filter = ("status", "full")
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

    @admin.display(description="progress")
    def progress(self, run: SyncRun) -> str:
        return f"{run.pages_done + run.pages_failed}/{run.total_pages} pages ({run.progress_percent}%)"

    @admin.display(description="job")
    def job_link(self, run: SyncRun) -> str:
        if not run.job_id:
            return "-"
        return format_html('<a href="{}">{}</a>', reverse("admin:jobs_job_change", args=[run.job_id]), run.job_id)


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
