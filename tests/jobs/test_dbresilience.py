"""jobs.foundation.dbresilience in one process: a broken connection is replaced, never inside a transaction."""

import json
import time

import pytest
from django.core.signals import request_finished, request_started
from django.db import (
    InterfaceError,
    NotSupportedError,
    OperationalError,
    close_old_connections,
    connection,
    transaction,
)

from jobs.foundation.dbresilience import (
    QUIET_CHECK_UID,
    WORKER_DB_ERRORS_KEY,
    drop_unusable_connections,
    report_database_failure,
    run_with_fresh_connection,
    skip_health_check_when_quiet,
    worker_database_failures,
)
from jobs.models import Job


@pytest.fixture
def postgres(transactional_db):
    if connection.vendor != "postgresql":
        pytest.skip(
            "SQLite is a file opened in this process: no server can drop or terminate its connection (set DATABASE_URL)"
        )
    yield
    connection.close()  # the test database's flush needs a live connection


def other_session():
    """A second connection to the test database: another process (an operator, a migration)."""
    import psycopg

    cfg = connection.settings_dict
    return psycopg.connect(host=cfg.get("HOST") or "127.0.0.1", port=cfg.get("PORT") or 5432, user=cfg.get("USER"),
                           password=cfg.get("PASSWORD") or None, dbname=cfg["NAME"], autocommit=True)  # fmt: skip


def drop_our_connection_on_the_server() -> None:
    """What pg_terminate_backend or a failover does to a kept connection."""
    connection.close()
    connection.ensure_connection()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    with other_session() as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [pid])


def test_a_write_on_a_dropped_connection_is_retried_once_on_a_fresh_one(postgres):
    drop_our_connection_on_the_server()
    with pytest.raises((OperationalError, InterfaceError)):
        Job.objects.count()  # what every task hit before: the kept connection is dead

    drop_our_connection_on_the_server()
    assert run_with_fresh_connection(lambda: Job.objects.create(type="tests.noop", queue="default").id)
    assert Job.objects.count() == 1


def test_inside_a_transaction_the_error_is_the_callers(postgres):
    with pytest.raises((OperationalError, InterfaceError)), transaction.atomic():
        drop_our_connection_on_the_server()
        # Reconnecting here would silently lose the transaction's earlier work.
        run_with_fresh_connection(lambda: Job.objects.count())


def test_before_a_task_a_dropped_connection_is_replaced(postgres):
    drop_our_connection_on_the_server()

    drop_unusable_connections()

    assert Job.objects.count() == 0  # the health check found it dead; the query ran on a new one


def test_an_eager_task_leaves_its_callers_connection_alone(db):
    class EagerTask:
        class request:
            is_eager = True

    with transaction.atomic():
        Job.objects.create(type="tests.noop", queue="default")
        drop_unusable_connections(sender=EagerTask())
        assert Job.objects.count() == 1  # same connection, same transaction


def test_before_a_job_task_no_health_check_is_due_and_its_claim_replaces_a_dropped_connection(postgres, redis_client):
    from types import SimpleNamespace

    from jobs.foundation.dbresilience import execute_or_requeue
    from jobs.worker.runner import execute
    from tests.jobs import jobtypes

    job = Job.objects.create(id="after-a-drop", type="tests.noop", queue="default")
    task = jobtypes.noop.task
    assert task.reconnects_on_its_own is True
    drop_our_connection_on_the_server()

    drop_unusable_connections(sender=task)
    # No SELECT 1 round trip before the job: the health check counts as done.
    assert connection.health_check_done is True

    request = SimpleNamespace(id="after-a-drop.1", hostname="test@host", retries=0)
    spec = jobtypes.noop.job_type
    summary = execute_or_requeue(
        SimpleNamespace(request=request),
        lambda: execute(task=SimpleNamespace(request=request), spec=spec, job_id=job.id, attempt=1, schema_version=1),
    )

    # The claim met the dead connection, retried once on a fresh one, and the job ran.
    assert summary["outcome"] == "succeeded"
    assert Job.objects.get(id=job.id).status == Job.Status.SUCCEEDED


def test_before_any_other_task_the_health_check_stays_due(postgres):
    class PlainTask:
        class request:
            is_eager = False

    connection.ensure_connection()
    drop_unusable_connections(sender=PlainTask())

    assert connection.health_check_done is False


# ---------------------------------------------------------------------------
# Web requests: Django's per-request health check (SELECT 1) only where the socket says something happened
# ---------------------------------------------------------------------------


def through_wsgi(method: str, path: str, **extra) -> int:
    """One request through Django's real WSGI handler, whose request_started runs close_old_connections (the
    test client leaves that out); the response's status code."""
    import json

    from django.core.handlers.wsgi import WSGIHandler
    from django.test import RequestFactory

    factory = RequestFactory()
    if method == "POST":
        request = factory.post(path, data=json.dumps(extra.pop("body")), content_type="application/json", **extra)
    else:
        request = factory.get(path, **extra)
    statuses: list[str] = []
    response = WSGIHandler()(request.environ, lambda status, headers, exc_info=None: statuses.append(status))
    b"".join(response)
    response.close()  # request_finished, as a server does after the body
    return int(statuses[0].split()[0])


