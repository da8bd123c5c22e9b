"""Workers survive database faults: a dropped connection costs a reconnect, not every task until a restart.

Celery workers keep their database connection between tasks (``CELERY_DB_REUSE_MAX``), and
Django's per-request connection hygiene (``close_old_connections`` with health checks) never
runs in a worker. After ``pg_terminate_backend`` or a database failover the worker would keep
its dead connection and fail every task with "the connection is closed". Here:

- at a web request's start, a kept connection whose socket is quiet skips Django's SELECT 1 health
  check (a connection the server ended has its goodbye waiting to be read, and is still checked);
- before each task (``task_prerun``) connections that saw an error, outlived ``CONN_MAX_AGE``
  or fail their health check are dropped, so the task opens a fresh one;
- ``run_with_fresh_connection(fn)`` runs a write and, when it fails on a broken connection,
  drops the connection and runs it once more (the outcome of a job whose body finished is
  worth a reconnect);
- ``execute_or_requeue`` turns a database error before a job's body started (the claim) into
  a retry of the message with a short back-off, instead of a task failure that consumes it;
- pool processes that cannot reach the database say so in Redis, where ``/healthz``, the
  worker probe and the operations overview read it, and take every report they wrote back as soon
  as they next open a database connection (``connection_created``), whichever thread opens it;
- a statement a connection keeps prepared (settings: DATABASE_PREPARED_STATEMENTS) that a migration
  made stale ("cached plan must not change result type", after a column changed type) is dropped
  and, outside a transaction, run once more, instead of failing on that connection until it closes.
"""

from __future__ import annotations

import json
import logging
import os
import select
import socket
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from celery.signals import task_prerun
from django.conf import settings
from django.core.signals import request_started
from django.db import (
    DatabaseError,
    InterfaceError,
    NotSupportedError,
    OperationalError,
    close_old_connections,
    connections,
)
from django.db.backends.signals import connection_created
from redis import RedisError

logger = logging.getLogger("jobs.dbresilience")

T = TypeVar("T")

# Redis hash: "<worker hostname>:<pid>" -> {"at": unix time, "error": "..."} while that pool
# process cannot reach the database.
WORKER_DB_ERRORS_KEY = "jobs:workers:database-errors"
# Connection-level failures: the server went away, the socket broke. Not constraint violations.
CONNECTION_ERRORS = (OperationalError, InterfaceError)

# A message whose claim keeps failing is tried again for days (back-off capped at 30 s), never dropped.
REQUEUE_MAX_RETRIES = 10_000
REQUEUE_MAX_DELAY_SECONDS = 30

# request_started's receiver that skips the health check of a quiet connection (after close_old_connections).
QUIET_CHECK_UID = "jobs.dbresilience.skip_health_check_when_quiet"

# The fields this process reported a failure under, until it reaches the database again: a task
# reports under its node name, a writer thread under the host name, so one process may hold two.
_reported_labels: set[str] = set()
_reported_in_pid: int | None = None  # a forked child inherits the set, not the reports
_reported_lock = threading.Lock()


def _process_label(hostname: str | None = None) -> str:
    if not hostname:
        from celery import current_task

        hostname = getattr(getattr(current_task, "request", None), "hostname", None) or socket.gethostname()
    return f"{hostname}:{os.getpid()}"


def drop_unusable_connections(sender: Any = None, **_signal_kwargs: Any) -> None:
    """Close every connection that saw an error, is past its age, or fails a health check.

    Connected to ``task_prerun``. With ``CONN_HEALTH_CHECKS`` on (the default here) Django
    checks the connection lazily at its first use in the task; otherwise it is checked now.
    An eager task (``.apply()``, tests) runs inside its caller's connection and transaction,
    which are not ours to close.
    """
    if getattr(getattr(sender, "request", None), "is_eager", False):
        return
    if any(conn.in_atomic_block for conn in connections.all(initialized_only=True)):
        return
    close_old_connections()
    for conn in connections.all(initialized_only=True):
        if getattr(sender, "reconnects_on_its_own", False):
            # A job task's first statement (the claim) retries once on a fresh connection when the
            # connection is broken (run_with_fresh_connection): Django's health check, a SELECT 1
            # round trip before every task, would only find out the same thing earlier.
            conn.health_check_done = True  # type: ignore[attr-defined]  # Django >= 4.1, not in the stubs
        elif conn.connection is not None and not conn.settings_dict.get("CONN_HEALTH_CHECKS") and not conn.is_usable():
            conn.close()
    if _reported_by_this_process():
        _clear_failure_if_reachable()


