"""The lifecycle's single owner: one test per way an attempt can end, called as the runner and reaper call it."""

from datetime import timedelta

import pytest
from django.utils import timezone

from jobs.core import registry
from jobs.core.lifecycle import (
    Failure,
    job_cancel,
    job_fail_attempt,
    job_rescue_lost_attempt,
    job_retry,
    job_snooze,
    job_start_attempt,
    job_stop_attempt,
    job_succeed,
)
from jobs.delivery.enqueue import job_enqueue
from jobs.foundation.exceptions import IllegalTransition
from jobs.models import Job, JobAttempt
from tests.jobs import jobtypes

S = Job.Status
Outcome = JobAttempt.Outcome
BOOM = Failure(code="boom", message="it broke", traceback="Traceback: ...")


@pytest.fixture(autouse=True)
def _clear_give_ups():
    jobtypes.GIVE_UPS.clear()


def started(job_type: str = "tests.gives_up", *, attempts_spent: int = 0) -> Job:
    """A job whose next attempt has just been claimed, as a worker claims it."""
    job = job_enqueue(job_type=job_type, payload={"n": 1}).job
    Job.objects.filter(id=job.id).update(attempt=attempts_spent, status=S.RETRYING if attempts_spent else S.QUEUED)
    claimed = job_start_attempt(
        job_id=job.id, attempt=attempts_spent + 1, worker="w@h", celery_task_id=f"{job.id}.{attempts_spent + 1}"
    )
    assert claimed is not None
    return claimed


def attempt_outcomes(job: Job) -> list[tuple[int, str]]:
    return list(JobAttempt.objects.filter(job_id=job.id).order_by("id").values_list("number", "outcome"))


@pytest.mark.django_db
def test_start_attempt_claims_once():
    job = job_enqueue(job_type="tests.noop").job

    first = job_start_attempt(job_id=job.id, attempt=1, worker="a@h", celery_task_id="t1")
    second = job_start_attempt(job_id=job.id, attempt=1, worker="b@h", celery_task_id="t1")

    assert first is not None and (first.status, first.attempt, first.worker) == (S.RUNNING, 1, "a@h")
    assert second is None


@pytest.mark.django_db
def test_the_claimed_job_is_loaded_as_the_orm_loads_it():
    # The claim builds the instance from its RETURNING row by hand (every job passes here).
    job = job_enqueue(job_type="tests.noop", payload={"n": 1}).job

    claimed = job_start_attempt(job_id=job.id, attempt=1, worker="a@h", celery_task_id="t1")

    loaded = Job.objects.get(id=job.id)
    assert claimed is not None and not claimed._state.adding and claimed._state.db == "default"
    for field in Job._meta.concrete_fields:
        assert getattr(claimed, field.attname) == getattr(loaded, field.attname), field.name
    assert claimed.started_at.tzinfo is not None and claimed.payload == {"n": 1}


@pytest.mark.django_db
def test_succeed(redis_client):
    job = started()

    assert job_succeed(job=job, finished_at=timezone.now(), result={"ok": 1})

    done = Job.objects.get(id=job.id)
    assert (done.status, done.result, done.progress) == (S.SUCCEEDED, {"ok": 1}, 100)
    assert attempt_outcomes(job) == [(1, Outcome.SUCCEEDED)]


@pytest.mark.django_db
def test_snooze_gives_the_attempt_back(redis_client, django_capture_on_commit_callbacks):
    job = started()

    with django_capture_on_commit_callbacks(execute=True):
        assert job_snooze(job=job, wait_seconds=30, failure=Failure(code="rate_limited", message="slow down"))

    waiting = Job.objects.get(id=job.id)
    assert (waiting.status, waiting.attempt, waiting.error_code) == (S.QUEUED, 0, "")
    assert waiting.next_retry_at > timezone.now() + timedelta(seconds=25)
    assert attempt_outcomes(job) == [(1, Outcome.SNOOZED)]
    assert waiting.published_at is not None  # the same attempt's message is out again, delayed


@pytest.mark.django_db
def test_failure_with_attempts_left_retries(redis_client, django_capture_on_commit_callbacks):
    job = started()

    with django_capture_on_commit_callbacks(execute=True):
        status = job_fail_attempt(job=job, spec=registry.get(job.type), failure=BOOM, retryable=True)

    retrying = Job.objects.get(id=job.id)
    assert status == retrying.status == S.RETRYING
    assert (retrying.error_code, retrying.finished_at) == ("boom", None)
    assert retrying.next_retry_at > timezone.now()
    assert attempt_outcomes(job) == [(1, Outcome.RETRY)]
    assert JobAttempt.objects.get(job_id=job.id).retry_delay_ms > 0
    assert jobtypes.GIVE_UPS == []


@pytest.mark.django_db
def test_failure_on_the_last_attempt_dies_and_calls_the_give_up_hook_once(redis_client):
    job = started(attempts_spent=1)  # attempt 2 of 2

    status = job_fail_attempt(job=job, spec=registry.get(job.type), failure=BOOM, retryable=True)
    again = job_fail_attempt(job=job, spec=registry.get(job.type), failure=BOOM, retryable=True)  # a late duplicate

    dead = Job.objects.get(id=job.id)
    assert status == again == dead.status == S.DEAD and dead.finished_at is not None
    assert attempt_outcomes(job) == [(2, Outcome.DEAD)]
    assert jobtypes.GIVE_UPS == [({"n": 1}, "boom", "it broke")]


