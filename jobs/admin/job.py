"""The job admin and the dead-letter queue: read-only records, guarded actions with confirmation.

Jobs are never edited by hand: every change goes through a service (retry, replay,
cancel), each action filters the selection to jobs in a valid starting state, asks for
confirmation, reports counts, and leaves an audit entry. The same actions are buttons on a
job's page and on each group of the dead-letter queue: they post to the list's action with
that one job, or with the group's filter and "select all", and so go through the same flow.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from typing import Any, cast

from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.utils.safestring import SafeString, mark_safe
from django.utils.text import Truncator
from django_celery_results.models import TaskResult

from jobs.admin.bases import EstimatedCountPaginator, ViewOnlyAdmin
from jobs.admin.dashboard import dashboard_view, overview_figures, refresh_seconds
from jobs.admin.display import (
    badge,
    dead_letter_group_rows,
    duration,
    exact_time,
    flower_task_url,
    plural,
    relative_time,
    status_badge,
    time_with_age,
)
from jobs.core import admin_hooks, registry
from jobs.core.audit import Action, audit_record
from jobs.core.lifecycle import job_cancel, job_retry
from jobs.foundation.exceptions import IllegalTransition, UnknownJobType
from jobs.models import FINISHED_STATUSES, WAITING_STATUSES, DeadJob, Job, JobAttempt, JobQuerySet
from jobs.ops.operations import job_replay_locked
from jobs.ops.runbook import runbook_html
from jobs.ops.selectors import dead_letter_groups, job_search, jobs_overview

S = Job.Status
# Log lines shown on a job's page (JOBS_LOG_MAX_LINES bounds what is kept per attempt).
LOG_LINES_SHOWN = 500
# Groups of the dead-letter queue listed above it.
DEAD_LETTER_GROUPS_SHOWN = 50
# How often the overview page reloads itself, unless ?refresh= says otherwise.
OVERVIEW_REFRESH_SECONDS = 15
# An action on a whole filter (select_across) refuses more jobs than this: narrow the filter, or use the
# management commands (jobs_replay), which work in chunks.
BULK_ACTION_LIMIT = 10_000
# The actions offered on a whole filter, with their buttons' labels.
BULK_ACTIONS = {"retry_jobs": "Retry all", "replay_jobs": "Replay all", "cancel_jobs": "Cancel all"}
# Which statuses each action starts from; the job page shows a button only where it applies.
RETRYABLE = (S.FAILED, S.DEAD)
CANCELLABLE = (*WAITING_STATUSES, S.RUNNING)


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


class DueFilter(admin.SimpleListFilter):
    """Jobs that run later: those still waiting for their due time, or any job given one."""

    title = "due time"
    parameter_name = "due"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("later", "Waiting for its due time"), ("scheduled", "Has a due time")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Job]) -> QuerySet[Job]:
        if self.value() == "later":
            # The scheduler's index (jobs_due_idx) answers this.
            return queryset.filter(status=S.QUEUED, published_at__isnull=True, run_at__gt=timezone.now())
        if self.value() == "scheduled":
            return queryset.filter(run_at__isnull=False)
        return queryset


class DeadLetterErrorCodeFilter(admin.SimpleListFilter):
    """Error codes found in the dead-letter queue (small, so grouping it is cheap)."""

    title = "error code"
    parameter_name = "error_code"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        codes = Job.objects.dead_letter().values_list("error_code", flat=True).distinct().order_by("error_code")
        chosen = self.value()
        found = set(codes[:100]) | ({chosen} if chosen else set())
        return [(code, code or "(none)") for code in sorted(found)]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Job]) -> QuerySet[Job]:
        return queryset.filter(error_code=self.value()) if self.value() is not None else queryset


def _task_result_link(task_id: str) -> SafeString:
    if not task_id:
        return mark_safe("-")
    result_id = TaskResult.objects.filter(task_id=task_id).values_list("pk", flat=True).first()
    flower = flower_task_url(task_id)
    flower_link = format_html(' · <a href="{}" target="_blank" rel="noopener">Flower</a>', flower) if flower else ""
    if result_id is None:
        return format_html("{}{}", task_id, flower_link)
    url = reverse("admin:django_celery_results_taskresult_change", args=[result_id])
    return format_html('<a href="{}">{}</a>{}', url, task_id, flower_link)


def _job_link(job_id: str) -> SafeString:
    return format_html('<a href="{}">{}</a>', reverse("admin:jobs_job_change", args=[job_id]), job_id)


def _filter_label(request: HttpRequest) -> str:
    """The list's filter and search, as its query string (where an action on a whole filter was asked)."""
    return request.GET.urlencode()


