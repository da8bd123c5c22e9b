"""jobs.dbresilience in one process: a broken connection is replaced, never inside a transaction."""

import pytest
from django.db import InterfaceError, OperationalError, connection, transaction

from jobs.dbresilience import drop_unusable_connections, run_with_fresh_connection
from jobs.models import Job


@pytest.fixture
def postgres(transactional_db):
    if connection.vendor != "postgresql":
        pytest.skip("a connection dropped by the server is a PostgreSQL drill (set DATABASE_URL)")
    yield
    connection.close()  # the test database's flush needs a live connection


def drop_our_connection_on_the_server() -> None:
    """What pg_terminate_backend or a failover does to a kept connection."""
    connection.close()
    connection.ensure_connection()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    import psycopg

    cfg = connection.settings_dict
    with psycopg.connect(host=cfg.get("HOST") or "127.0.0.1", port=cfg.get("PORT") or 5432, user=cfg.get("USER"),
                         password=cfg.get("PASSWORD") or None, dbname=cfg["NAME"], autocommit=True) as admin:  # fmt: skip
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

    from jobs.dbresilience import execute_or_requeue
    from jobs.runner import execute
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
