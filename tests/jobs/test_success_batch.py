"""Successes written behind by a worker process' writer thread (``jobs.worker.success_batch``).

A success whose completion is in Redis is handed to the writer, which writes the successes of
``JOBS_SUCCESS_BATCH_MS`` in one statement. Until then the job reads running; if the process dies
first, the reaper finishes the job from its completion record without running it again.
"""

import os
import signal

import psycopg
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_celery_results.models import TaskResult

from jobs.delivery.enqueue import job_enqueue
from jobs.models import Job, JobAttempt, JobLogLine
from jobs.worker.maintenance import job_rescue_orphans
from jobs.worker.success_batch import writer
from tests.jobs import jobtypes
from tests.jobs.test_flush_wait import record_of, waiting_job
from tests.jobs.test_runner import deliver
from tests.processes import database_url_for_subprocess, run_django_snippet, wait_for

S = Job.Status


@pytest.fixture
def batching(settings):
    """This process defers successes as a pool process does; ``window_ms`` as the test sets it."""
    if connection.vendor != "postgresql":
        pytest.skip(
            "successes are deferred only where they skip the WAL flush (PostgreSQL); on SQLite each is written at once, nothing is deferred to test"
        )
    settings.JOBS_SUCCESS_BATCH_MS = 600_000  # the thread writes only when told (flush) unless a test lowers it
    writer.enable()
    assert writer.enabled
    yield settings
    writer.disable()


def status_seen_by_another_connection(job_id: str) -> str:
    with psycopg.connect(database_url_for_subprocess(), autocommit=True) as other:
        return other.execute("SELECT status FROM jobs_job WHERE id = %s", [job_id]).fetchone()[0]


@pytest.mark.django_db(transaction=True)
def test_successes_are_written_behind_in_one_statement(batching, redis_client):
    jobs = [waiting_job(f"batched-{n}") for n in range(3)]

    summaries = [deliver(job, attempt=1) for job in jobs]

    # The task returned succeeded; the database still says running, the completion record says done.
    assert [summary["outcome"] for summary in summaries] == ["succeeded"] * 3
    assert [status_seen_by_another_connection(job.id) for job in jobs] == [S.RUNNING.value] * 3
    assert all(record_of(redis_client, job.id) is not None for job in jobs)
    assert writer.pending() == 3

    with CaptureQueriesContext(connection) as captured:
        writer.flush()

    (statement,) = [query["sql"] for query in captured.captured_queries]
    assert statement.lstrip().startswith("WITH done") and "set_config('synchronous_commit', 'off', true)" in statement
    assert writer.pending() == 0
    for job in jobs:
        done = Job.objects.get(id=job.id)
        assert (done.status, done.progress, done.result) == (S.SUCCEEDED, 100, None)
        assert list(done.attempts.values_list("number", "outcome", "celery_task_id")) == [
            (1, JobAttempt.Outcome.SUCCEEDED, f"{job.id}.1")
        ]
        assert TaskResult.objects.get(task_id=f"{job.id}.1").status == "SUCCESS"


@pytest.mark.django_db(transaction=True)
def test_a_deferred_success_has_its_log_lines_written_before_the_task_returns(batching, redis_client):
    job = Job.objects.create(id="batched-chatty", type="tests.chatty", queue="default", payload={"lines": 3})

    deliver(job, attempt=1, spec=jobtypes.chatty.job_type)

    # Whoever reads succeeded later finds the lines already there: they are not part of the batch.
    assert Job.objects.get(id=job.id).status == S.RUNNING
    assert list(JobLogLine.objects.filter(job_id=job.id).order_by("id").values_list("message", flat=True)) == [
        "line 0", "line 1", "line 2"
    ]  # fmt: skip
    writer.flush()
    assert Job.objects.get(id=job.id).status == S.SUCCEEDED


@pytest.mark.django_db(transaction=True)
def test_the_writer_thread_writes_within_the_batch_window(batching, redis_client):
    batching.JOBS_SUCCESS_BATCH_MS = 50
    job = waiting_job("batched-window")
    deliver(job, attempt=1)

    # Nothing but the thread writes (no flush here); within the 50 ms window, as a generous deadline sees it.
    wait_for(lambda: status_seen_by_another_connection(job.id) == S.SUCCEEDED.value, timeout=10, interval=0.01,
             message="the writer thread to write the success")  # fmt: skip

    assert writer.pending() == 0


@pytest.mark.django_db(transaction=True)
def test_a_full_batch_is_written_without_waiting_for_the_window(batching, redis_client):
    batching.JOBS_SUCCESS_BATCH_SIZE = 2
    jobs = [waiting_job(f"batched-full-{n}") for n in range(2)]

    for job in jobs:
        deliver(job, attempt=1)

    # The window is ten minutes: only the batch size can have released them.
    wait_for(lambda: Job.objects.filter(id__in=[job.id for job in jobs], status=S.SUCCEEDED).count() == 2,
             timeout=5, interval=0.01, message="the full batch to be written")  # fmt: skip


