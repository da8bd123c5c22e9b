"""Reads for the API and the admin: which jobs a caller may see, and which types they may enqueue."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import BooleanField, Case, Count, F, Func, Max, Min, Q, QuerySet, TextField, Value, When
from django.db.models.functions import Coalesce, Greatest
from django.urls import reverse
from django.utils import timezone
from redis import RedisError

from jobs.core import registry
from jobs.core.permissions import UNEXPECTED_ERROR_MESSAGE, user_enqueues_restricted_types, user_sees_all_jobs
from jobs.core.publisher import queue_depths
from jobs.core.switches import disabled_job_types
from jobs.delivery.schedules import RUN_SCHEDULE_TASK, schedule_correlation_id
from jobs.foundation.dbresilience import describe_database_failures, worker_database_failures
from jobs.foundation.exceptions import JobNotFound
from jobs.foundation.rowreader import column_name, row_reader, table_name
from jobs.models import FINISHED_STATUSES, WAITING_STATUSES, Job, JobAttempt, job_search_text
from jobs.ops.runbook import alert_guide, runbook_url
from jobs.worker.concurrency import running_slots

# Job ids are secrets.token_urlsafe(16); anything else cannot be a job and never reaches the database
# (a NUL byte in a path segment would make PostgreSQL raise instead of answering "not found").
_JOB_ID = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


def job_get(*, job_id: str) -> Job:
    """The job with this id, whoever owns it. Raises JobNotFound."""
    try:
        return Job.objects.get(id=job_id)
    except Job.DoesNotExist:
        raise JobNotFound(f"no job with id {job_id!r}") from None


def job_visible_to(*, user: AbstractUser) -> QuerySet[Job]:
    """Holders of the admin's "view job" permission see every job; everyone else only their own."""
    jobs = Job.objects.all()
    # cast: the project's user model, whichever it is (the stubs expect the concrete User).
    return jobs if user_sees_all_jobs(user) else jobs.filter(owner=cast(Any, user))


def job_get_for(*, user: AbstractUser, job_id: str) -> Job:
    """The job, if ``user`` may see it. Another user's job is 'not found', not 'forbidden': ids are not confirmed.

    Hand-written SQL (jobs.foundation.rowreader) rather than ``job_visible_to``'s queryset, with the same rule: the
    "view job" permission sees every job, anyone else only their own.
    """
    db = connections[DEFAULT_DB_ALIAS]
    jobs = row_reader(Job, db)
    row = None
    if _JOB_ID.match(job_id):
        where, params = _visible_job_where(db, user=user, job_id=job_id)
        with db.cursor() as cursor:
            cursor.execute(f"SELECT {jobs.columns} FROM {table_name(db, Job)} WHERE {where}", params)  # noqa: S608
            row = cursor.fetchone()
    if row is None:
        raise JobNotFound(f"no job with id {job_id!r} that you can see", detail={"job_id": job_id})
    return jobs.instance(row, db)


def job_get_with_attempts_for(*, user: AbstractUser, job_id: str) -> tuple[Job, list[JobAttempt]]:
    """``job_get_for`` and ``job_attempt_list`` in one query: every status poll asks for both.

    The job LEFT JOIN its attempts, one row per attempt (one row of NULL attempt columns when it has
    none), in ``job_attempt_list``'s order; the same visibility rule and the same instances.
    """
    db = connections[DEFAULT_DB_ALIAS]
    jobs, attempts = row_reader(Job, db), row_reader(JobAttempt, db)
    rows: list[Any] = []
    if _JOB_ID.match(job_id):
        job_table, attempt_table = table_name(db, Job), table_name(db, JobAttempt)
        where, params = _visible_job_where(db, user=user, job_id=job_id)
        sql = (f"SELECT {jobs.columns}, {attempts.columns} FROM {job_table} LEFT JOIN {attempt_table} "  # noqa: S608
               f"ON {attempt_table}.{column_name(db, JobAttempt, 'job')} = {job_table}.{column_name(db, Job, 'pk')} "
               f"WHERE {where} ORDER BY {_attempt_order(db)}")  # fmt: skip
        with db.cursor() as cursor:
            cursor.execute(sql, params)
            rows = cursor.fetchall()
    if not rows:
        raise JobNotFound(f"no job with id {job_id!r} that you can see", detail={"job_id": job_id})
    attempt_pk = jobs.width + attempts.attnames.index(JobAttempt._meta.pk.attname)
    job = jobs.instance(rows[0], db)
    return job, [attempts.instance(row, db, start=jobs.width) for row in rows if row[attempt_pk] is not None]