@pytest.fixture
def health_checks(postgres, monkeypatch):
    """Counts Django's health-check round trips (is_usable: SELECT 1) on the default connection."""
    assert connection.settings_dict["CONN_HEALTH_CHECKS"] and connection.settings_dict["CONN_MAX_AGE"]
    # The order a server's requests have: Django's close_old_connections (connected when django.db is imported)
    # makes the check due, then the jobs app's receiver (connected in ready()) may skip it. The test client
    # disconnects and reconnects close_old_connections around each of its requests, which moves it last.
    request_started.disconnect(close_old_connections)
    request_started.disconnect(dispatch_uid=QUIET_CHECK_UID)
    request_started.connect(close_old_connections)
    request_started.connect(skip_health_check_when_quiet, dispatch_uid=QUIET_CHECK_UID)
    request_finished.connect(close_old_connections)
    calls: list[bool] = []
    real = connection.is_usable

    def counted() -> bool:
        calls.append(real())
        return calls[-1]

    monkeypatch.setattr(connection, "is_usable", counted)
    return calls


def test_a_request_on_a_quiet_kept_connection_sends_no_health_check(health_checks, alice, redis_client):
    from tests.jobs.test_api import bearer

    job = Job.objects.create(type="jobs.canary", owner=alice)
    headers = bearer(alice)
    assert through_wsgi("GET", f"/api/jobs/{job.id}", **headers) == 200
    pid = connection.connection.info.backend_pid
    health_checks.clear()

    assert through_wsgi("GET", f"/api/jobs/{job.id}", **headers) == 200

    assert health_checks == []  # before: one SELECT 1 per request
    assert connection.connection.info.backend_pid == pid  # the kept connection served it


def test_the_first_enqueue_after_the_server_ended_the_connection_succeeds_on_a_new_one(
    health_checks, staff, redis_client
):
    import time

    from jobs.foundation.dbresilience import _socket_quiet
    from tests.jobs.test_api import bearer

    headers = bearer(staff)
    assert through_wsgi("GET", "/api/jobs", **headers) == 200
    pid = connection.connection.info.backend_pid
    cfg = connection.settings_dict
    import psycopg

    with psycopg.connect(host=cfg.get("HOST") or "127.0.0.1", port=cfg.get("PORT") or 5432, user=cfg.get("USER"),
                         password=cfg.get("PASSWORD") or None, dbname=cfg["NAME"], autocommit=True) as admin:  # fmt: skip
        admin.execute("SELECT pg_terminate_backend(%s)", [pid])
    deadline = time.monotonic() + 10
    while _socket_quiet(connection.connection) and time.monotonic() < deadline:
        time.sleep(0.01)  # the server's goodbye is on its way
    health_checks.clear()

    status = through_wsgi("POST", "/api/jobs", body={"type": "jobs.canary", "payload": {}},
                          HTTP_IDEMPOTENCY_KEY="after-terminate", **headers)  # fmt: skip

    assert status == 202
    assert health_checks == [False]  # the socket spoke: checked, found dead, replaced before the first query
    assert connection.connection.info.backend_pid != pid
    assert Job.objects.filter(idempotency_key=f"api:{staff.pk}:after-terminate").count() == 1


@pytest.fixture
def prepared_table(postgres, parameter_binding, settings):
    """A table whose column ``c`` another session can change the type of; ``read()`` selects it through Django."""
    with other_session() as admin:
        admin.execute("DROP TABLE IF EXISTS jobs_test_replan")
        admin.execute("CREATE TABLE jobs_test_replan (id integer PRIMARY KEY, c integer)")
        admin.execute("INSERT INTO jobs_test_replan VALUES (1, 7)")

    def read():
        with connection.cursor() as cursor:
            cursor.execute("SELECT id, c FROM jobs_test_replan WHERE id = %s", [1])
            return cursor.fetchone()

    for _ in range(settings.PREPARED_STATEMENT_THRESHOLD + 1):
        assert read() == (1, 7)  # prepared by now on server-side binding
    with other_session() as admin:
        admin.execute("ALTER TABLE jobs_test_replan ALTER COLUMN c TYPE bigint")  # a migration elsewhere
    yield read
    connection.close()
    with other_session() as admin:
        admin.execute("DROP TABLE jobs_test_replan")


def test_a_statement_a_migration_made_stale_runs_again_outside_a_transaction(prepared_table):
    # Before: "cached plan must not change result type" on every run of it until the connection closed.
    assert [prepared_table() for _ in range(3)] == [(1, 7)] * 3


def test_inside_a_transaction_a_stale_statement_fails_and_the_rollback_clears_it(prepared_table, parameter_binding):
    # A transaction that saw an error is aborted: nothing may be run again inside it. Its rollback drops the
    # prepared statements, so the next transaction plans afresh.
    if parameter_binding == "server-side":
        with pytest.raises(NotSupportedError, match="cached plan must not change result type"), transaction.atomic():
            prepared_table()
    with transaction.atomic():
        assert prepared_table() == (1, 7)


def test_a_process_takes_back_every_report_it_wrote_as_soon_as_it_next_opens_a_connection(
    transactional_db, redis_client
):
    # Another process's report is not this process's to clear.
    redis_client.hset(WORKER_DB_ERRORS_KEY, "other@host:1", json.dumps({"at": time.time(), "error": "x"}))
    # A task reports under its node name, a writer thread of the same process under the host name.
    report_database_failure(OperationalError("server closed the connection"), hostname="default@host")
    report_database_failure(OperationalError("connection refused"))
    assert len(worker_database_failures()) == 3

    connection.close()
    connection.ensure_connection()  # the database is reachable again: a new connection opens

    assert set(worker_database_failures()) == {"other@host:1"}
