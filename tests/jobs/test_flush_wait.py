"""Which commits wait for PostgreSQL's WAL flush.

The claim (queued -> running) and the published stamp never do; a success does not when its
completion is in Redis first (``jobs.core.completions``), which then finishes the job if a database
crash forgets the commit: the reaper for a lost success, the relay for a lost claim and success.
The job row's INSERT and every failure outcome wait for the flush.

All run in autocommit, outside any transaction, which is why these tests use a transactional
database rather than the usual test transaction.
"""

from datetime import timedelta

import psycopg
import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_celery_results.models import TaskResult

from jobs.core.completions import INDEX_KEY
from jobs.delivery.relay import job_relay_unpublished
from jobs.models import Job, JobAttempt
from jobs.services import job_enqueue, job_start_attempt
from jobs.worker.maintenance import job_prune_completions, job_rescue_orphans
from tests.jobs import jobtypes
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
        pytest.skip("synchronous_commit is PostgreSQL's; on SQLite every commit waits for its write, nothing to skip")


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


def record_of(redis_client, job_id: str) -> bytes | None:
    return redis_client.get(f"jobs:completed:{job_id}")


def indexed(redis_client) -> set[str]:
    return {member.decode() for member in redis_client.zrange(INDEX_KEY, 0, -1)}


def delivered_success_sql(job: Job) -> str:
    """Deliver attempt 1 of ``job`` and return its outcome statement (the one ``WITH``)."""
    with CaptureQueriesContext(connection) as captured:
        deliver(job, attempt=1)
    (outcome_sql,) = [query["sql"] for query in captured.captured_queries if query["sql"].lstrip().startswith("WITH")]
    return outcome_sql


def forget_in_a_crash(job: Job, *, claim_too: bool) -> None:
    """What the database holds after a crash forgot the unflushed success (and the claim before it)."""
    JobAttempt.objects.filter(job_id=job.id).delete()
    TaskResult.objects.filter(task_id=f"{job.id}.1").delete()
    if claim_too:
        Job.objects.filter(id=job.id).update(
            status=S.QUEUED, attempt=0, started_at=None, lease_expires_at=None, finished_at=None, result=None,
            published_at=timezone.now() - timedelta(hours=1),
        )  # fmt: skip
    else:
        Job.objects.filter(id=job.id).update(
            status=S.RUNNING, finished_at=None, result=None, lease_expires_at=timezone.now() - timedelta(seconds=1)
        )


@pytest.mark.django_db(transaction=True)
def test_a_success_with_its_completion_recorded_skips_the_flush_wait(postgres_only, redis_client):
    job = waiting_job("success-async")

    with CaptureQueriesContext(connection) as captured:
        summary = deliver(job, attempt=1)

    assert summary["outcome"] == "succeeded"
    (outcome_sql,) = [query["sql"] for query in captured.captured_queries if query["sql"].lstrip().startswith("WITH")]
    assert "set_config('synchronous_commit', 'off', true)" in outcome_sql
    assert synchronous_commit() == "on"  # local to that commit
    with psycopg.connect(database_url_for_subprocess(), autocommit=True) as other:
        row = other.execute("SELECT status FROM jobs_job WHERE id = 'success-async'").fetchone()
    assert row == (S.SUCCEEDED.value,)
    # The record stays until the pruner sees the success in the database: it is what covers the commit.
    assert record_of(redis_client, job.id) is not None
    assert indexed(redis_client) == {job.id}


@pytest.mark.django_db(transaction=True)
def test_durable_success_setting_waits_for_the_flush_and_forgets_the_record(postgres_only, redis_client, settings):
    settings.JOBS_DURABLE_SUCCESS = True
    job = waiting_job("success-durable")

    assert "synchronous_commit" not in delivered_success_sql(job)
    assert Job.objects.get(id=job.id).status == S.SUCCEEDED
    assert record_of(redis_client, job.id) is None
    assert indexed(redis_client) == set()


@pytest.mark.django_db(transaction=True)
def test_a_success_whose_completion_could_not_be_recorded_waits_for_the_flush(postgres_only, redis_client, monkeypatch):
    import redis

    from jobs.core import completions

    # The completions' Redis answers nothing (a closed port); a no-op's run needs no other Redis.
    closed = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    monkeypatch.setattr(completions, "get_redis", lambda: closed)
    job = waiting_job("success-no-record")

    assert "synchronous_commit" not in delivered_success_sql(job)
    assert Job.objects.get(id=job.id).status == S.SUCCEEDED


