"""The operators' landing dashboard, and the figures it shares with the overview page.

Every figure comes from ``jobs.ops.selectors.jobs_overview`` (what ``/api/ops/overview`` answers), plus
the throughput over a chosen range (``jobs.ops.charts.throughput``), the dead-letter queue's groups and
the workers consuming each queue. The page refreshes its live part by fetching itself with
``?fragment=1`` (``jobs/static/jobs/dashboard.js``; the CSP allows no inline script): the server renders
the same template, so there is one way to compute and one way to draw each figure.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.http import urlencode

from jobs.admin.display import dead_letter_group_rows
from jobs.admin.workers import workers_by_queue
from jobs.core.switches import disabled_job_types
from jobs.ops.charts import DEFAULT_THROUGHPUT_RANGE, THROUGHPUT_RANGES, render_throughput, throughput
from jobs.ops.selectors import JobsOverview, concurrency_usage, dead_letter_groups, jobs_overview

# How often the dashboard refreshes its figures, unless ?refresh= says otherwise (2 to 300 s).
DASHBOARD_REFRESH_SECONDS = 5
# Dead-letter groups the dashboard lists (the dead-letter queue's page lists more).
DASHBOARD_DEAD_LETTER_GROUPS = 8


def refresh_seconds(request: HttpRequest, *, default: int, least: int = 5) -> int:
    """``?refresh=N`` within ``least`` to 300 s, else ``default``."""
    try:
        return min(300, max(least, int(request.GET.get("refresh", default))))
    except ValueError:
        return default


def _span_label(seconds: int) -> str:
    """``1 h``, ``15 min`` or ``90 s``: the alert window as people say it."""
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    return f"{seconds // 60} min" if seconds % 60 == 0 else f"{seconds} s"


def overview_figures(request: HttpRequest, overview: JobsOverview) -> dict[str, Any]:
    """What the overview page and the dashboard both show of ``overview``, each figure with the jobs behind it."""
    workers = workers_by_queue()
    jobs_url = reverse("admin:jobs_job_changelist")
    rate = overview.success_rate
    return {
        "overview": overview,
        "json_url": reverse("jobs:ops-overview"),
        "dead_letter_url": reverse("admin:jobs_deadjob_changelist"),
        "jobs_url": jobs_url,
        "success_percent": None if rate is None else f"{rate * 100:.1f}",
        "window_label": _span_label(overview.window_seconds),
        "queue_rows": [
            (
                queue,
                f"{jobs_url}?{urlencode({'queue': queue.name, 'status__in': 'queued,retrying'})}",
                None if workers is None else workers.get(queue.name, []),
            )
            for queue in overview.queues
        ],  # fmt: skip
        "status_links": [
            (status, count, f"{jobs_url}?{urlencode({'status__exact': status})}")
            for status, count in overview.live_counts.items()
        ],  # fmt: skip
        "ended_links": [
            (status, count, f"{jobs_url}?{urlencode({'status__exact': status})}")
            for status, count in overview.ended_counts.items()
        ],  # fmt: skip
        "concurrency_rows": [
            (usage, f"{jobs_url}?{urlencode({'type': usage.job_type, 'status__exact': 'running'})}")
            for usage in concurrency_usage()
        ],  # fmt: skip
        "disabled_types": sorted(disabled_job_types()),
        "switches_url": reverse("admin:jobs_jobtypeswitch_changelist"),
    }


def dashboard_view(request: HttpRequest, *, admin_context: dict[str, Any], may_view: bool) -> HttpResponse:
    """The dashboard; with ``?fragment=1`` only its live part, which its script swaps in."""
    if not may_view:
        raise PermissionDenied
    range_key = request.GET.get("range", DEFAULT_THROUGHPUT_RANGE)
    found = throughput(range_key=range_key)
    context = {
        **admin_context,
        **overview_figures(request, jobs_overview()),
        "title": "Dashboard",
        "throughput": found,
        "throughput_chart": render_throughput(found),
        "ranges": [(key, f"?{urlencode({'range': key})}") for key in THROUGHPUT_RANGES],
        "dead_letter_groups": dead_letter_group_rows(dead_letter_groups(limit=DASHBOARD_DEAD_LETTER_GROUPS)),
        "refresh_seconds": refresh_seconds(request, default=DASHBOARD_REFRESH_SECONDS, least=2),
        "overview_url": reverse("admin:jobs_job_overview"),
    }
    template = "admin/jobs/dashboard_live.html" if request.GET.get("fragment") else "admin/jobs/dashboard.html"
    return TemplateResponse(request, template, context)