def _visible_job_where(db: BaseDatabaseWrapper, *, user: AbstractUser, job_id: str) -> tuple[str, list[Any]]:
    """The WHERE clause (and its parameters) selecting job ``job_id`` when ``user`` may see it."""
    table = table_name(db, Job)
    where, params = f"{table}.{column_name(db, Job, 'pk')} = %s", [job_id]
    if not user_sees_all_jobs(user):
        where += f" AND {table}.{column_name(db, Job, 'owner')} = %s"
        params.append(user.pk)
    return where, params


def _attempt_order(db: BaseDatabaseWrapper) -> str:
    """``order_by("finished_at", "id")`` of attempts, as SQL."""
    table = table_name(db, JobAttempt)
    return (f"{table}.{column_name(db, JobAttempt, 'finished_at')} ASC, "
            f"{table}.{column_name(db, JobAttempt, 'pk')} ASC")  # fmt: skip


# The due-time filter of the API's job list: still waiting for its due time, or given one at all.
DUE_FILTERS = ("later", "scheduled")


def job_list_for(
    *,
    user: AbstractUser,
    status: str | None = None,
    job_type: str | None = None,
    owner_id: int | None = None,
    due: str | None = None,
) -> QuerySet[Job]:
    """The jobs ``user`` may see, newest first, optionally filtered; ``owner_id`` narrows staff's view to one user.

    ``due``: ``later`` for jobs still waiting for their due time, ``scheduled`` for any job given one.
    """
    jobs = job_visible_to(user=user).order_by("-created_at", "id")
    if due == "later":
        jobs = jobs.filter(status=Job.Status.QUEUED, published_at__isnull=True, run_at__gt=timezone.now())
    elif due == "scheduled":
        jobs = jobs.filter(run_at__isnull=False)
    if status:
        jobs = jobs.filter(status=status)
    if job_type:
        jobs = jobs.filter(type=job_type)
    if owner_id is not None:
        jobs = jobs.filter(owner_id=owner_id)
    return jobs


# A search term matching more users than this is too vague to list their jobs by.
OWNER_SEARCH_LIMIT = 100
# ``field=value`` in a search: a payload field (dots for nested ones) equal to a value.
_PAYLOAD_FIELD = re.compile(r"^(?P<path>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*)=(?P<value>.+)$")


class _TextContains(Func):
    """``<text expression> LIKE '%WORD%'``, the word escaped for LIKE; on PostgreSQL as a literal, not a parameter.

    With server-side binding a query run five times is prepared, and PostgreSQL may then plan it once for any
    word (a generic plan): unable to tell a rare word from a common one, it walks every job newest first rather
    than asking the trigram index (8 s instead of 25 ms on a million jobs, bench/job_search.py). A literal is
    planned for the word it holds. The driver quotes it (``psycopg.sql.quote`` with the open connection, so libpq
    escapes it for that server's settings), never this code; ``%`` is then written ``%%`` for the placeholder syntax.
    """

    output_field = BooleanField()

    def __init__(self, expression: Any, word: str) -> None:
        super().__init__(expression)
        self.word = word

    def as_sql(self, compiler: Any, connection: Any, **extra_context: Any) -> tuple[str, list[Any]]:  # type: ignore[override]
        text_sql, params = compiler.compile(self.source_expressions[0])
        pattern = f"%{connection.ops.prep_for_like_query(self.word)}%"
        if connection.vendor == "postgresql":
            from psycopg import sql as psycopg_sql  # PostgreSQL only: SQLite installs need not have the driver

            connection.ensure_connection()
            literal = psycopg_sql.quote(pattern.replace("\x00", ""), connection.connection).replace("%", "%%")
            return f"({text_sql} LIKE {literal})", list(params)
        return f"({text_sql} LIKE %s ESCAPE '\\')", [*params, pattern]