@pytest.mark.django_db(transaction=True)
def test_a_batch_arriving_after_the_reaper_finished_the_job_changes_nothing(batching, redis_client):
    # The process stalled past its lease with the success still held: the reaper finished the job
    # from its completion record. The late batch must neither succeed it twice nor count an attempt more.
    job = Job.objects.create(id="batched-late", type="tests.counted", queue="default")
    deliver(job, attempt=1, spec=jobtypes.counted.job_type)
    Job.objects.filter(id=job.id).update(lease_expires_at="2000-01-01T00:00:00Z")

    report = job_rescue_orphans()
    writer.flush()

    done = Job.objects.get(id=job.id)
    assert report.completed == [job.id]
    assert (done.status, done.attempt) == (S.SUCCEEDED, 1)
    assert list(done.attempts.values_list("number", "outcome")) == [(1, JobAttempt.Outcome.SUCCEEDED)]
    assert redis_client.get(f"tests:runs:{job.id}") == b"1"


@pytest.mark.django_db(transaction=True)
def test_a_zero_window_writes_each_success_before_the_task_returns(settings, redis_client):
    settings.JOBS_SUCCESS_BATCH_MS = 0
    writer.enable()
    try:
        assert not writer.enabled
        job = waiting_job("unbatched")
        deliver(job, attempt=1)
        assert Job.objects.get(id=job.id).status == S.SUCCEEDED
    finally:
        writer.disable()


@pytest.mark.django_db(transaction=True)
def test_a_process_that_did_not_switch_it_on_writes_each_success_itself(subprocess_env, redis_client):
    # The web, beat, a management command: only a prefork pool process (worker_process_init) defers. A fresh
    # process (this one's writer was switched on and off by the tests above) delivers a job: the database
    # reads succeeded when the task returns, and the process holds nothing.
    if connection.vendor != "postgresql":
        pytest.skip("successes are deferred only where they skip the WAL flush (PostgreSQL): nothing to tell apart")
    job = waiting_job("unswitched")

    output = run_django_snippet(
        "from jobs.models import Job\n"
        "from jobs.worker.success_batch import writer\n"
        "from tests.jobs.test_runner import deliver\n"
        f"summary = deliver(Job.objects.get(id={job.id!r}), attempt=1)\n"
        f"print(writer.enabled, writer.pending(), summary['outcome'], Job.objects.get(id={job.id!r}).status)\n",
        env=subprocess_env,
    )

    assert output.split() == ["False", "0", "succeeded", "succeeded"]
    assert status_seen_by_another_connection(job.id) == S.SUCCEEDED.value


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_worker_stopped_for_a_deploy_writes_the_successes_it_holds(start_worker, redis_client):
    if connection.vendor != "postgresql":
        pytest.skip(
            "successes are deferred only where they skip the WAL flush (PostgreSQL); on SQLite each is written at once, nothing is deferred to test"
        )
    # A ten-minute window: nothing but the shutdown can have written the success.
    worker = start_worker(queues="default", name="holds-successes", extra_env={"JOBS_SUCCESS_BATCH_MS": "600000"})
    job = job_enqueue(job_type="tests.counted").job
    wait_for(lambda: record_of(redis_client, job.id), timeout=30, message="the job's body to finish")
    assert Job.objects.get(id=job.id).status == S.RUNNING  # held by the pool process' writer

    os.kill(worker.pid, signal.SIGTERM)
    worker.process.wait(timeout=30)

    done = Job.objects.get(id=job.id)
    assert (done.status, done.attempt) == (S.SUCCEEDED, 1)
    assert list(done.attempts.values_list("number", "outcome")) == [(1, JobAttempt.Outcome.SUCCEEDED)]
    assert redis_client.get(f"tests:runs:{job.id}") == b"1"


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_holding_a_success_has_the_job_finished_by_the_reaper_not_run_again(start_worker, redis_client):
    if connection.vendor != "postgresql":
        pytest.skip(
            "successes are deferred only where they skip the WAL flush (PostgreSQL); on SQLite each is written at once, nothing is deferred to test"
        )
    worker = start_worker(
        queues="default", name="killed-holding",
        extra_env={"JOBS_SUCCESS_BATCH_MS": "600000", "JOBS_LEASE_SECONDS": "2", "JOBS_HEARTBEAT_SECONDS": "1"},
    )  # fmt: skip
    job = job_enqueue(job_type="tests.counted").job
    wait_for(lambda: record_of(redis_client, job.id), timeout=30, message="the job's body to finish")

    worker.kill_group(signal.SIGKILL)  # the success dies with the process, before its batch is written
    assert Job.objects.get(id=job.id).status == S.RUNNING

    def finished() -> Job | None:
        job_rescue_orphans()  # what beat runs every JOBS_REAPER_INTERVAL_SECONDS
        return Job.objects.filter(id=job.id, status=S.SUCCEEDED).first()

    done = wait_for(finished, timeout=30, interval=0.5, message="the reaper to finish the job from its record")
    assert done.attempt == 1
    assert list(done.attempts.values_list("number", "outcome")) == [(1, JobAttempt.Outcome.SUCCEEDED)]
    assert redis_client.get(f"tests:runs:{job.id}") == b"1"  # its body ran once
