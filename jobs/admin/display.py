"""How the admin shows jobs: status badges, times to the second with their age, counts in words."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.conf import settings
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html
from django.utils.http import urlencode
from django.utils.safestring import SafeString, mark_safe
from django.utils.text import Truncator
from django.utils.timesince import timesince

from jobs.models import Job, JobAttempt

S = Job.Status
O = JobAttempt.Outcome  # noqa: E741 - the outcome vocabulary, as S is the status one

# One colour per state, the same in the list, the job page and the dead-letter queue.
BADGE_COLOURS: dict[str, str] = {
    S.SUCCEEDED: "#1b5e20", S.FAILED: "#b71c1c", S.DEAD: "#4a148c", S.RUNNING: "#0d47a1", S.RETRYING: "#e65100",
    S.CANCELLED: "#546e7a", S.QUEUED: "#37474f", O.RETRY: "#e65100", O.LOST: "#bf360c", O.SNOOZED: "#546e7a",
    O.SKIPPED: "#546e7a",
}  # fmt: skip


def badge(value: str, label: str) -> SafeString:
    """A coloured pill naming the state in one word (``dead``); the longer label is its tooltip."""
    colour = BADGE_COLOURS.get(value, "#455a64")
    return format_html('<span class="job-badge" style="background:{}" title="{}">{}</span>', colour, label, value)


def status_badge(job: Job) -> SafeString:
    return badge(job.status, job.get_status_display())


def plural(count: int, singular: str, plural_form: str = "") -> str:
    """``1 job``, ``2 jobs``."""
    return f"{count:,} {singular if count == 1 else (plural_form or singular + 's')}"


def exact_time(moment: datetime | None) -> str:
    return date_format(timezone.localtime(moment), "DATETIME_FORMAT") if moment else "-"


def relative_time(moment: datetime | None, *, now: datetime | None = None) -> str:
    """``3 minutes ago`` or ``in 12 seconds``, to the second under a minute."""
    if moment is None:
        return "-"
    now = now or timezone.now()
    seconds = (moment - now).total_seconds()
    if abs(seconds) < 60:
        words = plural(int(abs(seconds)), "second")
    else:
        words = timesince(moment, now) if seconds < 0 else timesince(now, moment)
        words = words.split(",")[0]  # "2 hours", not "2 hours, 3 minutes"
    return f"in {words}" if seconds > 0 else f"{words} ago"


def time_with_age(moment: datetime | None) -> SafeString:
    """The exact time, and how long ago, in one cell."""
    if moment is None:
        return mark_safe("-")
    return format_html('<span title="{}">{}</span> <small class="quiet">({})</small>', moment.isoformat(),
                       exact_time(moment), relative_time(moment))  # fmt: skip


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes} min {secs} s" if minutes < 120 else f"{minutes // 60} h {minutes % 60} min"


def flower_task_url(task_id: str) -> str:
    base = getattr(settings, "FLOWER_URL", "")
    return f"{base}/task/{task_id}" if base and task_id else ""


def dead_letter_group_rows(groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``jobs.ops.selectors.dead_letter_groups`` as shown: counts in words, times with their age, and the
    dead-letter queue filtered to the group (to view it, or to post an action on all of it)."""
    url = reverse("admin:jobs_deadjob_changelist")
    return [
        {**group, "message": Truncator(group["message"] or "").chars(140), "count_label": plural(group["count"], "job"),
         "last": relative_time(group["last"]), "last_exact": exact_time(group["last"]),
         "url": f"{url}?{urlencode({'type': group['type'], 'error_code': group['error_code']})}"}
        for group in groups
    ]  # fmt: skip
