"""Periodic work declared in code, synchronised into django-celery-beat's tables.

Declare schedules in an app's ``tasks.py`` (loaded at startup); domain apps use the public name::

    from celery.schedules import crontab
    from jobs.public import schedule_declare

    schedule_declare("sync.hourly", crontab(minute=0), job_type="sync.run", payload={"full": True})

The platform's own housekeeping uses ``declare(name, seconds, task="jobs.relay_unpublished")``.

A schedule either enqueues a job (``job_type``) or calls a platform task (``task``).
A job schedule's beat entry calls ``jobs.run_schedule``, which only enqueues: it claims
the schedule's window with a Redis lock first, so two beat processes started by mistake
(or beat plus the HTTP cron endpoint) enqueue once.

Which side wins (``manage.py sync_schedules``, run on every deploy):
- a schedule new in code is created in the database;
- a schedule changed in code is updated, unless an operator edited it in the admin since
  the last sync: then the operator's version stays and the command says so;
- pausing (``enabled``) is always the operator's: sync never re-enables a schedule;
- a schedule removed from code is disabled, not deleted.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from celery.schedules import crontab
from django.db import transaction
from django.utils import timezone

from jobs.foundation import metrics
from jobs.foundation.exceptions import UnknownSchedule

logger = logging.getLogger("jobs.schedules")

RUN_SCHEDULE_TASK = "jobs.run_schedule"
MANAGED_MARK = "Declared in code (jobs.delivery.schedules)."


@dataclass(frozen=True)
class Schedule:
    name: str
    when: crontab | float
    job_type: str | None = None
    task: str | None = None
    payload: dict[str, Any] = field(default_factory=dict)
    description: str = ""

    def __post_init__(self) -> None:
        if (self.job_type is None) == (self.task is None):
            raise ValueError(f"schedule {self.name!r}: give exactly one of job_type= or task=")

    @property
    def beat_task(self) -> str:
        return RUN_SCHEDULE_TASK if self.job_type else (self.task or "")

    @property
    def beat_kwargs(self) -> dict[str, Any]:
        if self.job_type:
            return {
                "schedule": self.name, "job_type": self.job_type, "payload": self.payload,
                "window_seconds": round(self.window_seconds(), 3),
            }  # fmt: skip
        return dict(self.payload)

    def window_seconds(self, *, now: datetime | None = None) -> float:
        """How long one firing 'owns' the schedule: half the gap to the next firing (<= 1 hour)."""
        return window_seconds_for(self.when, now=now)


def window_seconds_for(when: crontab | float, *, now: datetime | None = None) -> float:
    """Half the gap between two firings of ``when`` (a crontab or seconds), between 1 s and 1 hour."""
    if isinstance(when, (int, float)):
        return max(1.0, min(3600.0, float(when) / 2))
    first = _next_fire(when, after=now or timezone.now())
    second = _next_fire(when, after=first + timedelta(seconds=1))
    return max(1.0, min(3600.0, (second - first).total_seconds() / 2))


def _next_fire(when: crontab, *, after: datetime) -> datetime:
    # celery has no types: say what remaining_delta gives.
    start: datetime
    delta: timedelta
    start, delta, _now = when.remaining_delta(after)
    return start + delta


_declared: dict[str, Schedule] = {}


def declare(name: str, when: crontab | float, *, job_type: str | None = None, task: str | None = None,
            payload: dict[str, Any] | None = None, description: str = "") -> Schedule:  # fmt: skip
    """Declare a periodic schedule (see module docstring)."""
    schedule = Schedule(
        name=name, when=when, job_type=job_type, task=task, payload=payload or {}, description=description
    )
    existing = _declared.get(name)
    if existing is not None and existing != schedule:
        raise ValueError(f"schedule {name!r} is declared twice with different definitions")
    _declared[name] = schedule
    return schedule


def declared() -> dict[str, Schedule]:
    return dict(_declared)


def get_declared(name: str) -> Schedule:
    try:
        return _declared[name]
    except KeyError:
        known = ", ".join(sorted(_declared)) or "none"
        raise UnknownSchedule(f"no schedule named {name!r}; declared schedules: {known}") from None


# ---------------------------------------------------------------------------
# Firing: what beat's entry and the HTTP cron endpoint both call
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class TriggerResult:
    schedule: str
    enqueued_job_id: str | None
    skipped_reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        if self.enqueued_job_id:
            return {"schedule": self.schedule, "enqueued": self.enqueued_job_id}
        return {"schedule": self.schedule, "skipped": self.skipped_reason}


def schedule_trigger(
    *,
    name: str,
    job_type: str | None = None,
    payload: dict[str, Any] | None = None,
    window_seconds: float | None = None,
    source: str = "beat",
) -> TriggerResult:
    """Enqueue one job for schedule ``name`` unless this window already did.

    The beat row, as an operator left it, decides: a paused row fires nothing (the HTTP cron
    endpoint honours pauses as beat does), its job type and payload win over the code's, and
    the window is computed from its current frequency (an operator who edits the crontab
    gets a window lock that matches it). Without a row, ``job_type``, ``payload`` and
    ``window_seconds`` as passed, then the code declaration, are used.
    """
    from jobs.coordination.locks import RedisLock
    from jobs.delivery.enqueue import job_enqueue

    row = _beat_row(name)
    if row is not None:
        if not row.enabled:
            logger.info("schedule %s is paused in the admin (%s): not fired", name, source)
            return TriggerResult(schedule=name, enqueued_job_id=None, skipped_reason="paused in the admin")
        kwargs = json.loads(row.kwargs or "{}")
        job_type = kwargs.get("job_type") or job_type
        payload = kwargs.get("payload", payload)
        window_seconds = _row_window_seconds(row) or window_seconds
    schedule = _declared.get(name)
    job_type = job_type or (schedule.job_type if schedule else None)
    if job_type is None:
        raise UnknownSchedule(f"schedule {name!r} is not declared and its beat entry names no job type")
    payload = payload if payload is not None else (schedule.payload if schedule else {})
    window = window_seconds or (schedule.window_seconds() if schedule else 60.0)
    # Held for the whole window on purpose (never released): the lock *is* the record
    # that this window has fired.
    lock = RedisLock(name=f"schedule:{name}", ttl=window)
    claimed = lock.acquire(blocking=False)
    metrics.schedule_window(schedule=name, claimed=claimed)
    if not claimed:
        logger.info("schedule %s fired again within its %.0fs window (%s): skipped", name, window, source)
        return TriggerResult(schedule=name, enqueued_job_id=None, skipped_reason="already fired in this window")
    with transaction.atomic():
        job = job_enqueue(job_type=job_type, payload=payload, correlation_id=schedule_correlation_id(name)).job
    logger.info("schedule %s enqueued job %s (%s)", name, job.id, source)
    return TriggerResult(schedule=name, enqueued_job_id=job.id)


def schedule_correlation_id(name: str) -> str:
    """The correlation id of every job schedule ``name`` enqueues (and of the jobs those enqueue in turn), so the
    admin finds the jobs a schedule made through the correlation id's index."""
    return f"schedule:{name}"[:128]


