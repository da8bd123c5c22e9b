"""django-celery-beat's schedules in the admin, with the list's pause and resume actions in each row's History.

Edits through the form are recorded by the admin itself; the list actions update rows in bulk
and left no trace of who paused a schedule, or when.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django_celery_beat.admin import PeriodicTaskAdmin
from django_celery_beat.models import PeriodicTask


class AuditedPeriodicTaskAdmin(PeriodicTaskAdmin):  # type: ignore[misc]  # django-celery-beat has no types
    def _log_pauses(self, request: HttpRequest, queryset: QuerySet[Any], how: str) -> None:
        for task in PeriodicTask.objects.filter(pk__in=list(queryset.values_list("pk", flat=True))):
            self.log_change(request, task, f"{'Resumed' if task.enabled else 'Paused'} ({how})")

    @admin.action(description="Enable selected tasks")
    def enable_tasks(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        super().enable_tasks(request, queryset)
        self._log_pauses(request, queryset, "list action: enable")

    @admin.action(description="Disable selected tasks")
    def disable_tasks(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        super().disable_tasks(request, queryset)
        self._log_pauses(request, queryset, "list action: disable")

    @admin.action(description="Toggle activity of selected tasks")
    def toggle_tasks(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        super().toggle_tasks(request, queryset)
        self._log_pauses(request, queryset, "list action: toggle")


admin.site.unregister(PeriodicTask)
admin.site.register(PeriodicTask, AuditedPeriodicTaskAdmin)