def job_search(*, jobs: QuerySet[Job], term: str) -> QuerySet[Job]:
    """The jobs among ``jobs`` that the admin's search box ``term`` finds, each branch on an index.

    - the whole term as a job id, correlation id or idempotency key (exactly: they are pasted whole),
      or part of an owner's username or email (a few users first, then the owner index);
    - or every word of it in the job's error code, error message or payload (case-insensitive,
      ``jobs.models.job_search_text``: a trigram index on PostgreSQL), where ``field=value`` also
      asks that payload field (``sku=A-1``, ``page.number=3``) to equal the value.
    """
    term = term.strip()
    if not term:
        return jobs
    # The idempotency key's index starts with the type: name the types so it can be used.
    types = [spec.name for spec in registry.all_types()]
    matches = Q(id=term) | Q(correlation_id=term) | Q(type__in=types, idempotency_key=term)
    owner_ids = list(
        get_user_model()
        .objects.filter(Q(username__icontains=term) | Q(email__icontains=term))
        .values_list("pk", flat=True)[:OWNER_SEARCH_LIMIT]
    )
    if owner_ids:
        matches |= Q(owner_id__in=owner_ids)
    words = Q()
    for word in term.split():
        field = _PAYLOAD_FIELD.match(word)
        if field:
            path, value = field.group("path").replace(".", "__"), field.group("value")
            same = Q(**{f"payload__{path}": value})
            if re.fullmatch(r"-?\d{1,15}", value):
                same |= Q(**{f"payload__{path}": int(value)})
            words &= Q(_TextContains(job_search_text(), value.upper())) & same
        else:
            words &= Q(_TextContains(job_search_text(), word.upper()))
    return jobs.filter(matches | words)


def due_since() -> Any:
    """A query expression for when a waiting job became due: its retry's time, else the later of its due time
    (``run_at``, a job that runs later) and when it was (re-)enqueued."""
    enqueued = Coalesce("enqueued_at", "created_at")
    return Coalesce("next_retry_at", Greatest(Coalesce("run_at", enqueued), enqueued))


def job_error_message_visible_to(*, user: AbstractUser) -> Any:
    """A query expression for ``Job.error_message`` as ``user`` may read it (``permissions.error_message_for``
    in SQL): an unexpected error's code is a class name, with an upper-case letter no declared code has."""
    if user_sees_all_jobs(user):
        return F("error_message")
    return Case(
        When(error_code__regex=r"[A-Z]", then=Value(UNEXPECTED_ERROR_MESSAGE)),
        default=F("error_message"),
        output_field=TextField(),
    )


def job_attempt_list(*, job: Job) -> list[JobAttempt]:
    """A job's attempts in the order they ended, as ``order_by("finished_at", "id")`` sorts them.

    Hand-written SQL (jobs.foundation.rowreader) like ``job_get_for``: every status poll asks it.
    """
    db = connections[DEFAULT_DB_ALIAS]
    attempts = row_reader(JobAttempt, db)
    table = table_name(db, JobAttempt)
    sql = (f"SELECT {attempts.columns} FROM {table} WHERE {table}.{column_name(db, JobAttempt, 'job')} = %s "  # noqa: S608
           f"ORDER BY {_attempt_order(db)}")  # fmt: skip
    with db.cursor() as cursor:
        cursor.execute(sql, [job.pk])
        rows = cursor.fetchall()
    return [attempts.instance(row, db) for row in rows]


def job_type_names_enqueueable_by(*, user: AbstractUser) -> list[str]:
    """The job types ``user`` may enqueue over the API (staff-only types need the "add job" permission)."""
    restricted_allowed = user_enqueues_restricted_types(user)
    return [
        spec.name
        for spec in registry.all_types()
        if spec.enqueueable_over_api and (restricted_allowed or not spec.api_staff_only)
    ]


# ---------------------------------------------------------------------------
# Operations overview: what an operator or an alerting probe needs at a glance
# ---------------------------------------------------------------------------

LIVE_STATUSES = (Job.Status.QUEUED, Job.Status.RETRYING, Job.Status.RUNNING, Job.Status.DEAD)
# In the lifecycle's order, for a stable JSON document.
_FINISHED_IN_ORDER = [status for status in Job.Status if status in FINISHED_STATUSES]


@dataclass(frozen=True)
class ConcurrencyUsage:
    """One job type with a concurrency limit: its slots taken, its limits, and the jobs waiting for a slot."""

    job_type: str
    running: int
    limit: int | None
    per_key_limit: int | None
    # The most slots one key holds (per-key limits only), and how many keys hold one.
    busiest_key_running: int
    keys_running: int
    waiting: int


