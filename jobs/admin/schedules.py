"""django-celery-beat's schedules in the admin, with the list's pause and resume actions in each row's History.

The list shows each schedule at a glance (``jobs.ops.selectors.schedule_glance``): when it fires next, its
last firing's job with that job's outcome, and a link to every job it made (their correlation id).

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
from django.urls import reverse
from django.utils.html import format_html
from django.utils.http import urlencode
from django.utils.safestring import SafeString, mark_safe
from django_celery_beat.admin import PeriodicTaskAdmin, PeriodicTaskForm
from django_celery_beat.models import PeriodicTask

from jobs.admin.display import exact_time, relative_time, status_badge
from jobs.ops.selectors import ScheduleGlance, schedule_glance


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
    # Beat's own "last run at" is in the last job's cell: one column fewer, so the list fits 1440 px.
    list_display = ("name", "enabled", "scheduler", "next_run", "last_job", "jobs_made")

    def _glance(self, task: PeriodicTask) -> ScheduleGlance:
        found: ScheduleGlance | None = getattr(task, "_glance", None)  # the row's columns ask it once
        if found is None:
            found = schedule_glance(task=task)
            task._glance = found
        return found

    @admin.display(description="next run")
    def next_run(self, task: PeriodicTask) -> SafeString:
        if not task.enabled:
            return mark_safe('<span class="quiet">paused</span>')
        at = self._glance(task).next_run_at
        if at is None:
            return mark_safe("-")
        return format_html('<span title="{}">{}</span>', exact_time(at), relative_time(at))

    @admin.display(description="last run's job")
    def last_job(self, task: PeriodicTask) -> SafeString:
        glance = self._glance(task)
        if glance.job_type is None:
            ran = f", last ran {relative_time(task.last_run_at)}" if task.last_run_at else ""
            return format_html('<span class="quiet">platform task: makes no job{}</span>', ran)
        job = glance.last_job
        if job is None:
            return mark_safe('<span class="quiet">none yet</span>')
        url = reverse("admin:jobs_job_change", args=[job.id])
        return format_html('{} <a href="{}" class="schedule-last-job">{}</a> <small class="quiet">{}</small>',
                           status_badge(job), url, job.id, relative_time(job.created_at))  # fmt: skip

    @admin.display(description="jobs")
    def jobs_made(self, task: PeriodicTask) -> SafeString:
        glance = self._glance(task)
        if not glance.correlation_id:
            return mark_safe("-")
        url = f"{reverse('admin:jobs_job_changelist')}?{urlencode({'q': glance.correlation_id})}"
        return format_html('<a href="{}" class="schedule-jobs">jobs it made</a>', url)

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
