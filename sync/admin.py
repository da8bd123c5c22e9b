from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from jobs.public import ViewOnlyAdmin

from .models import Product, SyncPage, SyncRun, WebhookEvent


class SyncPageInline(admin.TabularInline):
    model = SyncPage
    extra = 0
    can_delete = False
    fields = ("number", "status", "fetched_at", "created", "updated", "unchanged", "rejected", "rejections", "error")
    readonly_fields = fields
    ordering = ("status", "number")

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(SyncRun)
class SyncRunAdmin(ViewOnlyAdmin):
    list_display = ("id", "status", "progress", "pages_failed", "products_created", "products_updated",
                    "records_rejected", "products_deactivated", "started_at", "finished_at", "job_link")  # fmt: skip
    list_filter = ("status", "full")
    inlines = [SyncPageInline]

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
