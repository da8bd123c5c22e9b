"""django-celery-beat's schedules in the admin, with the list's pause and resume actions in each row's History.

The change form shows the task a schedule runs as chosen in "Task (registered)" (the stock form leaves it
blank), and its script is a static file (``jobs/periodic_task_form.js``): the CSP blocks inline scripts.

Edits through the form are recorded by the admin itself; the list actions update rows in bulk
and left no trace of who paused a schedule, or when.
"""

from __future__ import annotations

from typing import Any, cast

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django_celery_beat.admin import PeriodicTaskAdmin, PeriodicTaskForm
from django_celery_beat.models import PeriodicTask


class PeriodicTaskFormShowingTask(PeriodicTaskForm):  # type: ignore[misc]  # django-celery-beat has no types
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        task = self.instance.task if self.instance.pk else ""
        registered = {value for value, _ in self.fields["regtask"].widget.choices}
        if task in registered:
            self.initial.setdefault("regtask", task)

    def clean(self) -> dict[str, Any]:
        # The stock form takes the registered task over the custom one: with the select now filled in, a
        # custom name typed over the schedule's own task would otherwise be dropped without a word.
        saved = self.instance.task if self.instance.pk else ""
        if self.cleaned_data.get("regtask") == saved and self.cleaned_data.get("task") not in ("", saved):
            self.cleaned_data["regtask"] = ""
        return cast("dict[str, Any]", super().clean())


class AuditedPeriodicTaskAdmin(PeriodicTaskAdmin):  # type: ignore[misc]  # django-celery-beat has no types
    form = PeriodicTaskFormShowingTask
    change_form_template = "admin/jobs/periodictask_change_form.html"

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
