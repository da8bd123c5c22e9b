"""Workers survive database faults (real PostgreSQL backends terminated under real worker processes)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from django.db import connection

from jobs.foundation.dbresilience import worker_database_failures
from jobs.models import Job
from jobs.services import job_enqueue
from tests.processes import wait_for

pytestmark = pytest.mark.worker
S = Job.Status


@pytest.fixture(autouse=True)
def _postgres_only(transactional_db):
    if connection.vendor != "postgresql":
        pytest.skip("SQLite has no server backends to terminate: the drill needs PostgreSQL (set DATABASE_URL)")


def terminate_other_backends() -> int:
    """pg_terminate_backend every connection to this test database but our own (never another database's)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return cursor.fetchone()[0]


@contextmanager
def database_refusing_connections() -> Iterator[None]:
    """New connections to the test database are refused (ours stays open) until the block ends.

    PostgreSQL refuses to change this from inside the database itself: the switch is thrown
    from a connection to the maintenance database ``postgres``.
    """
    import psycopg

    cfg = connection.settings_dict
    name = connection.ops.quote_name(cfg["NAME"])
    params = {"host": cfg.get("HOST") or "127.0.0.1", "port": cfg.get("PORT") or 5432, "user": cfg.get("USER"),
              "password": cfg.get("PASSWORD") or None, "dbname": "postgres", "autocommit": True}  # fmt: skip
    with psycopg.connect(**params) as admin:
        admin.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS false")
        try:
            yield
        finally:
            admin.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS true")


def all_succeeded(job_ids: list[str]) -> bool:
    return Job.objects.filter(id__in=job_ids, status=S.SUCCEEDED).count() == len(job_ids)


def test_work_resumes_by_itself_within_seconds_after_the_workers_connections_are_terminated(start_worker):
    start_worker(queues="default", concurrency=2)
    warm = [job_enqueue(job_type="tests.noop").job.id for _ in range(6)]
    wait_for(lambda: all_succeeded(warm), timeout=60, message="the warm-up jobs")

    assert terminate_other_backends() >= 1  # the pool processes' kept connections
    dropped_at = time.monotonic()
    after = [job_enqueue(job_type="tests.noop").job.id for _ in range(20)]

    wait_for(lambda: all_succeeded(after), timeout=30, message="jobs enqueued after the connection drop")
    print(f"20 jobs done {time.monotonic() - dropped_at:.1f} s after the workers' connections were terminated")
    # Nothing failed on the dead connections, and every job ran exactly one attempt.
    assert not Job.objects.exclude(status=S.SUCCEEDED).exists()
    assert set(Job.objects.filter(id__in=after).values_list("attempt", flat=True)) == {1}


def test_a_body_that_finished_after_its_connection_was_terminated_records_its_own_success(start_worker):
    start_worker(queues="default", concurrency=1)
    job = job_enqueue(job_type="jobs.canary", payload={"seconds": 3}).job
    wait_for(lambda: Job.objects.filter(id=job.id, status=S.RUNNING, progress__gte=10).exists(), timeout=60)

    assert terminate_other_backends() >= 1  # mid-body: its progress and outcome writes lose their connection

    done = wait_for(lambda: Job.objects.filter(id=job.id, status=S.SUCCEEDED).first(), timeout=30,
                    message="the job to record its success")  # fmt: skip
    # The first run's own success, not a second run by the reaper.
    assert (done.attempt, done.progress) == (1, 100)
    assert list(done.attempts.values_list("number", "outcome")) == [(1, "succeeded")]


def test_a_claim_that_fails_on_the_database_is_retried_and_reported_not_consumed(start_worker, client):
    start_worker(queues="default", concurrency=1)
    warm = job_enqueue(job_type="tests.noop").job.id
    wait_for(lambda: all_succeeded([warm]), timeout=60, message="the warm-up job")

    with database_refusing_connections():
        terminate_other_backends()
        job = job_enqueue(job_type="tests.noop").job  # our connection still works: the row and its message exist
        # The worker cannot claim it: the database refuses it. It says so, where /healthz reads it.
        failures = wait_for(worker_database_failures, timeout=30, message="the worker to report its database")
        assert any("ALLOW_CONNECTIONS" in error or "not currently accepting" in error for error in failures.values())
        health = client.get("/healthz").json()
        assert health["status"] == "degraded" and "cannot reach the database" in health["checks"]["workers_database"]
        assert Job.objects.get(id=job.id).status == S.QUEUED

    # The database is back: the same message, retried with a back-off, runs the job.
    done = wait_for(lambda: Job.objects.filter(id=job.id, status=S.SUCCEEDED).first(), timeout=40,
                    message="the job to run once the database is back")  # fmt: skip
    assert done.attempt == 1
    wait_for(lambda: not worker_database_failures(), timeout=40, message="the worker to clear its report")
    assert client.get("/healthz").json()["status"] == "ok"
