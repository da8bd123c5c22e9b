"""The job admin and the dead-letter queue: read-only records, guarded actions with confirmation.

Jobs are never edited by hand: every change goes through a service (retry, replay,
cancel), each action filters the selection to jobs in a valid starting state, asks for
confirmation, reports counts, and leaves an audit entry.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html, format_html_join
from django_celery_results.models import TaskResult

from .. import registry
from ..audit import Action, audit_record
from ..exceptions import IllegalTransition
from ..lifecycle import job_cancel, job_retry
from ..models import FINISHED_STATUSES, WAITING_STATUSES, DeadJob, Job, JobAttempt, JobLogLine, JobQuerySet
from ..operations import job_replay_locked
from ..selectors import jobs_overview
from .bases import EstimatedCountPaginator, ReadOnlyInline, ViewOnlyAdmin

S = Job.Status
# A search term matching more users than this is too vague to list their jobs by.
OWNER_SEARCH_LIMIT = 100


class JobTypeFilter(admin.SimpleListFilter):
    """The declared job types. Not the types found in the table: that is a scan of every job."""

    title = "type"
    parameter_name = "type"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        names = {spec.name for spec in registry.all_types()}
        chosen = self.value()
        if chosen:
            names.add(chosen)  # a type no longer declared, reached by URL, still shows as chosen
        return [(name, name) for name in sorted(names)]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Job]) -> QuerySet[Job]:
        return queryset.filter(type=self.value()) if self.value() else queryset


class QueueFilter(admin.SimpleListFilter):
    """The configured queues (the admin's own field filter would scan the table for them)."""

    title = "queue"
    parameter_name = "queue"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(name, name) for name in settings.JOB_QUEUES]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Job]) -> QuerySet[Job]:
        return queryset.filter(queue=self.value()) if self.value() else queryset


class JobAttemptInline(ReadOnlyInline):
    model = JobAttempt
    fields = ("number", "outcome", "started_at", "finished_at", "duration_ms", "retry_delay_ms", "worker",
              "error_code", "error_message", "task_result_link")  # fmt: skip
    readonly_fields = fields

    @admin.display(description="Celery result")
    def task_result_link(self, attempt: JobAttempt) -> str:
        return _task_result_link(attempt.celery_task_id)


class JobLogLineInline(ReadOnlyInline):
    model = JobLogLine
    fields = ("attempt", "logged_at", "level", "message")
    readonly_fields = fields
    verbose_name_plural = "log"


def _task_result_link(task_id: str) -> str:
    if not task_id:
        return "-"
    result_id = TaskResult.objects.filter(task_id=task_id).values_list("pk", flat=True).first()
    if result_id is None:
        return task_id
    url = reverse("admin:django_celery_results_taskresult_change", args=[result_id])
    return format_html('<a href="{}">{}</a>', url, task_id)


def _confirmed_action(
    *,
    request: HttpRequest,
    queryset: QuerySet,
    eligible: QuerySet,
    action: str,
    title: str,
    explanation: str,
    perform: Callable[[list[Job]], int],
    done_message: str,
) -> HttpResponse | None:
    """Shared flow of every job action: filter to eligible, confirm, act, report counts."""
    chosen = queryset.count()
    targets = list(eligible)
    skipped = chosen - len(targets)
    if not targets:
        messages.warning(request, f"None of the {chosen} selected job(s) can be {title.lower()}: {explanation}")
        return None
    if request.POST.get("confirm") != "yes":
        return TemplateResponse(
            request,
            "admin/jobs/confirm_action.html",
            {
                "title": f"{title}: {len(targets)} job(s)",
                "action": action,
                "jobs": targets[:100],
                "more": max(0, len(targets) - 100),
                "skipped": skipped,
                "explanation": explanation,
                "selected_ids": request.POST.getlist(helpers.ACTION_CHECKBOX_NAME),
                "select_across": request.POST.get("select_across", "0"),
                "opts": queryset.model._meta,
            },
        )
    count = perform(targets)
    note = f" ({skipped} selected job(s) were not in a valid state and were left alone)" if skipped else ""
    messages.success(request, done_message.format(count=count) + note)
    return None