def skip_health_check_when_quiet(**_signal_kwargs: Any) -> None:
    """At a web request's start: count the health check as done for a kept PostgreSQL connection whose
    socket has nothing to read, saving its SELECT 1 round trip; otherwise the check stays due.

    Connected to ``request_started`` after Django's ``close_old_connections`` (which makes the check due
    again for the request). A server that ends a connection (``pg_terminate_backend``, a restart, an
    idle timeout) sends its FATAL message and closes the socket, which makes the socket readable: such
    a connection still gets Django's SELECT 1, fails it and is replaced before the request's first
    query, as before. An idle, healthy connection has nothing to read.
    """
    for conn in connections.all(initialized_only=True):
        if (
            conn.vendor == "postgresql"
            and conn.connection is not None
            and conn.health_check_enabled  # type: ignore[attr-defined]  # Django >= 4.1, not in the stubs
            and not conn.health_check_done  # type: ignore[attr-defined]
            and not conn.in_atomic_block
            and _socket_quiet(conn.connection)
        ):
            conn.health_check_done = True  # type: ignore[attr-defined]


def _socket_quiet(raw: Any) -> bool:
    """Whether a psycopg connection is open, idle, and has nothing waiting on its socket."""
    import psycopg

    if raw.closed or raw.broken or raw.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        return False
    try:
        poller = select.poll()
        poller.register(raw.fileno(), select.POLLIN | select.POLLPRI)
        return not poller.poll(0)
    except (OSError, ValueError, psycopg.Error):
        return False


def _drop_connections() -> None:
    for conn in connections.all(initialized_only=True):
        try:
            conn.close()
        except DatabaseError:
            # Closing a connection the server already dropped may raise; it is gone either way.
            conn.connection = None


def run_with_fresh_connection(fn: Callable[[], T]) -> T:
    """Run ``fn``; if it fails on a broken connection, drop the connection and run it once more.

    Only outside a transaction: inside one, the work before the failure is lost with the
    connection, so the error is raised for the transaction's owner to handle.
    """
    try:
        return fn()
    except CONNECTION_ERRORS as error:
        if any(conn.in_atomic_block for conn in connections.all(initialized_only=True)):
            raise
        logger.warning("database write failed (%s: %s); retrying once on a fresh connection",
                       error.__class__.__name__, error)  # fmt: skip
        _drop_connections()
    try:
        return fn()
    except CONNECTION_ERRORS as error:
        report_database_failure(error)
        raise


def requeue_delay(retries: int) -> float:
    """Seconds before a message whose claim failed on a database error is tried again (1, 2, 4 ... 30)."""
    return float(min(REQUEUE_MAX_DELAY_SECONDS, 2 ** min(retries, 10)))


def execute_or_requeue(task: Any, run: Callable[[], T]) -> T:
    """Run a job message; a database error before its body started sends the message again later.

    The runner records every outcome of a job's body itself, so a DatabaseError that escapes
    ``run`` comes from the steps before the body (the switch check, the claim): nothing ran,
    and consuming the message as a failure would leave the job waiting for the relay's
    republish (minutes). ``task.retry`` publishes the same message (same job, same attempt)
    with a back-off; the attempt guard still lets one delivery run.
    """
    try:
        return run_with_fresh_connection(run)
    except CONNECTION_ERRORS as error:
        retries = getattr(task.request, "retries", 0) or 0
        delay = requeue_delay(retries)
        report_database_failure(error, hostname=getattr(task.request, "hostname", None))
        logger.error("database unreachable before the job started (%s: %s); message retried in %.0f s",
                     error.__class__.__name__, error, delay)  # fmt: skip
        raise task.retry(exc=error, countdown=delay, max_retries=REQUEUE_MAX_RETRIES) from error


def report_database_failure(error: BaseException, *, hostname: str | None = None) -> None:
    """Say in Redis that this process cannot reach the database (best effort)."""
    global _reported_in_pid
    from jobs.foundation.redis import get_redis

    label = _process_label(hostname)
    value = json.dumps({"at": time.time(), "error": f"{error.__class__.__name__}: {str(error)[:300]}"})
    try:
        get_redis().hset(WORKER_DB_ERRORS_KEY, label, value)
    except RedisError:  # Redis down too: nothing to tell it with
        logger.warning("could not record the database failure in Redis", exc_info=True)
        return
    with _reported_lock:
        if _reported_in_pid != os.getpid():
            _reported_labels.clear()
            _reported_in_pid = os.getpid()
        _reported_labels.add(label)


def _reported_by_this_process() -> set[str]:
    with _reported_lock:
        return set(_reported_labels) if _reported_in_pid == os.getpid() else set()


def clear_database_failure_reports() -> int:
    """Take back every report this process wrote (best effort); how many it removed from Redis."""
    from jobs.foundation.redis import get_redis

    labels = _reported_by_this_process()
    if not labels:
        return 0
    try:
        removed = int(get_redis().hdel(WORKER_DB_ERRORS_KEY, *labels))
    except RedisError:  # the next connection (or task) tries again
        return 0
    with _reported_lock:
        _reported_labels.difference_update(labels)
    logger.info("database reachable again: cleared %d report(s) of this process", len(labels))
    return removed