def concurrency_usage() -> list[ConcurrencyUsage]:
    """Each declared type with a concurrency limit, by name: two small counts each (the running jobs of the type,
    the jobs waiting for a slot through the unpublished-jobs index)."""
    usage = []
    for spec in registry.all_types():
        if not spec.limited:
            continue
        keys = dict(running_slots(spec.name).values_list("concurrency_key").annotate(count=Count("id")))
        waiting = Job.objects.filter(type=spec.name, status__in=WAITING_STATUSES, published_at__isnull=True,
                                     concurrency_key__isnull=False).count()  # fmt: skip
        usage.append(ConcurrencyUsage(
            job_type=spec.name, running=sum(keys.values()), limit=spec.concurrency, per_key_limit=spec.concurrency_per_key,
            busiest_key_running=max(keys.values(), default=0), keys_running=len(keys), waiting=waiting,
        ))  # fmt: skip
    return usage


@dataclass(frozen=True)
class QueueOverview:
    name: str
    # Messages waiting in the broker's list; None when the broker did not answer.
    broker_depth: int | None
    # Jobs due to run (queued, or retrying with their delay passed) whose type is switched on.
    due_jobs: int
    oldest_due_seconds: float | None


@dataclass(frozen=True)
class Alert:
    code: str
    message: str

    @property
    def title(self) -> str:
        """What the alert is about, in words (``Dead-letter queue not empty``), for people; ``code`` is for probes."""
        return alert_guide(self.code).title

    @property
    def runbook_url(self) -> str:
        """Where the runbook says what to do: ``JOBS_RUNBOOK_URL``'s section, or the admin's copy of it."""
        return runbook_url(code=self.code, local_url=reverse("admin:jobs_job_runbook"))

    def as_dict(self) -> dict[str, str]:
        return {"code": self.code, "title": self.title, "message": self.message, "runbook_url": self.runbook_url}


@dataclass(frozen=True)
class JobsOverview:
    generated_at: datetime
    queues: list[QueueOverview]
    # Jobs now queued, retrying, running, and dead.
    live_counts: dict[str, int]
    # Dead jobs not replayed yet.
    dead_letter_size: int
    window_seconds: int
    # How jobs that ended within the window ended.
    ended_counts: dict[str, int]
    alerts: list[Alert] = field(default_factory=list)

    @property
    def judged_count(self) -> int:
        """Jobs that ended succeeded, failed or dead in the window: cancelled ones say nothing about health."""
        return sum(self.ended_counts[status] for status in (Job.Status.SUCCEEDED, Job.Status.FAILED, Job.Status.DEAD))

    @property
    def success_rate(self) -> float | None:
        judged = self.judged_count
        return self.ended_counts[Job.Status.SUCCEEDED] / judged if judged else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": "alerting" if self.alerts else "ok",
            "generated_at": self.generated_at.isoformat(),
            "alerts": [alert.as_dict() for alert in self.alerts],
            "queues": [
                {"name": queue.name, "broker_depth": queue.broker_depth, "due_jobs": queue.due_jobs,
                 "oldest_due_seconds": queue.oldest_due_seconds}
                for queue in self.queues
            ],
            "jobs": self.live_counts,
            "dead_letter_queue": self.dead_letter_size,
            "last_window": {
                "seconds": self.window_seconds, "ended": self.ended_counts,
                "success_rate": None if self.success_rate is None else round(self.success_rate, 4),
            },
        }  # fmt: skip


def jobs_overview() -> JobsOverview:
    """Queue depth and backlog age per queue, live job counts, outcomes over the last window, and the
    alerts their thresholds (``JOBS_ALERT_*`` settings) raise.

    Every count is read through an index (status, finished_at, the live-jobs partial index), so this
    stays cheap on a table with millions of finished jobs.
    """
    now = timezone.now()
    window = int(settings.JOBS_ALERT_WINDOW_SECONDS)
    live = dict(Job.objects.filter(status__in=LIVE_STATUSES).values_list("status").annotate(count=Count("id")))
    ended = dict(
        Job.objects.filter(finished_at__gte=now - timedelta(seconds=window), status__in=_FINISHED_IN_ORDER)
        .values_list("status")
        .annotate(count=Count("id"))
    )
    due = (
        Job.objects.filter(status__in=WAITING_STATUSES)
        .filter(Q(next_retry_at__isnull=True) | Q(next_retry_at__lte=now))
        .exclude(run_at__gt=now)  # a job that runs later is not waiting before its due time
        .exclude(type__in=disabled_job_types())
        .values_list("queue")
        .annotate(count=Count("id"), since=Min(due_since()))
    )
    due_by_queue = {queue: (count, since) for queue, count, since in due}
    names = sorted({*settings.JOB_QUEUES, settings.HOUSEKEEPING_QUEUE, *due_by_queue})
    depths = queue_depths(names)
    queues = []
    for name in names:
        count, since = due_by_queue.get(name, (0, None))
        queues.append(QueueOverview(
            name=name, broker_depth=depths.get(name), due_jobs=count,
            oldest_due_seconds=round((now - since).total_seconds(), 1) if since else None,
        ))  # fmt: skip
    overview = JobsOverview(
        generated_at=now, queues=queues, live_counts={status.value: live.get(status, 0) for status in LIVE_STATUSES},
        dead_letter_size=Job.objects.dead_letter().count(),
        window_seconds=window, ended_counts={status.value: ended.get(status, 0) for status in _FINISHED_IN_ORDER},
    )  # fmt: skip
    overview.alerts.extend(_alerts(overview))
    return overview