def _beat_row(name: str) -> Any:
    from django_celery_beat.models import PeriodicTask

    return PeriodicTask.objects.filter(name=name).select_related("interval", "crontab").first()


def _row_window_seconds(row: Any) -> float | None:
    """The window for the row's current frequency (None for schedule kinds other than interval or crontab)."""
    if row.interval_id:
        return window_seconds_for(row.interval.schedule.run_every.total_seconds())
    if row.crontab_id:
        return window_seconds_for(row.crontab.schedule)
    return None


# ---------------------------------------------------------------------------
# Sync into django-celery-beat
# ---------------------------------------------------------------------------


@dataclass
class SyncReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    kept_operator_edits: list[str] = field(default_factory=list)
    disabled_removed: list[str] = field(default_factory=list)


def _digest(data: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _row_state(task: Any) -> dict[str, Any]:
    """The parts of a beat row an operator can edit (pausing aside)."""
    return {
        "task": task.task,
        "kwargs": json.loads(task.kwargs or "{}"),
        "queue": task.queue or None,  # the admin's form may save "" for the code's None: not an edit
        "interval": (task.interval.every, task.interval.period) if task.interval_id else None,
        # As text: a crontab declared with minute=0 is the int 0 in memory and "0" once saved, and
        # comparing the two made every crontab schedule look edited by an operator.
        "crontab": (
            tuple(
                str(getattr(task.crontab, part))
                for part in ("minute", "hour", "day_of_week", "day_of_month", "month_of_year")
            )
            if task.crontab_id
            else None
        ),  # fmt: skip
    }


def _legacy_digest(task: Any) -> str:
    """The digest earlier versions recorded for a crontab declared with numbers (minute=0 kept as 0)."""
    state = _row_state(task)
    if state["crontab"]:
        state["crontab"] = tuple(int(part) if part.isdigit() else part for part in state["crontab"])
    return _digest(state)


def _apply(task: Any, schedule: Schedule) -> None:
    from django_celery_beat.models import CrontabSchedule, IntervalSchedule

    task.task = schedule.beat_task
    task.kwargs = json.dumps(schedule.beat_kwargs, sort_keys=True)
    task.queue = None  # routing comes from the task's own queue
    task.description = f"{MANAGED_MARK} {schedule.description}".strip()
    if isinstance(schedule.when, crontab):
        when = schedule.when
        task.crontab, _ = CrontabSchedule.objects.get_or_create(
            minute=when._orig_minute, hour=when._orig_hour, day_of_week=when._orig_day_of_week,
            day_of_month=when._orig_day_of_month, month_of_year=when._orig_month_of_year,
            timezone=str(timezone.get_current_timezone()),
        )  # fmt: skip
        task.interval = None
    else:
        task.interval, _ = IntervalSchedule.objects.get_or_create(
            every=max(1, int(schedule.when)), period=IntervalSchedule.SECONDS
        )
        task.crontab = None


def schedules_sync(*, dry_run: bool = False, take_code: tuple[str, ...] = ()) -> SyncReport:
    """Bring django-celery-beat's table in line with the declared schedules (see module docstring).

    ``take_code`` names schedules whose operator edits are dropped for the code's definition
    (their pause, if any, stays: pausing is not an edit).
    """
    from django_celery_beat.models import PeriodicTask

    from jobs.models import DeclaredScheduleState

    report = SyncReport()
    with transaction.atomic():
        states = {state.name: state for state in DeclaredScheduleState.objects.select_for_update()}
        for name, schedule in sorted(_declared.items()):
            task = PeriodicTask.objects.filter(name=name).first()
            state = states.get(name)
            if task is None:
                report.created.append(name)
                if not dry_run:
                    task = PeriodicTask(name=name, enabled=True)
                    _apply(task, schedule)
                    task.save()
                    DeclaredScheduleState.objects.update_or_create(
                        name=name,
                        defaults={"code_digest": _digest(_row_state(task)), "row_digest": _digest(_row_state(task))},
                    )
                continue
            current_row = _digest(_row_state(task))
            probe = PeriodicTask(name=name)
            _apply(probe, schedule)
            wanted = _digest(_row_state(probe))
            edited = state is not None and state.row_digest not in (current_row, _legacy_digest(task))
            if edited and name not in take_code:
                # An operator changed it since our last sync: theirs wins until they undo it.
                report.kept_operator_edits.append(name)
                continue
            if current_row == wanted:
                report.unchanged.append(name)
            else:
                report.updated.append(name)
                if not dry_run:
                    _apply(task, schedule)
                    task.save()  # keeps `enabled` as the operator left it
            if not dry_run:
                DeclaredScheduleState.objects.update_or_create(
                    name=name, defaults={"code_digest": wanted, "row_digest": _digest(_row_state(task))}
                )
        for name in sorted(set(states) - set(_declared)):
            task = PeriodicTask.objects.filter(name=name, enabled=True).first()
            if task is not None:
                report.disabled_removed.append(name)
                if not dry_run:
                    task.enabled = False
                    task.description = f"Removed from code; disabled by sync_schedules. {task.description}"
                    task.save()
            if not dry_run:
                DeclaredScheduleState.objects.filter(name=name).delete()
    return report