def _audit_detail(request: HttpRequest) -> dict[str, Any]:
    """The audit entry's detail for an admin action: how it was asked, and on a whole filter, which one."""
    if request.POST.get("select_across") == "1":
        return {"via": "admin", "filter": _filter_label(request)}
    return {"via": "admin"}


def _safe_return_to(request: HttpRequest) -> str:
    target = request.POST.get("return_to", "")
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        return target
    return ""


def _confirmed_action(
    *,
    request: HttpRequest,
    queryset: QuerySet[Job],
    eligible: QuerySet[Job],
    action: str,
    verb: str,
    explanation: str,
    consequence: str,
    perform: Callable[[list[Job]], tuple[str, list[Job]]],
    causes_title: str = "Why these jobs ended",
    advise: Callable[[list[Job]], list[admin_hooks.ReplayAdvice]] | None = None,
) -> HttpResponse | None:
    """Shared flow of every job action: filter to eligible, confirm, act, report counts and new jobs.

    ``perform`` returns what was done, as a sentence, and the jobs it created (linked in the message);
    ``advise`` what the job types say about it, shown on the confirmation only.
    The confirmation groups the jobs' errors under ``causes_title``; jobs without an error are not causes.
    """
    chosen = queryset.count()
    across = request.POST.get("select_across") == "1"
    if across and eligible.count() > BULK_ACTION_LIMIT:
        messages.error(request, f"This filter finds {plural(eligible.count(), 'job')} to {verb}, more than "
                                f"{BULK_ACTION_LIMIT:,} at once: narrow the filter (by type, error or time), or "
                                "use the jobs_replay command, which works in chunks.")  # fmt: skip
        return None
    targets = list(eligible)
    skipped = chosen - len(targets)
    return_to = _safe_return_to(request)
    if not targets:
        selected = "The selected job" if chosen == 1 else f"None of the {plural(chosen, 'selected job')}"
        messages.warning(request, f"{selected} cannot be {verb}ed: {explanation}")
        return HttpResponseRedirect(return_to) if return_to else None
    if request.POST.get("confirm") != "yes":
        causes = Counter(
            (job.type, job.error_code, Truncator(job.error_message).chars(160)) for job in targets if job.error_code
        )
        return TemplateResponse(
            request,
            "admin/jobs/confirm_action.html",
            {
                **admin.site.each_context(request),
                "title": f"{verb.capitalize()} {plural(len(targets), 'job')}?",
                "verb": verb,
                "count_label": plural(len(targets), "job"),
                "action": action,
                "jobs": targets[:100],
                "more": max(0, len(targets) - 100),
                "skipped_label": plural(skipped, "selected job") if skipped else "",
                "explanation": explanation,
                "consequence": consequence,
                "causes_title": causes_title,
                "causes": [
                    (job_type, code, message, count) for (job_type, code, message), count in causes.most_common(20)
                ],  # fmt: skip
                "selected_ids": request.POST.getlist(helpers.ACTION_CHECKBOX_NAME),
                "select_across": request.POST.get("select_across", "0"),
                "filter_label": _filter_label(request) if across else "",
                "return_to": return_to,
                "back_url": return_to or request.get_full_path(),
                "opts": queryset.model._meta,
                "badge": status_badge,
                "advice": advise(targets) if advise else [],
            },
        )
    done, created = perform(targets)
    note = f" {plural(skipped, 'selected job')} {'was' if skipped == 1 else 'were'} left alone: not in a valid state." \
        if skipped else ""  # fmt: skip
    links = format_html_join(", ", "{}", ((_job_link(job.id),) for job in created[:20]))
    more = f" and {len(created) - 20:,} more" if len(created) > 20 else ""
    if created:
        messages.success(request, format_html("{}{} New: {}{}.", done, note, links, more))
    else:
        messages.success(request, done + note)
    return HttpResponseRedirect(return_to) if return_to else None