@pytest.mark.django_db
def test_failure_that_is_not_retryable_fails_at_once_and_calls_the_hook(redis_client):
    job = started()  # attempt 1 of 2: attempts are left, but the error says do not retry

    status = job_fail_attempt(job=job, spec=registry.get(job.type), failure=BOOM, retryable=False)

    failed = Job.objects.get(id=job.id)
    assert status == failed.status == S.FAILED
    assert failed.error_traceback == "Traceback: ..."
    assert attempt_outcomes(job) == [(1, Outcome.FAILED)]
    assert jobtypes.GIVE_UPS == [({"n": 1}, "boom", "it broke")]


@pytest.mark.django_db
def test_lost_attempt_with_attempts_left_goes_back_to_the_queue_at_once(
    redis_client, django_capture_on_commit_callbacks
):
    job = started()

    with django_capture_on_commit_callbacks(execute=True):
        assert job_rescue_lost_attempt(job=job, reason="worker gone")

    rescued = Job.objects.get(id=job.id)
    assert (rescued.status, rescued.error_code) == (S.RETRYING, "worker_lost")
    assert rescued.next_retry_at <= timezone.now() and rescued.published_at is not None
    assert attempt_outcomes(job) == [(1, Outcome.LOST)]
    assert jobtypes.GIVE_UPS == []


@pytest.mark.django_db
def test_lost_last_attempt_dies_and_calls_the_hook(redis_client):
    job = started(attempts_spent=1)

    assert job_rescue_lost_attempt(job=job, reason="worker gone")

    assert Job.objects.get(id=job.id).status == S.DEAD
    assert attempt_outcomes(job) == [(2, Outcome.LOST)]
    assert jobtypes.GIVE_UPS == [({"n": 1}, "worker_lost", "attempt 2 was lost: worker gone")]


@pytest.mark.django_db
def test_rescue_leaves_an_attempt_that_moved_on_alone(redis_client):
    job = started()
    Job.objects.filter(id=job.id).update(attempt=2)  # a newer attempt runs now

    assert not job_rescue_lost_attempt(job=job, reason="worker gone")

    assert (Job.objects.get(id=job.id).status, attempt_outcomes(job)) == (S.RUNNING, [])


@pytest.mark.django_db
@pytest.mark.parametrize("outcome", [Outcome.CANCELLED, Outcome.SKIPPED])
def test_stop_attempt_cancels(outcome):
    job = started()

    assert job_stop_attempt(job=job, outcome=outcome, failure=Failure(code="stopped", message="asked to stop"))

    stopped = Job.objects.get(id=job.id)
    assert (stopped.status, stopped.error_code) == (S.CANCELLED, "stopped")
    assert attempt_outcomes(job) == [(1, outcome)]
    assert jobtypes.GIVE_UPS == []


@pytest.mark.django_db
def test_cancel_waiting_running_and_finished_jobs(redis_client):
    waiting = job_enqueue(job_type="tests.noop").job
    running = started()
    finished = started()
    job_succeed(job=finished, finished_at=timezone.now(), result=None)

    assert job_cancel(job=waiting) == S.CANCELLED
    assert job_cancel(job=running) == S.RUNNING and Job.objects.get(id=running.id).cancel_requested
    with pytest.raises(IllegalTransition, match="is succeeded; only queued, retrying or running"):
        job_cancel(job=finished)


@pytest.mark.django_db
def test_operator_retry_gives_a_dead_job_a_fresh_budget(redis_client, django_capture_on_commit_callbacks):
    job = started(attempts_spent=1)
    job_fail_attempt(job=job, spec=registry.get(job.type), failure=BOOM, retryable=True)
    dead = Job.objects.get(id=job.id)

    with django_capture_on_commit_callbacks(execute=True):
        assert job_retry(job=dead)

    queued = Job.objects.get(id=job.id)
    assert (queued.status, queued.attempt, queued.max_attempts) == (S.QUEUED, 2, 4)
    assert queued.published_at is not None