def clear_reports_on_new_connection(sender: Any = None, **_signal_kwargs: Any) -> None:
    """``connection_created``: this process reached the database again, so its reports are stale."""
    if _reported_by_this_process():
        clear_database_failure_reports()


def _clear_failure_if_reachable() -> None:
    try:
        connections["default"].ensure_connection()
        if not connections["default"].is_usable():
            return
    except DatabaseError:  # still unreachable: the reports stay
        return
    clear_database_failure_reports()


def worker_database_failures(*, max_age_seconds: float | None = None) -> dict[str, str]:
    """Worker processes that could not reach the database lately: ``{"host:pid": "error"}``.

    Reports older than ``max_age_seconds`` (``JOBS_WORKER_DB_REPORT_SECONDS``) are ignored and
    removed: a process that was killed cannot clear its own.
    """
    from jobs.foundation.redis import get_redis

    if max_age_seconds is None:
        max_age_seconds = float(getattr(settings, "JOBS_WORKER_DB_REPORT_SECONDS", 120))
    client = get_redis()
    now = time.time()
    failures: dict[str, str] = {}
    stale: list[bytes | str] = []
    for field, raw in client.hgetall(WORKER_DB_ERRORS_KEY).items():
        report = json.loads(raw)
        if now - report["at"] > max_age_seconds:
            stale.append(field)
        else:
            failures[field.decode() if isinstance(field, bytes) else str(field)] = report["error"]
    if stale:
        client.hdel(WORKER_DB_ERRORS_KEY, *stale)
    return failures


def describe_database_failures(failures: dict[str, str]) -> str | None:
    """One line for an operator: how many processes cannot reach the database, and one example."""
    if not failures:
        return None
    process, error = min(failures.items())
    return f"{len(failures)} worker process(es) cannot reach the database, e.g. {process}: {error}"


# PostgreSQL's answer to a prepared statement whose result columns changed type since it was prepared.
STALE_PLAN_SQLSTATE = "0A000"
STALE_PLAN_MESSAGE = "cached plan must not change result type"


def _is_stale_plan(error: BaseException) -> bool:
    cause = error.__cause__
    return getattr(cause, "sqlstate", None) == STALE_PLAN_SQLSTATE and STALE_PLAN_MESSAGE in str(cause)


def replan_stale_prepared_statements(execute: Callable[..., Any], sql: str, params: Any, many: bool,
                                     context: dict[str, Any]) -> Any:  # fmt: skip
    """A connection's execute wrapper: survive a migration that changed a column's type under a prepared statement.

    PostgreSQL refuses to run such a statement again, and psycopg forgets its prepared statements only on a
    ROLLBACK: in autocommit (a web request's reads, most of a worker's statements) the connection would fail
    that query until it closes. Here the connection's prepared statements are dropped (``DEALLOCATE ALL``,
    which psycopg sees and forgets its own) and, outside a transaction, the statement runs once more: it
    failed while being planned, before doing anything, so running it again is safe. Inside a transaction
    the error stands (the transaction is aborted; its rollback drops them too).
    """
    try:
        return execute(sql, params, many, context)
    except NotSupportedError as error:
        db = context["connection"]
        if not _is_stale_plan(error) or db.connection is None:
            raise
        if db.in_atomic_block or not db.get_autocommit():
            raise
        logger.warning("a prepared statement was stale after a schema change: prepared statements dropped, "
                       "statement run again")  # fmt: skip
        with db.wrap_database_errors:  # a failure here reads as Django's, like the statement's own
            db.connection.execute("DEALLOCATE ALL")
        return execute(sql, params, many, context)


def _wrap_prepared_statements(sender: Any, connection: Any, **_signal_kwargs: Any) -> None:
    # Only where psycopg prepares (server-side binding with a threshold); once per connection wrapper.
    options = connection.settings_dict.get("OPTIONS", {})
    if connection.vendor != "postgresql" or options.get("prepare_threshold") is None:
        return
    if replan_stale_prepared_statements not in connection.execute_wrappers:
        connection.execute_wrappers.append(replan_stale_prepared_statements)


def install() -> None:
    """Connect the hooks (called once from the jobs app's ``ready``)."""
    task_prerun.connect(
        drop_unusable_connections, dispatch_uid="jobs.foundation.dbresilience.drop_unusable_connections"
    )
    request_started.connect(skip_health_check_when_quiet, dispatch_uid=QUIET_CHECK_UID)
    connection_created.connect(
        _wrap_prepared_statements, dispatch_uid="jobs.foundation.dbresilience.prepared_statements"
    )
    connection_created.connect(
        clear_reports_on_new_connection, dispatch_uid="jobs.foundation.dbresilience.clear_reports_on_new_connection"
    )