@admin.register(Job)
class JobAdmin(ViewOnlyAdmin):
    # What fits a 1440 px screen beside the filters; the queue is a filter (and follows from the type).
    list_display = ("status_badge", "job_label", "short_error", "attempts_display", "age", "finished", "owner")
    list_display_links = ("job_label",)
    # No date_hierarchy: it lists the distinct days of every job, a scan of the whole table.
    list_filter = ("status", JobTypeFilter, QueueFilter, DueFilter, "created_at", "finished_at")
    paginator = EstimatedCountPaginator
    # Django's 100 rows cost most of a search's time in rendering (bench/job_search.py); 50 fill a desktop screen.
    list_per_page = 50
    show_full_result_count = False  # a second count of the whole table on every filtered view
    # Matched exactly by get_search_results below; listed so the admin shows its search box.
    search_fields = ("id", "idempotency_key", "correlation_id", "owner__username", "owner__email")
    search_help_text = (
        "Words in the error code, error message or payload (all of them; field=value for a payload "
        "field), a job id, idempotency key or correlation id (exact), or part of the owner's username "
        "or email."
    )
    list_select_related = ("owner",)
    actions = ["retry_jobs", "replay_jobs", "cancel_jobs"]
    change_list_template = "admin/jobs/job/change_list.html"
    change_form_template = "admin/jobs/job/change_form.html"
    readonly_fields = ("id", "type", "queue", "status", "attempt", "max_attempts", "owner", "idempotency_key",
                       "idempotency_expires_at", "payload_block", "payload_fingerprint", "correlation_id", "progress",
                       "progress_message", "result_block", "error_code", "error_message", "traceback_block",
                       "cancel_requested", "replay_of_link", "replays_links", "published_at", "worker",
                       "current_task_result", "created_at", "enqueued_at", "started_at", "finished_at",
                       "run_at", "next_retry_at", "lease_expires_at", "updated_at", "attempts_table", "log_block")  # fmt: skip
    fieldsets = (
        ("Attempts", {"fields": ("attempts_table",)}),
        ("Last failure", {"fields": ("error_code", "error_message", "traceback_block")}),
        ("Payload and result", {"fields": ("payload_block", "result_block", "progress", "progress_message")}),
        ("Log", {"fields": ("log_block",)}),
        (
            "Timeline",
            {
                "fields": (
                    "created_at",
                    "enqueued_at",
                    "run_at",
                    "published_at",
                    "started_at",
                    "next_retry_at",
                    "lease_expires_at",
                    "finished_at",
                    "updated_at",
                )
            },
        ),  # fmt: skip
        (
            "Identity and links",
            {
                "fields": (
                    "id",
                    "type",
                    "queue",
                    "status",
                    "attempt",
                    "max_attempts",
                    "owner",
                    "idempotency_key",
                    "idempotency_expires_at",
                    "payload_fingerprint",
                    "correlation_id",
                    "replay_of_link",
                    "replays_links",
                    "worker",
                    "current_task_result",
                    "cancel_requested",
                )
            },
        ),  # fmt: skip
    )

    def get_fieldsets(self, request: HttpRequest, obj: Job | None = None) -> Any:
        """Only the sections that say something about this job: no empty "Last failure" on a healthy
        job, and no lease once it stopped running (the lease is a running attempt's, and stays behind)."""
        fieldsets = super().get_fieldsets(request, obj)
        if obj is None:
            return fieldsets
        shown = []
        for name, options in fieldsets:
            if name == "Last failure" and not (obj.error_code or obj.error_message or obj.error_traceback):
                continue
            fields = [field for field in options["fields"] if field != "lease_expires_at" or obj.status == S.RUNNING]
            shown.append((name, {**options, "fields": fields}))
        return shown

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Job], search_term: str
    ) -> tuple[QuerySet[Job], bool]:
        """``jobs.ops.selectors.job_search``: every branch on an index, so a search stays fast on millions of
        jobs (the admin's own search ORs case-insensitive comparisons over a join, a full scan)."""
        return job_search(jobs=queryset, term=search_term), False

    def get_urls(self) -> list[URLPattern]:
        if self.model is not Job:  # the dead-letter queue's admin inherits from this one
            return super().get_urls()
        overview = path("overview/", self.admin_site.admin_view(self.overview_view), name="jobs_job_overview")
        runbook = path("runbook/", self.admin_site.admin_view(self.runbook_view), name="jobs_job_runbook")
        dashboard = path("dashboard/", self.admin_site.admin_view(self.dashboard), name="jobs_job_dashboard")
        return [dashboard, overview, runbook, *super().get_urls()]

    def runbook_view(self, request: HttpRequest) -> HttpResponse:
        """docs/operations.md, for the overview's alert links when JOBS_RUNBOOK_URL is not set."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        context = {**self.admin_site.each_context(request), "title": "Operations runbook",
                   "runbook": mark_safe(runbook_html())}  # noqa: S308 - runbook_html escapes every text  # fmt: skip
        return TemplateResponse(request, "admin/jobs/runbook.html", context)

    def overview_view(self, request: HttpRequest) -> HttpResponse:
        """Queue depths, backlog age, the dead-letter queue's size and the alerts, for operators."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        context = {
            **self.admin_site.each_context(request), **overview_figures(request, jobs_overview()),
            "title": "Jobs overview",
            "refresh_seconds": refresh_seconds(request, default=OVERVIEW_REFRESH_SECONDS),
        }  # fmt: skip
        return TemplateResponse(request, "admin/jobs/overview.html", context)

    def dashboard(self, request: HttpRequest) -> HttpResponse:
        return dashboard_view(request, admin_context=self.admin_site.each_context(request),
                              may_view=self.has_view_permission(request))  # fmt: skip

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        job = self.get_object(request, object_id)
        if job is not None:
            extra_context = {**(extra_context or {}), **self._summary_context(request, job)}
        return super().change_view(request, object_id, form_url, extra_context)

    def _summary_context(self, request: HttpRequest, job: Job) -> dict[str, Any]:
        """The job's page opens with what an operator needs first: state, error, what to do."""
        now = timezone.now()
        end = job.finished_at or (now if job.status == S.RUNNING else None)
        run_seconds = (end - job.started_at).total_seconds() if job.started_at and end else None
        # From the first attempt's start: a job that postponed itself (polled) ran far longer than its last attempt.
        first_start = job.attempts.exclude(started_at=None).order_by("started_at").values_list("started_at", flat=True)
        began = min(filter(None, (first_start.first(), job.started_at)), default=None)
        total_seconds = (end - began).total_seconds() if began and end else None
        changelist = reverse("admin:jobs_job_changelist")
        buttons = []
        if job.status in RETRYABLE and self.has_retry_permission(request):
            buttons.append(("retry_jobs", "Retry", "Queue this job again with a fresh budget of attempts"))
        if job.status in FINISHED_STATUSES and self.has_replay_permission(request):
            buttons.append(
                ("replay_jobs", "Replay as a new job", "A new job with the same payload, linked to this one")
            )
        # Asked once, a running job stops at its next check: a second Cancel would change nothing.
        cancel_pending = job.status == S.RUNNING and job.cancel_requested
        if job.status in CANCELLABLE and not cancel_pending and self.has_cancel_permission(request):
            buttons.append(("cancel_jobs", "Cancel", "Stop this job (a running one stops at its next check)"))
        replays = list(job.replays.order_by("-created_at").values_list("id", "status")[:5])
        try:
            type_description = registry.get(job.type).description
        except UnknownJobType:
            type_description = "this type is no longer declared by any code"
        return {
            "job": job,
            "job_badge": status_badge(job),
            "type_description": type_description,
            "attempt_label": f"attempt {job.attempt} of {job.max_attempts}",
            "created": time_with_age(job.created_at),
            "run_time": duration(run_seconds),
            "total_time": duration(total_seconds) if total_seconds != run_seconds else "",
            "record_link": admin_hooks.record_link(job_type=job.type, job_id=job.id, payload=job.payload),
            "next_retry": relative_time(job.next_retry_at, now=now) if job.status == S.RETRYING else "",
            "due": time_with_age(job.run_at) if job.run_at else "",
            "finished": time_with_age(job.finished_at) if job.finished_at else "",
            "actions": buttons,
            "cancel_pending": cancel_pending,
            "action_url": changelist,
            "return_to": request.get_full_path(),
            "replays": [(_job_link(replay_id), badge(status, S(status).label)) for replay_id, status in replays],
            "replay_of": _job_link(job.replay_of_id) if job.replay_of_id else "",
            "flower_url": flower_task_url(job.celery_task_id),
            "same_error_url": f"{reverse('admin:jobs_deadjob_changelist')}?"
            f"{urlencode({'type': job.type, 'error_code': job.error_code})}"
            if job.error_code
            else "",
        }

    @admin.display(description="status", ordering="status")
    def status_badge(self, job: Job) -> SafeString:
        if job.status == S.QUEUED and job.run_at is not None and job.run_at > timezone.now():
            # A job that runs later says when, under its badge.
            return format_html('{}<br><small class="quiet job-due" title="{}">due {}</small>', status_badge(job),
                               exact_time(job.run_at), relative_time(job.run_at))  # fmt: skip
        return status_badge(job)

    @admin.display(description="job", ordering="type")
    def job_label(self, job: Job) -> SafeString:
        replay = format_html(' <small class="quiet">replay</small>') if job.replay_of_id else ""
        return format_html('<strong>{}</strong>{}<br><small class="quiet job-id">{}</small>', job.type, replay, job.id)

    @admin.display(description="error")
    def short_error(self, job: Job) -> SafeString:
        if not job.error_code:
            return mark_safe("")
        return format_html('<code>{}</code><br><small title="{}">{}</small>', job.error_code, job.error_message,
                           Truncator(job.error_message).chars(90))  # fmt: skip

    @admin.display(description="attempts")
    def attempts_display(self, job: Job) -> str:
        return f"{job.attempt}/{job.max_attempts}"

    @admin.display(description="created", ordering="created_at")
    def age(self, job: Job) -> SafeString:
        return format_html('<span title="{}">{}</span>', exact_time(job.created_at), relative_time(job.created_at))

    @admin.display(description="finished", ordering="finished_at")
    def finished(self, job: Job) -> SafeString:
        if not job.finished_at:
            return mark_safe("-")
        return format_html('<span title="{}">{}</span>', exact_time(job.finished_at), relative_time(job.finished_at))

    @admin.display(description="payload")
    def payload_block(self, job: Job) -> SafeString:
        return format_html('<pre class="job-pre">{}</pre>', json.dumps(job.payload, indent=2, sort_keys=True))

    @admin.display(description="result")
    def result_block(self, job: Job) -> SafeString:
        if job.result is None:
            return mark_safe("-")
        return format_html('<pre class="job-pre">{}</pre>', json.dumps(job.result, indent=2, sort_keys=True))

    @admin.display(description="traceback")
    def traceback_block(self, job: Job) -> SafeString:
        if not job.error_traceback:
            return mark_safe("-")
        return format_html('<pre class="job-pre job-traceback">{}</pre>', job.error_traceback)

    @admin.display(description="attempts")
    def attempts_table(self, job: Job) -> SafeString:
        attempts = list(job.attempts.order_by("number", "id"))
        if not attempts:
            return mark_safe("No attempt has ended yet.")
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    attempt.number,
                    badge(attempt.outcome, attempt.get_outcome_display()),
                    format_html('&nbsp;<strong class="attempt-repeats">×&nbsp;{}</strong>', count) if count > 1 else "",
                    exact_time(attempt.started_at) + (" onwards" if count > 1 else ""),
                    duration(seconds),
                    attempt.worker or "-",
                    _attempt_error(attempt),
                    _task_result_link(attempt.celery_task_id),
                )
                for attempt, count, seconds in _attempt_rows(attempts)
            ),
        )
        return format_html(
            '<div class="job-table-wrap"><table class="job-table"><thead><tr><th>#</th><th>outcome</th>'
            "<th>started</th><th>took</th><th>worker</th><th>error</th><th>Celery task</th></tr></thead>"
            "<tbody>{}</tbody></table></div>",
            rows,
        )

    @admin.display(description="log")
    def log_block(self, job: Job) -> SafeString:
        lines = list(job.log_lines.order_by("-logged_at", "-id")[:LOG_LINES_SHOWN])[::-1]
        if not lines:
            return mark_safe("No log lines.")
        text = format_html_join(
            "\n",
            '<span class="log-{}">{} {:<7} [attempt {}] {}</span>',
            (
                (line.level.lower(), exact_time(line.logged_at), line.level, line.attempt, line.message)
                for line in lines
            ),
        )
        return format_html('<pre class="job-pre job-log">{}</pre>', text)

    @admin.display(description="replay of")
    def replay_of_link(self, job: Job) -> SafeString:
        return _job_link(job.replay_of_id) if job.replay_of_id else mark_safe("-")

    @admin.display(description="replays")
    def replays_links(self, job: Job) -> SafeString:
        replays = list(job.replays.values_list("id", flat=True)[:20])
        if not replays:
            return mark_safe("-")
        return format_html_join(", ", "{}", ((_job_link(replay_id),) for replay_id in replays))

    @admin.display(description="current attempt's Celery task")
    def current_task_result(self, job: Job) -> SafeString:
        return _task_result_link(job.celery_task_id)

    @admin.action(permissions=["retry"], description="Retry selected failed or dead jobs")
    def retry_jobs(self, request: HttpRequest, queryset: QuerySet[Job]) -> HttpResponse | None:
        def perform(jobs: list[Job]) -> tuple[str, list[Job]]:
            retried = [job for job in jobs if job_retry(job=job, actor=request.user, audit=False)]
            audit_record(actor=request.user, action=Action.RETRY, jobs=retried, detail=_audit_detail(request))
            return f"Retried {plural(len(retried), 'job')}; {'it is' if len(retried) == 1 else 'they are'} " \
                   "queued again.", []  # fmt: skip

        return _confirmed_action(
            request=request, queryset=queryset, eligible=queryset.filter(status__in=RETRYABLE),
            action="retry_jobs", verb="retry", explanation="only failed or dead jobs can be retried.",
            consequence="Each job goes back to the queue with a fresh budget of attempts; its history stays on it.",
            perform=perform,
        )  # fmt: skip

    # Replayed from the dead-letter queue, a job must still be in it once locked (see job_replay_locked).
    replay_dead_letter_only = False

    @admin.action(permissions=["replay"], description="Replay selected finished jobs as new jobs")
    def replay_jobs(self, request: HttpRequest, queryset: QuerySet[Job]) -> HttpResponse | None:
        def perform(jobs: list[Job]) -> tuple[str, list[Job]]:
            _, new_jobs = job_replay_locked(
                job_ids=[job.id for job in jobs], dead_letter_only=self.replay_dead_letter_only, actor=request.user,
                action=Action.REPLAY, detail=_audit_detail(request),
            )  # fmt: skip
            as_new = "as a new job" if len(new_jobs) == 1 else "as new jobs"
            return f"Replayed {plural(len(new_jobs), 'job')} {as_new} with the same payload.", new_jobs

        return _confirmed_action(
            request=request, queryset=queryset, eligible=queryset.filter(status__in=FINISHED_STATUSES),
            action="replay_jobs", verb="replay",
            explanation="only finished jobs (succeeded, failed, dead, cancelled) can be replayed.",
            consequence="Each job becomes a new job with the same payload, owner and correlation id, linked to it; "
                        "a dead job leaves the dead-letter queue.",
            perform=perform, advise=_replay_advice,
        )  # fmt: skip

    @admin.action(permissions=["cancel"], description="Cancel selected queued, retrying or running jobs")
    def cancel_jobs(self, request: HttpRequest, queryset: QuerySet[Job]) -> HttpResponse | None:
        def perform(jobs: list[Job]) -> tuple[str, list[Job]]:
            cancelled, finished_meanwhile, asked_to_stop = [], [], 0
            for job in jobs:
                try:
                    asked_to_stop += job_cancel(job=job, actor=request.user, audit=False) == S.RUNNING
                    cancelled.append(job)
                except IllegalTransition:
                    finished_meanwhile.append(job)
            if cancelled:
                audit_record(actor=request.user, action=Action.CANCEL, jobs=cancelled, detail=_audit_detail(request))
            if finished_meanwhile:
                messages.warning(
                    request,
                    f"{plural(len(finished_meanwhile), 'job')} finished before the cancel was confirmed and "
                    f"{'was' if len(finished_meanwhile) == 1 else 'were'} left alone: "
                    f"{', '.join(job.id for job in finished_meanwhile[:10])}",
                )
            done = (
                [f"Cancelled {plural(len(cancelled) - asked_to_stop, 'waiting job')}."]
                if len(cancelled) > asked_to_stop
                else []
            )
            if asked_to_stop:
                done.append(
                    f"Asked {plural(asked_to_stop, 'running job')} to stop at {'its' if asked_to_stop == 1 else 'their'}"
                    " next progress check."
                )
            return " ".join(done) or "Cancelled no job.", []

        return _confirmed_action(
            request=request, queryset=queryset, eligible=queryset.filter(status__in=CANCELLABLE),
            action="cancel_jobs", verb="cancel",
            explanation="only queued, retrying or running jobs can be cancelled.",
            consequence="Waiting jobs are cancelled at once; running ones stop at their next progress check.",
            perform=perform, causes_title="Why the retrying ones failed last",
        )  # fmt: skip

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        offered = self.get_actions(request)
        bulk = [(name, label) for name, label in BULK_ACTIONS.items() if name in offered]
        return super().changelist_view(request, {"bulk_actions": bulk, **(extra_context or {})})

    def has_retry_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("jobs.retry_job")

    def has_replay_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("jobs.replay_job")

    def has_cancel_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("jobs.cancel_job")


