"""Locks, limits and schedules across real worker and beat processes."""

import pytest
from django_celery_beat.models import PeriodicTask
from django_celery_results.models import TaskResult

from jobs.delivery import schedules
from jobs.delivery.enqueue import job_enqueue
from jobs.delivery.schedules import declare, schedule_trigger, schedules_sync
from jobs.models import Job, JobAttempt
from tests.processes import wait_for

pytestmark = pytest.mark.worker
S = Job.Status


def wait_all_final(ids, timeout=60):
    return wait_for(
        lambda: (
            list(Job.objects.filter(id__in=ids, status__in=[S.SUCCEEDED, S.FAILED, S.DEAD, S.CANCELLED]))
            if Job.objects.filter(id__in=ids, status__in=[S.SUCCEEDED, S.FAILED, S.DEAD, S.CANCELLED]).count()
            == len(ids)
            else None
        ),
        timeout=timeout,
        message="jobs to finish",
    )


def test_second_run_of_a_singleton_is_skipped_and_recorded(start_worker):
    start_worker(queues="default", concurrency=2)
    first = job_enqueue(job_type="tests.singleton", payload={"seconds": 3}).job
    wait_for(lambda: Job.objects.filter(id=first.id, status=S.RUNNING).exists(), timeout=30, message="first to run")
    second = job_enqueue(job_type="tests.singleton", payload={"seconds": 3}).job

    done = {job.id: job for job in wait_all_final([first.id, second.id])}

    assert done[first.id].status == S.SUCCEEDED
    skipped = done[second.id]
    assert (skipped.status, skipped.error_code) == (S.CANCELLED, "singleton_running")
    assert skipped.attempts.get().outcome == JobAttempt.Outcome.SKIPPED


def test_rate_limited_job_is_postponed_without_spending_an_attempt(start_worker):
    start_worker(queues="default", concurrency=2)
    ids = [job_enqueue(job_type="tests.limited").job.id for _ in range(2)]

    done = wait_all_final(ids, timeout=60)

    assert {job.status for job in done} == {S.SUCCEEDED}
    postponed = [job for job in done if job.attempts.filter(outcome=JobAttempt.Outcome.SNOOZED).exists()]
    assert postponed, "one of the two found the limiter busy"
    for job in postponed:
        # Snoozed, then run as attempt 1 again: the wait did not count as a failure.
        assert job.attempt == 1 and job.result == {"called_at_attempt": 1}
    finished_times = sorted(job.finished_at for job in done)
    assert (finished_times[1] - finished_times[0]).total_seconds() >= 2.5


@pytest.mark.django_db
def test_trigger_enqueues_once_per_window(redis_client, monkeypatch):
    monkeypatch.setattr(schedules, "_declared", {})
    declare("every-10s", 10.0, job_type="tests.noop")

    first = schedule_trigger(name="every-10s")
    again = schedule_trigger(name="every-10s", source="http")

    assert first.enqueued_job_id and Job.objects.filter(id=first.enqueued_job_id).exists()
    assert again.as_dict() == {"schedule": "every-10s", "skipped": "already fired in this window"}
    assert Job.objects.filter(type="tests.noop").count() == 1


def test_two_beat_processes_enqueue_once_per_window(start_worker, start_beat, monkeypatch):
    monkeypatch.setattr(schedules, "_declared", {})
    declare("tests.every-4s", 4.0, job_type="tests.noop")  # window: 2 s
    schedules_sync()
    start_worker(queues="default,housekeeping", concurrency=2)
    start_beat(name="beat-a")
    start_beat(name="beat-b")

    triggers = wait_for(
        lambda: (rows := list(TaskResult.objects.filter(task_name="jobs.run_schedule", status="SUCCESS"))) and len(rows) >= 6 and rows,
        timeout=90, interval=0.5, message="six firings of the schedule",
    )  # fmt: skip

    enqueued = [r for r in triggers if "enqueued" in r.result]
    skipped = [r for r in triggers if "skipped" in r.result]
    assert skipped, "the second beat's firings were skipped"
    assert len(enqueued) >= 2, "the schedule kept firing in later windows"
    jobs = sorted(Job.objects.filter(type="tests.noop"), key=lambda job: job.created_at)
    assert len(jobs) == len(enqueued)
    # Never two enqueues within one window.
    gaps = [
        (later.created_at - earlier.created_at).total_seconds() for earlier, later in zip(jobs, jobs[1:], strict=False)
    ]
    assert all(gap >= 1.9 for gap in gaps), gaps
    assert PeriodicTask.objects.get(name="tests.every-4s").task == "jobs.run_schedule"
