from collections.abc import Callable

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.defaultfilters import filesizeformat
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html

from jobs.public import ViewOnlyAdmin

from .models import Export
from .services import export_expire, export_rerun


def _confirm_then(request: HttpRequest, queryset: QuerySet[Export], *, action: str, title: str, explanation: str,
                  targets: list[Export], perform: Callable[[Export], object]) -> TemplateResponse | None:  # fmt: skip
    """Show what the action will touch; act (and report the count) once the operator confirmed."""
    if not targets:
        messages.warning(request, f"None of the selected exports can be {title.lower()}: {explanation}")
        return None
    if request.POST.get("confirm") != "yes":
        return TemplateResponse(request, "admin/exports/confirm_action.html", {
            **admin.site.each_context(request), "title": f"{title}: {len(targets)} export(s)",
            "explanation": explanation, "exports": targets[:100],
            "more": max(0, len(targets) - 100), "action": action, "opts": queryset.model._meta,
            "selected_ids": request.POST.getlist(helpers.ACTION_CHECKBOX_NAME),
            "select_across": request.POST.get("select_across", "0"),
        })  # fmt: skip
    done = sum(1 for export in targets if perform(export))
    messages.success(request, f"{title}: {done} export(s).")
    return None


@admin.register(Export)
class ExportAdmin(ViewOnlyAdmin):
    list_display = ("id", "owner", "source", "format", "state", "rows", "size", "created_at", "job_link")
    list_filter = ("status", "source", "format", "created_at")
    search_fields = ("=id", "owner__username", "=job_id")
    list_select_related = ("owner",)
    readonly_fields = [field.name for field in Export._meta.fields]
    actions = ("rerun", "expire")

    @admin.display(description="state", ordering="status")
    def state(self, export: Export) -> str:
        running = f" {export.progress}%" if export.status == Export.Status.RUNNING else ""
        return f"{export.get_status_display()}{running}"

    @admin.display(description="rows", ordering="row_count")
    def rows(self, export: Export) -> str:
        return f"{export.row_count:,}" if export.row_count else "-"

    @admin.display(description="size", ordering="byte_size")
    def size(self, export: Export) -> str:
        return filesizeformat(export.byte_size) if export.byte_size else "-"

    @admin.display(description="job")
    def job_link(self, export: Export) -> str:
        if not export.job_id:
            return "-"
        # The id is long: its start is enough to tell jobs apart here, the title has all of it.
        return format_html('<a href="{}" title="{}">{}…</a>', reverse("admin:jobs_job_change", args=[export.job_id]),
                           export.job_id, export.job_id[:8])  # fmt: skip

    def has_operate_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("exports.change_export")

    @admin.action(permissions=["operate"], description="Re-run selected exports (as new exports)")
    def rerun(self, request: HttpRequest, queryset: QuerySet[Export]) -> TemplateResponse | None:
        return _confirm_then(request, queryset, action="rerun", title="Re-run", targets=list(queryset),
                             explanation="Each becomes a new export of the same source, format and filters, "
                             "owned by the same user; the originals stay as they are.",
                             perform=lambda export: export_rerun(export=export))  # fmt: skip

    @admin.action(permissions=["operate"], description="Expire selected exports now (delete their files)")
    def expire(self, request: HttpRequest, queryset: QuerySet[Export]) -> TemplateResponse | None:
        return _confirm_then(request, queryset, action="expire", title="Expire",
                             targets=list(queryset.filter(status=Export.Status.SUCCEEDED)),
                             explanation="Only ready exports have a file; it is deleted now and its download "
                             "links answer 410 Gone.", perform=lambda export: export_expire(export=export))  # fmt: skip