@admin.register(Job)
class JobAdmin(ViewOnlyAdmin):
    list_display = ("id", "type", "queue", "colored_status", "attempts_display", "progress", "owner", "created_at",
                    "finished_at", "error_code")  # fmt: skip
    # No date_hierarchy: it lists the distinct days of every job, a scan of the whole table.
    list_filter = ("status", JobTypeFilter, QueueFilter, "created_at", "finished_at")
    paginator = EstimatedCountPaginator
    show_full_result_count = False  # a second count of the whole table on every filtered view
    # Matched exactly by get_search_results below; listed so the admin shows its search box.
    search_fields = ("id", "idempotency_key", "correlation_id", "owner__username", "owner__email")
    search_help_text = "A job id, idempotency key or correlation id (exact), or part of the owner's username or email."
    list_select_related = ("owner",)
    inlines = [JobAttemptInline, JobLogLineInline]
    actions = ["retry_jobs", "replay_jobs", "cancel_jobs"]
    change_list_template = "admin/jobs/job/change_list.html"
    readonly_fields = ("id", "type", "queue", "status", "attempt", "max_attempts", "owner", "idempotency_key",
                       "idempotency_expires_at", "payload", "payload_fingerprint", "correlation_id", "progress",
                       "progress_message", "result", "error_code", "error_message", "error_traceback",
                       "cancel_requested", "replay_of_link", "replays_links", "published_at", "worker",
                       "current_task_result", "created_at", "enqueued_at", "started_at", "finished_at",
                       "next_retry_at", "lease_expires_at", "updated_at")  # fmt: skip
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "id",
                    "type",
                    "queue",
                    "status",
                    "attempt",
                    "max_attempts",
                    "owner",
                    "progress",
                    "progress_message",
                )
            },
        ),  # fmt: skip
        (
            "Payload and result",
            {
                "fields": (
                    "payload",
                    "result",
                    "idempotency_key",
                    "idempotency_expires_at",
                    "payload_fingerprint",
                    "correlation_id",
                )
            },
        ),  # fmt: skip
        ("Last failure", {"fields": ("error_code", "error_message", "error_traceback")}),
        (
            "Timeline",
            {
                "fields": (
                    "created_at",
                    "enqueued_at",
                    "published_at",
                    "started_at",
                    "next_retry_at",
                    "lease_expires_at",
                    "finished_at",
                    "updated_at",
                )
            },
        ),  # fmt: skip
        ("Links", {"fields": ("replay_of_link", "replays_links", "worker", "current_task_result", "cancel_requested")}),
    )

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Job], search_term: str
    ) -> tuple[QuerySet[Job], bool]:
        """Every branch on an index, so a search stays fast on millions of jobs.

        The admin's own search ORs case-insensitive comparisons over a join with the owner,
        which only a full scan of the job table can answer. Ids, keys and correlation ids are
        pasted whole, so they are compared exactly; owners are looked up first (a few users,
        then the owner index).
        """
        term = search_term.strip()
        if not term:
            return queryset, False
        # The idempotency key's index starts with the type: name the types so it can be used.
        types = [spec.name for spec in registry.all_types()]
        owner_ids = list(
            get_user_model()
            .objects.filter(Q(username__icontains=term) | Q(email__icontains=term))
            .values_list("pk", flat=True)[:OWNER_SEARCH_LIMIT]
        )
        matches = Q(id=term) | Q(correlation_id=term) | Q(type__in=types, idempotency_key=term)
        if owner_ids:
            matches |= Q(owner_id__in=owner_ids)
        return queryset.filter(matches), False

    def get_urls(self) -> list[URLPattern]:
        if self.model is not Job:  # the dead-letter queue's admin inherits from this one
            return super().get_urls()
        overview = path("overview/", self.admin_site.admin_view(self.overview_view), name="jobs_job_overview")
        return [overview, *super().get_urls()]

    def overview_view(self, request: HttpRequest) -> HttpResponse:
        """Queue depths, backlog age, the dead-letter queue's size and the alerts, for operators."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        context = {
            **self.admin_site.each_context(request), "title": "Jobs overview", "overview": jobs_overview(),
            "json_url": reverse("jobs:ops-overview"), "dead_letter_url": reverse("admin:jobs_deadjob_changelist"),
        }  # fmt: skip
        return TemplateResponse(request, "admin/jobs/overview.html", context)

    @admin.display(description="status", ordering="status")
    def colored_status(self, job: Job) -> str:
        colors: dict[str, str] = {S.SUCCEEDED: "#2e7d32", S.FAILED: "#c62828", S.DEAD: "#6a1b9a", S.RUNNING: "#1565c0",
                  S.RETRYING: "#ef6c00", S.CANCELLED: "#616161", S.QUEUED: "#37474f"}  # fmt: skip
        return format_html('<b style="color:{}">{}</b>', colors.get(job.status, "inherit"), job.get_status_display())

    @admin.display(description="attempts")
    def attempts_display(self, job: Job) -> str:
        return f"{job.attempt}/{job.max_attempts}"

    @admin.display(description="replay of")
    def replay_of_link(self, job: Job) -> str:
        if not job.replay_of_id:
            return "-"
        return format_html(
            '<a href="{}">{}</a>', reverse("admin:jobs_job_change", args=[job.replay_of_id]), job.replay_of_id
        )

    @admin.display(description="replays")
    def replays_links(self, job: Job) -> str:
        replays = list(job.replays.values_list("id", flat=True)[:20])
        if not replays:
            return "-"
        return format_html_join(
            ", ", '<a href="{}">{}</a>', ((reverse("admin:jobs_job_change", args=[r]), r) for r in replays)
        )

    @admin.display(description="current attempt's Celery result")
    def current_task_result(self, job: Job) -> str:
        return _task_result_link(job.celery_task_id)

    @admin.action(permissions=["retry"], description="Retry selected failed or dead jobs")
    def retry_jobs(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        def perform(jobs: list[Job]) -> int:
            retried = [job for job in jobs if job_retry(job=job, actor=request.user, audit=False)]
            audit_record(actor=request.user, action=Action.RETRY, jobs=retried, detail={"via": "admin"})
            return len(retried)

        return _confirmed_action(
            request=request, queryset=queryset, eligible=queryset.filter(status__in=[S.FAILED, S.DEAD]),
            action="retry_jobs", title="Retry", explanation="only failed or dead jobs can be retried.",
            perform=perform, done_message="Retried {count} job(s); they are queued again.",
        )  # fmt: skip

    # Replayed from the dead-letter queue, a job must still be in it once locked (see job_replay_locked).
    replay_dead_letter_only = False

    @admin.action(permissions=["replay"], description="Replay selected finished jobs as new jobs")
    def replay_jobs(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        def perform(jobs: list[Job]) -> int:
            _, new_jobs = job_replay_locked(
                job_ids=[job.id for job in jobs], dead_letter_only=self.replay_dead_letter_only, actor=request.user,
                action=Action.REPLAY, detail={"via": "admin"},
            )  # fmt: skip
            return len(new_jobs)

        return _confirmed_action(
            request=request, queryset=queryset, eligible=queryset.filter(status__in=FINISHED_STATUSES),
            action="replay_jobs", title="Replay",
            explanation="only finished jobs (succeeded, failed, dead, cancelled) can be replayed.",
            perform=perform, done_message="Replayed {count} job(s) as new jobs with the same payload.",
        )  # fmt: skip

    @admin.action(permissions=["cancel"], description="Cancel selected queued, retrying or running jobs")
    def cancel_jobs(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        def perform(jobs: list[Job]) -> int:
            cancelled, finished_meanwhile = [], []
            for job in jobs:
                try:
                    job_cancel(job=job, actor=request.user, audit=False)
                    cancelled.append(job)
                except IllegalTransition:
                    finished_meanwhile.append(job)
            if cancelled:
                audit_record(actor=request.user, action=Action.CANCEL, jobs=cancelled, detail={"via": "admin"})
            if finished_meanwhile:
                messages.warning(
                    request,
                    f"{len(finished_meanwhile)} job(s) finished before the cancel was confirmed and were left "
                    f"alone: {', '.join(job.id for job in finished_meanwhile[:10])}",
                )
            return len(cancelled)

        return _confirmed_action(
            request=request, queryset=queryset,
            eligible=queryset.filter(status__in=[*WAITING_STATUSES, S.RUNNING]),
            action="cancel_jobs", title="Cancel",
            explanation="only queued, retrying or running jobs can be cancelled (running ones stop at their next check).",
            perform=perform, done_message="Cancelled or asked to stop {count} job(s).",
        )  # fmt: skip

    def has_retry_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("jobs.retry_job")

    def has_replay_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("jobs.replay_job")

    def has_cancel_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("jobs.cancel_job")


@admin.register(DeadJob)
class DeadJobAdmin(JobAdmin):
    """The dead-letter queue. Filter by type, select all, and replay: the runbook's main tool."""

    actions = ["replay_jobs", "retry_jobs"]
    list_filter = (JobTypeFilter, QueueFilter, "finished_at")  # type: ignore[assignment]
    replay_dead_letter_only = True

    def get_queryset(self, request: HttpRequest) -> QuerySet[Job]:
        return cast(JobQuerySet, super().get_queryset(request)).dead_letter()