def _alerts(overview: JobsOverview) -> list[Alert]:
    alerts = []
    if any(queue.broker_depth is None for queue in overview.queues):
        alerts.append(Alert("broker_unreachable", "the broker did not answer; queue depths are unknown"))
    dead, dead_threshold = overview.dead_letter_size, settings.JOBS_ALERT_DEAD_JOBS
    if dead_threshold and dead >= dead_threshold:
        alerts.append(Alert("dead_letter_queue", f"{dead} dead job(s) wait in the dead-letter queue "
                                                 f"(alert at {dead_threshold}); see the runbook"))  # fmt: skip
    oldest_limit = settings.JOBS_ALERT_OLDEST_DUE_SECONDS
    for queue in overview.queues:
        if oldest_limit and queue.oldest_due_seconds is not None and queue.oldest_due_seconds > oldest_limit:
            alerts.append(Alert("queue_backlog", f"queue {queue.name!r}: the oldest due job has waited "
                                                 f"{queue.oldest_due_seconds:.0f} s (alert above {oldest_limit} s); "
                                                 "are its workers running and keeping up?"))  # fmt: skip
    rate, floor = overview.success_rate, settings.JOBS_ALERT_SUCCESS_PERCENT / 100
    judged = overview.judged_count
    if rate is not None and judged >= settings.JOBS_ALERT_MIN_ENDED and rate < floor:
        alerts.append(Alert("success_rate", f"{rate:.1%} of the {judged} jobs that ended in the last "
                                            f"{overview.window_seconds} s succeeded (alert below {floor:.0%})"))  # fmt: skip
    return alerts + _worker_alerts(overview)


def _worker_alerts(overview: JobsOverview) -> list[Alert]:
    """Worker trouble: attempts past their lease, processes that cannot reach the database, queues with work
    and no consumer."""
    from jobs.ops.workerprobe import queues_consumed

    alerts = _lease_alerts()
    try:
        failures = worker_database_failures()
    except RedisError:
        failures = {}
    if failures:
        alerts.append(Alert("workers_database_unreachable", f"{describe_database_failures(failures)}; their "
                                                            "messages wait and are retried"))  # fmt: skip
    limit = settings.JOBS_ALERT_UNCONSUMED_SECONDS
    waiting = [queue for queue in overview.queues
               if limit and queue.broker_depth is not None and (queue.oldest_due_seconds or 0) > limit]  # fmt: skip
    # Asking the workers costs a broadcast and a wait, so only when some queue's work waits.
    consumed = queues_consumed() if waiting else None
    for queue in waiting if consumed is not None else []:
        if consumed is not None and queue.name not in consumed:
            alerts.append(Alert("queue_unconsumed", f"queue {queue.name!r} has {queue.due_jobs} due job(s), the "
                                                    f"oldest waiting {queue.oldest_due_seconds:.0f} s, and no worker "
                                                    "consumes it: start its worker"))  # fmt: skip
    return alerts


def jobs_past_their_lease(*, overdue_seconds: float = 0, now: datetime | None = None) -> QuerySet[Job]:
    """Running jobs whose lease ran out more than ``overdue_seconds`` ago (through the running-jobs index)."""
    now = now or timezone.now()
    return Job.objects.filter(status=Job.Status.RUNNING, lease_expires_at__lt=now - timedelta(seconds=overdue_seconds))


