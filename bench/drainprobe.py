"""Worker-side probe for bench jobs_throughput: the same timing and counting in every variant.

Loaded into each benchmark worker (``--include bench.drainprobe``, or imported by
``bench.stockapp``). Per task it sends one pipelined Redis round trip (``INCR`` of the done
counter and ``SET`` of the last finish time), so every variant pays the same ~0.1 ms for
being measured; each pool process also records its first task's start once (``SET NX``).
``task_postrun`` fires after Celery stored the result (when a variant stores one) and after
a tracked job wrote its outcome, so the last finish time covers all of a task's work but
the acknowledgement.

With ``BENCH_COUNT_SQL=1`` the probe also counts the SQL statements each pool process
sends (a Django execute wrapper) and adds them to a Redis hash per statement kind.
"""

from __future__ import annotations

import os
import re
import time
from collections import Counter
from typing import Any

import redis
from celery import signals

PREFIX = "bench:drain:"
FIRST_KEY, DONE_KEY, LAST_KEY, SQL_KEY = (PREFIX + name for name in ("first", "done", "last", "sql"))

_client: redis.Redis | None = None
_started_here = False
_sql: Counter[str] = Counter()
_TABLE = re.compile(r'\b(?:FROM|INTO|UPDATE)\s+"?(\w+)', re.IGNORECASE)


def _redis() -> redis.Redis:
    global _client
    if _client is None:
        _client = redis.Redis.from_url(os.environ["BENCH_PROBE_REDIS_URL"])
    return _client


def statement_kind(sql: str) -> str:
    """``UPDATE jobs_job``, ``WITH jobs_job``: the verb and the first table a statement names."""
    verb = sql.lstrip().split(None, 1)[0].upper() if sql.strip() else "?"
    table = _TABLE.search(sql)
    return f"{verb} {table.group(1)}" if table else verb


def _count_sql(execute: Any, sql: str, params: Any, many: bool, context: dict[str, Any]) -> Any:
    _sql[statement_kind(sql)] += 1
    return execute(sql, params, many, context)


@signals.worker_process_init.connect  # type: ignore[untyped-decorator]  # celery has no types
def _install_sql_counter(**kwargs: Any) -> None:
    if os.environ.get("BENCH_COUNT_SQL") != "1":
        return
    from django.db import connections
    from django.db.backends.signals import connection_created

    for alias in connections:
        connections[alias].execute_wrappers.append(_count_sql)
    # Connections opened later by other threads (the success writer's) are counted too; they
    # report with the process' next finished task.
    connection_created.connect(_count_on_new_connection, weak=False)


def _count_on_new_connection(sender: Any, connection: Any, **kwargs: Any) -> None:
    if _count_sql not in connection.execute_wrappers:
        connection.execute_wrappers.append(_count_sql)


@signals.task_prerun.connect  # type: ignore[untyped-decorator]  # celery has no types
def _first_start(**kwargs: Any) -> None:
    global _started_here
    if not _started_here:
        _started_here = True
        # Each pool process once; the earliest wins.
        _redis().set(FIRST_KEY, repr(time.time()), nx=True)


@signals.task_postrun.connect  # type: ignore[untyped-decorator]  # celery has no types
def _finished(**kwargs: Any) -> None:
    pipeline = _redis().pipeline(transaction=False)
    pipeline.incr(DONE_KEY)
    pipeline.set(LAST_KEY, repr(time.time()))
    if _sql:
        for kind, count in _sql.items():
            pipeline.hincrby(SQL_KEY, kind, count)
        _sql.clear()
    pipeline.execute()