@pytest.mark.django_db(transaction=True)
def test_failures_wait_for_the_flush(postgres_only, redis_client):
    job = Job.objects.create(id="failure-durable", type="tests.bug", queue="default")

    with CaptureQueriesContext(connection) as captured:
        deliver(job, attempt=1, spec=jobtypes.bug.job_type)

    assert Job.objects.get(id=job.id).status != S.RUNNING
    claims = [query["sql"] for query in captured.captured_queries if "synchronous_commit" in query["sql"]]
    assert len(claims) == 1 and claims[0].startswith("UPDATE")  # the claim, nothing else
    assert record_of(redis_client, job.id) is None


@pytest.mark.django_db(transaction=True)
def test_the_pruner_deletes_records_once_old_enough_and_the_success_is_in_the_database(
    postgres_only, redis_client, settings
):
    jobs = [waiting_job(f"prune-{n}") for n in range(3)]
    for job in jobs:
        deliver(job, attempt=1)
    assert indexed(redis_client) == {job.id for job in jobs}

    settings.JOBS_COMPLETION_KEEP_SECONDS = 60
    assert job_prune_completions() == 0  # too young: the commits may not have reached the disk yet
    assert indexed(redis_client) == {job.id for job in jobs}

    settings.JOBS_COMPLETION_KEEP_SECONDS = 0
    assert job_prune_completions() == 3
    assert indexed(redis_client) == set()
    assert all(record_of(redis_client, job.id) is None for job in jobs)


@pytest.mark.django_db(transaction=True)
def test_a_success_lost_in_a_crash_keeps_its_record_and_the_reaper_finishes_the_job(
    postgres_only, redis_client, settings
):
    settings.JOBS_COMPLETION_KEEP_SECONDS = 0
    job = Job.objects.create(id="lost-success", type="tests.counted", queue="default")
    deliver(job, attempt=1, spec=jobtypes.counted.job_type)
    forget_in_a_crash(job, claim_too=False)

    assert job_prune_completions() == 0  # the database does not show the success: the record is needed
    assert record_of(redis_client, job.id) is not None

    report = job_rescue_orphans()

    done = Job.objects.get(id=job.id)
    assert report.completed == [job.id]
    assert (done.status, done.attempt) == (S.SUCCEEDED, 1)
    assert list(done.attempts.values_list("number", "outcome")) == [(1, "succeeded")]
    assert redis_client.get(f"tests:runs:{job.id}") == b"1"  # its body ran once
    assert record_of(redis_client, job.id) is None and indexed(redis_client) == set()


@pytest.mark.django_db(transaction=True)
def test_a_claim_and_success_lost_in_a_crash_are_finished_by_the_relay_not_published(
    postgres_only, redis_client, settings
):
    settings.JOBS_REPUBLISH_AFTER_SECONDS = 60
    settings.JOBS_COMPLETION_KEEP_SECONDS = 0
    job = Job.objects.create(id="lost-claim", type="tests.counted", queue="default")
    deliver(job, attempt=1, spec=jobtypes.counted.job_type)
    forget_in_a_crash(job, claim_too=True)  # waiting, attempt 0, published an hour ago, queue empty

    assert job_prune_completions() == 0
    assert job_relay_unpublished() == 0  # nothing published: the body had finished

    done = Job.objects.get(id=job.id)
    assert (done.status, done.attempt, done.result) == (S.SUCCEEDED, 1, {"attempt": 1})
    assert list(done.attempts.values_list("number", "outcome")) == [(1, "succeeded")]
    assert redis_client.llen("default") == 0
    assert redis_client.get(f"tests:runs:{job.id}") == b"1"
    assert record_of(redis_client, job.id) is None


@pytest.mark.django_db(transaction=True)
def test_the_relay_publishes_a_waiting_job_without_a_record_as_before(postgres_only, redis_client, settings):
    settings.JOBS_REPUBLISH_AFTER_SECONDS = 60
    job = waiting_job("relay-plain")
    Job.objects.filter(id=job.id).update(published_at=timezone.now() - timedelta(hours=1))

    assert job_relay_unpublished() == 1
    assert redis_client.llen("default") == 1
    assert Job.objects.get(id=job.id).status == S.QUEUED