def _lease_alerts() -> list[Alert]:
    """Running attempts whose lease ran out longer than ``JOBS_ALERT_LEASE_OVERDUE_SECONDS`` ago.

    Their worker stopped renewing (killed, or cannot reach the database) and the reaper, which should
    have rescued them within ``JOBS_REAPER_INTERVAL_SECONDS``, did not: is the housekeeping worker or
    beat down? Read through the partial index on running jobs (a handful of rows, whatever the table).
    """
    overdue = settings.JOBS_ALERT_LEASE_OVERDUE_SECONDS
    if not overdue:
        return []
    now = timezone.now()
    found = jobs_past_their_lease(overdue_seconds=overdue, now=now).aggregate(
        count=Count("id"), oldest=Min("lease_expires_at")
    )
    if not found["count"]:
        return []
    late = (now - found["oldest"]).total_seconds()
    return [Alert("leases_expired", f"{found['count']} running job(s) are past their lease (the oldest by "
                                    f"{late:.0f} s, alert above {overdue} s) and were not rescued: is the reaper "
                                    "(beat and the housekeeping worker) running?")]  # fmt: skip


# ---------------------------------------------------------------------------
# Dead-letter queue summary (for digests a domain app mails, via jobs.public)
# ---------------------------------------------------------------------------


def dead_letter_groups(*, limit: int) -> list[dict[str, Any]]:
    """The dead-letter queue by cause, largest first: ``type``, ``error_code``, ``count``, ``last`` (when the
    newest died) and an example ``message``, for its page and the dashboard."""
    return list(
        Job.objects.dead_letter()
        .values("type", "error_code")
        .annotate(count=Count("id"), last=Max("finished_at"), message=Max("error_message"))
        .order_by("-count", "type", "error_code")[:limit]
    )


@dataclass(frozen=True)
class ScheduleGlance:
    """A beat schedule at a glance: when it fires next, and what its last firing made."""

    # The job type it enqueues; None for a platform task (relay, reaper...), which makes no job.
    job_type: str | None
    next_run_at: datetime | None
    # The newest job of ``job_type`` the schedule enqueued, if any is still kept.
    last_job: Job | None
    # The correlation id its jobs (and the jobs those enqueued) carry; "" for a platform task.
    correlation_id: str


def schedule_glance(*, task: Any, now: datetime | None = None) -> ScheduleGlance:
    """``task`` (a django-celery-beat ``PeriodicTask``) at a glance. Its jobs are found through the correlation
    id ``jobs.delivery.schedules.schedule_trigger`` gives them (one index lookup)."""
    now = now or timezone.now()
    next_run_at = None
    if task.enabled and not (task.one_off and task.total_run_count):
        try:
            remaining = task.schedule.remaining_estimate(task.last_run_at or task.start_time or now)
        except (AttributeError, ValueError, TypeError):  # a schedule kind celery cannot estimate
            remaining = None
        if remaining is not None:
            next_run_at = max(now, now + remaining)
    if task.task != RUN_SCHEDULE_TASK:
        return ScheduleGlance(job_type=None, next_run_at=next_run_at, last_job=None, correlation_id="")
    try:
        kwargs = json.loads(task.kwargs or "{}")
    except ValueError:
        kwargs = {}
    job_type = kwargs.get("job_type")
    correlation_id = schedule_correlation_id(str(kwargs.get("schedule") or task.name))
    jobs = Job.objects.filter(correlation_id=correlation_id)
    last_job = (jobs.filter(type=job_type) if job_type else jobs).order_by("-created_at").first()
    return ScheduleGlance(job_type=job_type, next_run_at=next_run_at, last_job=last_job, correlation_id=correlation_id)


@dataclass(frozen=True)
class DeadLetterSummary:
    # Dead jobs not replayed yet (the dead-letter queue), in all.
    size: int
    # The same, per job type, largest first.
    by_type: dict[str, int]
    # When the longest-waiting of them died; None when the queue is empty.
    oldest_finished_at: datetime | None


def dead_letter_summary() -> DeadLetterSummary:
    """The dead-letter queue's size, its size per job type, and when its oldest job died."""
    rows = list(
        Job.objects.dead_letter()
        .values_list("type")
        .annotate(count=Count("id"), oldest=Min("finished_at"))
        .order_by("-count", "type")
    )
    oldest = [row[2] for row in rows if row[2] is not None]
    return DeadLetterSummary(
        size=sum(row[1] for row in rows),
        by_type={job_type: count for job_type, count, _oldest in rows},
        oldest_finished_at=min(oldest) if oldest else None,
    )