@pytest.mark.django_db
def test_a_late_attempt_never_overwrites_a_newer_one(redis_client):
    from jobs.core.job_context import JobContext
    from jobs.public import JobCancelled

    first = started()  # attempt 1 of 2
    assert job_rescue_lost_attempt(job=first, reason="its lease ran out")  # the reaper took it for lost
    second = job_start_attempt(job_id=first.id, attempt=2, worker="w2@h", celery_task_id=f"{first.id}.2")
    assert second is not None

    # Attempt 1's worker was alive after all (a long GC pause, a network partition): it carries on.
    with pytest.raises(JobCancelled, match="moved on"):
        JobContext(job=first).progress(60, "late progress", force=True)
    late_success = job_succeed(job=first, finished_at=timezone.now(), result={"from": "attempt 1"})
    late_failure = job_fail_attempt(job=first, spec=registry.get(first.type), failure=BOOM, retryable=True)

    job = Job.objects.get(id=first.id)
    assert late_success is False and late_failure == S.RETRYING  # what it would have done; nothing was applied
    assert (job.status, job.attempt, job.worker, job.progress, job.result) == (S.RUNNING, 2, "w2@h", 0, None)
    assert attempt_outcomes(job) == [(1, Outcome.SUPERSEDED)]
    note = JobAttempt.objects.get(job_id=job.id, number=1).error_message
    assert "lease ran out" in note and "ended succeeded after the job had moved on (now running, attempt 2)" in note
    assert jobtypes.GIVE_UPS == []

    assert job_succeed(job=second, finished_at=timezone.now(), result={"from": "attempt 2"})
    assert Job.objects.get(id=job.id).result == {"from": "attempt 2"}
    assert attempt_outcomes(job) == [(1, Outcome.SUPERSEDED), (2, Outcome.SUCCEEDED)]


@pytest.mark.django_db
def test_a_late_attempt_with_no_row_of_its_own_gets_a_superseded_row(redis_client):
    first = started()
    Job.objects.filter(id=first.id).update(attempt=2, worker="w2@h")  # a newer attempt runs; no lost row written

    assert not job_stop_attempt(job=first, outcome=Outcome.CANCELLED, failure=Failure(code="x", message="stop"))

    row = JobAttempt.objects.get(job_id=first.id)
    assert (row.number, row.outcome, row.error_code, row.worker) == (1, Outcome.SUPERSEDED, "superseded", "w@h")
    assert Job.objects.get(id=first.id).status == S.RUNNING


@pytest.mark.django_db
def test_rescue_of_an_attempt_whose_completion_is_recorded_for_another_attempt_runs_it_again(redis_client):
    from jobs.core.completions import completion_record

    job = started("tests.counted", attempts_spent=1)  # attempt 2 of 3 runs
    completion_record(job_id=job.id, attempt=1, result={"from": "attempt 1"}, finished_at=timezone.now())

    assert job_rescue_lost_attempt(job=job, reason="its lease ran out") == S.RETRYING

    assert attempt_outcomes(job) == [(2, Outcome.LOST)]


@pytest.mark.django_db
def test_rescue_waits_when_redis_cannot_say_whether_the_body_finished(redis_client, monkeypatch):
    from redis import RedisError

    from jobs.core import lifecycle

    job = started()

    def redis_down(**_kwargs):
        raise RedisError("Connection refused")

    monkeypatch.setattr(lifecycle, "completion_find", redis_down)

    assert job_rescue_lost_attempt(job=job, reason="its lease ran out") is None
    assert (Job.objects.get(id=job.id).status, attempt_outcomes(job)) == (S.RUNNING, [])


@pytest.mark.django_db
def test_a_snooze_write_tried_again_after_it_committed_gives_the_attempt_back_once(redis_client, monkeypatch):
    from django.db import OperationalError

    from jobs.core import lifecycle
    from jobs.core.job_context import tracking_write

    job = started(attempts_spent=1)  # attempt 2 runs; attempt 1 was taken for lost by the reaper
    JobAttempt.objects.create(
        job_id=job.id, number=1, outcome=Outcome.LOST, started_at=job.started_at, finished_at=job.started_at
    )
    real_publish = lifecycle.publish_on_commit
    calls: list[int] = []

    def publish_then_connection_drops(jobs, **kwargs):
        # The snooze committed; then the connection broke before the caller heard back.
        calls.append(jobs[0].attempt)
        if len(calls) == 1:
            raise OperationalError("server closed the connection unexpectedly")
        real_publish(jobs, **kwargs)

    monkeypatch.setattr(lifecycle, "publish_on_commit", publish_then_connection_drops)
    snooze = Failure(code="rate_limited", message="try again in 1 s")

    tracking_write(lambda: job_snooze(job=job, wait_seconds=1, failure=snooze), what="snooze")

    waiting = Job.objects.get(id=job.id)
    assert (waiting.status, waiting.attempt) == (S.QUEUED, 1)  # the next message says attempt 2 again
    assert job.attempt == 2  # the runner's job still names the attempt that snoozed
    assert calls == [1]  # the second try was fenced out: nothing given back twice
    assert sorted(attempt_outcomes(job)) == [(1, Outcome.LOST), (2, Outcome.SNOOZED)]  # attempt 1's row untouched


@pytest.mark.django_db
def test_an_attempts_log_lines_are_written_before_its_outcome_is_visible(redis_client):
    succeeding, stopping = started(), started()
    seen: list[str] = []

    def log_lines(job: Job):
        return lambda: seen.append(Job.objects.get(id=job.id).status)

    assert job_succeed(job=succeeding, finished_at=timezone.now(), result=None, extra_writes=log_lines(succeeding))
    assert job_stop_attempt(job=stopping, outcome=Outcome.CANCELLED, failure=BOOM, extra_writes=log_lines(stopping))

    assert seen == [S.RUNNING, S.RUNNING]
