"""Job type switches (feature flags): is a type switched on? Switching is an operator action."""

from __future__ import annotations

import time

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.backends.base.base import BaseDatabaseWrapper

from jobs.foundation.rowreader import column_name, table_name
from jobs.models import JobTypeSwitch

# How long a "type is switched on" answer is trusted inside a worker (seconds).
SWITCH_CACHE_SECONDS = 5.0


def job_type_is_enabled(*, job_type: str) -> bool:
    if job_type in getattr(settings, "JOBS_DISABLED_TYPES", ()):
        return False
    # Read on every enqueue, never cached here (an operator's switch-off acts at once): hand-written SQL,
    # which costs a fraction of the ORM's per-call query building (jobs.foundation.rowreader).
    db = connections[DEFAULT_DB_ALIAS]
    with db.cursor() as cursor:
        cursor.execute(switched_off_sql(db), [job_type])
        return cursor.fetchone() is None


def switched_off_sql(db: BaseDatabaseWrapper) -> str:
    """A query with one row when the type (its one parameter) is switched off in the database, none otherwise."""
    table = table_name(db, JobTypeSwitch)
    return (f"SELECT 1 FROM {table} WHERE {table}.{column_name(db, JobTypeSwitch, 'type')} = %s "  # noqa: S608
            f"AND NOT {table}.{column_name(db, JobTypeSwitch, 'enabled')} LIMIT 1")  # fmt: skip


def disabled_job_types() -> set[str]:
    return set(getattr(settings, "JOBS_DISABLED_TYPES", ())) | set(
        JobTypeSwitch.objects.filter(enabled=False).values_list("type", flat=True)
    )


_switch_cache: dict[str, float] = {}


def job_type_is_enabled_cached(job_type: str) -> bool:
    """``job_type_is_enabled`` for a worker's hot path.

    Only "on" is cached (switching off takes effect within SWITCH_CACHE_SECONDS); "off"
    is always re-read, so a job is never shelved on a stale answer.
    """
    now = time.monotonic()
    cached_at = _switch_cache.get(job_type)
    if cached_at is not None and now - cached_at < SWITCH_CACHE_SECONDS:
        return True
    enabled = job_type_is_enabled(job_type=job_type)
    if enabled:
        _switch_cache[job_type] = now
    else:
        _switch_cache.pop(job_type, None)
    return enabled