def _replay_advice(jobs: list[Job]) -> list[admin_hooks.ReplayAdvice]:
    """What each job type among these says about replaying them (a domain app's hook, see jobs.public)."""
    payloads: dict[str, list[dict[str, Any]]] = {}
    for job in jobs:
        payloads.setdefault(job.type, []).append(job.payload)
    found = (admin_hooks.replay_advice(job_type=job_type, payloads=of_type) for job_type, of_type in payloads.items())
    return [advice for advice in found if advice is not None]


def _attempt_rows(attempts: list[JobAttempt]) -> list[tuple[JobAttempt, int, float | None]]:
    """Attempts as shown: a run of consecutive postponements (a job polling, a rate limit) is one row.

    Each row is (first attempt of the run, how many, their summed duration in seconds).
    """
    rows: list[tuple[JobAttempt, int, float | None]] = []
    for attempt in attempts:
        seconds = attempt.duration_ms / 1000 if attempt.duration_ms is not None else None
        if rows and attempt.outcome == JobAttempt.Outcome.SNOOZED and rows[-1][0].outcome == attempt.outcome:
            first, count, total = rows[-1]
            rows[-1] = (first, count + 1, None if total is None or seconds is None else total + seconds)
        else:
            rows.append((attempt, 1, seconds))
    return rows


