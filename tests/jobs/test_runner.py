"""The runner without a worker: one delivery at a time, with the database queries counted."""

from types import SimpleNamespace

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_celery_results.models import TaskResult

from jobs.delivery.enqueue import job_enqueue
from jobs.models import Job, JobLogLine
from jobs.worker.runner import execute
from tests.jobs import jobtypes

S = Job.Status


def deliver(job: Job, *, attempt: int | None = None, schema_version: int = 1, spec=None) -> dict:
    """What a worker does with one message, minus the worker."""
    task = SimpleNamespace(request=SimpleNamespace(id=f"{job.id}.{attempt or job.attempt + 1}", hostname="test@host"))
    spec = spec or {"tests.noop": jobtypes.noop, "tests.bug": jobtypes.bug}[job.type].job_type
    return execute(
        task=task, spec=spec, job_id=job.id, attempt=attempt or job.attempt + 1, schema_version=schema_version
    )


@pytest.mark.django_db
def test_successful_run_costs_two_round_trips_on_postgres(django_capture_on_commit_callbacks, redis_client):
    with django_capture_on_commit_callbacks(execute=True):
        job = job_enqueue(job_type="tests.noop").job
    deliver(job)  # warm the per-process switch cache, as in a long-lived worker
    second = job_enqueue(job_type="tests.noop").job

    with CaptureQueriesContext(connection) as captured:
        summary = deliver(second)

    # The test runs inside a transaction, so the worker's BEGIN/COMMIT shows up as a savepoint.
    statements = [q["sql"].split()[0] for q in captured.captured_queries if "SAVEPOINT" not in q["sql"]]
    if connection.vendor == "postgresql":
        # claim and load (UPDATE ... RETURNING); -> succeeded + attempt row + Celery result row (one CTE)
        assert statements == ["UPDATE", "WITH"]
    else:
        assert statements == ["UPDATE", "UPDATE", "INSERT", "INSERT"]
    assert TaskResult.objects.get(task_id=f"{second.id}.1").status == "SUCCESS"
    assert Job.objects.get(id=second.id).attempts.get().outcome == "succeeded"

    assert summary == {"job_id": second.id, "attempt": 1, "outcome": "succeeded"}
    done = Job.objects.get(id=second.id)
    assert (done.status, done.progress, done.worker, done.celery_task_id) == (
        S.SUCCEEDED,
        100,
        "test@host",
        f"{second.id}.1",
    )


@pytest.mark.django_db
def test_duplicate_delivery_of_an_attempt_runs_once(redis_client):
    job = job_enqueue(job_type="tests.noop").job

    first = deliver(job, attempt=1)
    again = deliver(job, attempt=1)

    assert first["outcome"] == "succeeded"
    assert again == {"job_id": job.id, "skipped": "duplicate or stale delivery"}
    assert Job.objects.get(id=job.id).attempts.count() == 1


@pytest.mark.django_db
def test_stale_message_for_an_old_attempt_is_skipped(redis_client):
    job = job_enqueue(job_type="tests.noop").job
    Job.objects.filter(id=job.id).update(status=S.RETRYING, attempt=2)

    assert deliver(job, attempt=2)["skipped"] == "duplicate or stale delivery"
    assert Job.objects.get(id=job.id).status == S.RETRYING


@pytest.mark.django_db
def test_message_for_a_deleted_job_is_dropped():
    job = Job(id="gone", type="tests.noop", queue="default")
    assert deliver(job, attempt=1) == {"job_id": "gone", "skipped": "unknown job"}


@pytest.mark.django_db
def test_tracking_failure_does_not_fail_the_job(redis_client, monkeypatch):
    from django.db import DatabaseError

    from jobs.core import job_context, lifecycle

    job = job_enqueue(job_type="tests.noop").job

    def broken_record(**kwargs):
        raise DatabaseError("database went away while recording")

    monkeypatch.setattr(lifecycle, "job_succeed", broken_record)
    monkeypatch.setattr(job_context.time, "sleep", lambda seconds: None)

    summary = deliver(job)

    # The job function ran and returned; the bookkeeping failure is logged and the job is
    # left running for the reaper to reconcile, not marked failed.
    assert summary["outcome"] == "succeeded"
    assert Job.objects.get(id=job.id).status == S.RUNNING


@pytest.mark.django_db
def test_a_failure_that_will_be_retried_logs_a_warning_and_the_last_one_an_error(redis_client):
    job = job_enqueue(job_type="tests.always_fails", payload={}).job
    for attempt in (1, 2, 3):
        deliver(job, attempt=attempt, spec=jobtypes.always_fails.job_type)
    levels = list(JobLogLine.objects.filter(job_id=job.id).order_by("attempt").values_list("attempt", "level"))
    assert levels == [(1, "WARNING"), (2, "WARNING"), (3, "ERROR")]


@pytest.mark.django_db
def test_a_body_whose_success_write_failed_is_finished_by_the_reaper_not_run_again(redis_client, monkeypatch):
    from datetime import timedelta

    from django.db import OperationalError
    from django.utils import timezone

    from jobs.core import lifecycle
    from jobs.worker.maintenance import job_rescue_orphans

    job = job_enqueue(job_type="tests.counted").job

    def database_gone(**_kwargs):
        raise OperationalError("server closed the connection unexpectedly")

    # The body finishes; every try of its success write fails (the worker's backend is gone).
    with monkeypatch.context() as patched:
        patched.setattr(lifecycle, "job_succeed", database_gone)
        deliver(job, spec=jobtypes.counted.job_type)
    assert Job.objects.get(id=job.id).status == S.RUNNING
    assert redis_client.get(f"tests:completed:{job.id}") == b"1"

    # The worker stopped renewing; its lease runs out and the reaper ticks.
    Job.objects.filter(id=job.id).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    report = job_rescue_orphans()

    done = Job.objects.get(id=job.id)
    assert (done.status, done.result, done.attempt) == (S.SUCCEEDED, {"attempt": 1}, 1)
    assert list(done.attempts.values_list("number", "outcome")) == [(1, "succeeded")]
    assert (report.completed, report.requeued, report.dead) == ([job.id], [], [])
    assert redis_client.get(f"tests:runs:{job.id}") == b"1"  # its body ran once
    assert redis_client.get(f"jobs:completed:{job.id}") is None  # the record is gone with its use


@pytest.mark.django_db
def test_a_finished_success_write_leaves_no_completion_record(redis_client):
    job = job_enqueue(job_type="tests.noop").job

    deliver(job)

    assert Job.objects.get(id=job.id).status == S.SUCCEEDED
    assert redis_client.get(f"jobs:completed:{job.id}") is None
