"""The claim (queued -> running) and the published stamp commit without waiting for PostgreSQL's
WAL flush; nothing else does.

Both run in autocommit, outside any transaction, which is why these tests use a
transactional database rather than the usual test transaction.
"""

import psycopg
import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from jobs.models import Job
from jobs.services import job_enqueue, job_start_attempt
from tests.jobs.test_runner import deliver
from tests.processes import database_url_for_subprocess

S = Job.Status


def waiting_job(job_id: str) -> Job:
    # A row as job_enqueue leaves it, without publishing: no broker is involved in a claim.
    return Job.objects.create(id=job_id, type="tests.noop", queue="default")


def synchronous_commit() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        return cursor.fetchone()[0]


@pytest.fixture
def postgres_only():
    if connection.vendor != "postgresql":
        pytest.skip("synchronous_commit is PostgreSQL's; other databases claim as before")


@pytest.mark.django_db(transaction=True)
def test_claim_skips_the_flush_wait_for_its_own_commit_only(postgres_only):
    waiting_job("claim-async")
    assert synchronous_commit() == "on"

    with CaptureQueriesContext(connection) as captured:
        claimed = job_start_attempt(job_id="claim-async", attempt=1, worker="w@host", celery_task_id="claim-async.1")

    assert claimed is not None and (claimed.status, claimed.attempt) == (S.RUNNING, 1)
    (claim_sql,) = [query["sql"] for query in captured.captured_queries]
    assert "set_config('synchronous_commit', 'off', true)" in claim_sql
    # Local to the claim's transaction: the outcome written next commits durably again.
    assert synchronous_commit() == "on"
    # Committed and visible to every other connection at once (another worker's claim, the admin).
    with psycopg.connect(database_url_for_subprocess(), autocommit=True) as other:
        row = other.execute("SELECT status, attempt FROM jobs_job WHERE id = 'claim-async'").fetchone()
    assert row == (S.RUNNING.value, 1)


@pytest.mark.django_db(transaction=True)
def test_attempt_guard_holds_with_the_asynchronous_claim(postgres_only):
    job = waiting_job("claim-guard")

    first = deliver(job, attempt=1)
    again = deliver(job, attempt=1)

    assert first["outcome"] == "succeeded"
    assert again == {"job_id": job.id, "skipped": "duplicate or stale delivery"}
    assert Job.objects.get(id=job.id).attempts.count() == 1
    assert synchronous_commit() == "on"


@pytest.mark.django_db(transaction=True)
def test_claim_inside_a_transaction_leaves_its_commit_durable(postgres_only):
    waiting_job("claim-in-atomic")

    with transaction.atomic(), CaptureQueriesContext(connection) as captured:
        claimed = job_start_attempt(job_id="claim-in-atomic", attempt=1, worker="w@host", celery_task_id="x.1")
        setting_inside = synchronous_commit()

    # A caller's transaction may hold other writes: its commit must not lose the flush wait.
    assert claimed is not None
    assert "synchronous_commit" not in captured.captured_queries[0]["sql"]
    assert setting_inside == "on"


@pytest.mark.django_db(transaction=True)
def test_published_stamp_skips_the_flush_wait_and_the_job_row_does_not(postgres_only, redis_client):
    with CaptureQueriesContext(connection) as captured:
        job = job_enqueue(job_type="tests.noop").job  # autocommit: published as soon as it is inserted

    insert, stamp = [query["sql"] for query in captured.captured_queries if not query["sql"].startswith("SELECT")]
    # The job row is the promise made to the caller: durable. Its stamp only saves the relay a publish.
    assert insert.startswith("INSERT") and "synchronous_commit" not in insert
    assert stamp.startswith("UPDATE") and "set_config('synchronous_commit', 'off', true)" in stamp
    assert Job.objects.get(id=job.id).published_at is not None
    assert redis_client.llen("default") == 1
    assert synchronous_commit() == "on"