def _attempt_error(attempt: JobAttempt) -> SafeString:
    if not attempt.error_code:
        return mark_safe("-")
    if not attempt.error_traceback:
        return format_html("<code>{}</code> {}", attempt.error_code, attempt.error_message)
    return format_html(
        '<details><summary><code>{}</code> {}</summary><pre class="job-pre job-traceback">{}</pre></details>',
        attempt.error_code, Truncator(attempt.error_message).chars(200), attempt.error_traceback,
    )  # fmt: skip


@admin.register(DeadJob)
class DeadJobAdmin(JobAdmin):
    """The dead-letter queue, grouped by cause: each (type, error code) one click to view, replay or retry."""

    actions = ["replay_jobs", "retry_jobs"]
    list_filter = (JobTypeFilter, DeadLetterErrorCodeFilter, QueueFilter, "finished_at")  # type: ignore[assignment]
    change_list_template = "admin/jobs/deadjob/change_list.html"
    replay_dead_letter_only = True

    def get_queryset(self, request: HttpRequest) -> QuerySet[Job]:
        return cast(JobQuerySet, super().get_queryset(request)).dead_letter()

    # Whoever may see jobs (and so the overview that links here) may see the dead-letter queue:
    # it is a view of jobs, not a model of its own.
    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return super().has_view_permission(request, obj) or request.user.has_perm("jobs.view_job")

    def has_module_permission(self, request: HttpRequest) -> bool:
        return super().has_module_permission(request) or request.user.has_perm("jobs.view_job")

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        rows = dead_letter_group_rows(dead_letter_groups(limit=DEAD_LETTER_GROUPS_SHOWN))
        context = {
            "groups": rows,
            "can_replay": self.has_replay_permission(request),
            "can_retry": self.has_retry_permission(request),
            **(extra_context or {}),
        }
        return super().changelist_view(request, context)
