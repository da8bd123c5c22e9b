"""Reaper and pruner, with time frozen where the arithmetic matters."""

from datetime import timedelta

import pytest
import time_machine
from django.test import override_settings
from django.utils import timezone

from jobs.delivery.enqueue import job_enqueue
from jobs.models import Job, JobAttempt, JobLogLine
from jobs.worker.maintenance import job_prune_finished, job_rescue_orphans

S = Job.Status


def running_job(
    *, started_ago: timedelta, lease_left: timedelta | None, attempt: int = 1, max_attempts: int = 3,
    worker: str = "w1@host",
) -> Job:  # fmt: skip
    """A running job whose lease runs out ``lease_left`` from now (negative: ran out; None: no lease)."""
    job = job_enqueue(job_type="tests.noop").job
    now = timezone.now()
    Job.objects.filter(id=job.id).update(
        status=S.RUNNING, attempt=attempt, max_attempts=max_attempts, worker=worker, started_at=now - started_ago,
        lease_expires_at=None if lease_left is None else now + lease_left,
    )  # fmt: skip
    return Job.objects.get(id=job.id)


@pytest.mark.django_db
def test_attempt_whose_lease_ran_out_is_requeued_whatever_its_time_limit(
    redis_client, django_capture_on_commit_callbacks
):
    # Started 40 s ago, far inside its 10-minute time limit: only the lease says its worker is gone.
    lost = running_job(started_ago=timedelta(seconds=40), lease_left=timedelta(seconds=-1))
    renewed = running_job(started_ago=timedelta(hours=2), lease_left=timedelta(seconds=20))  # long, but alive

    with django_capture_on_commit_callbacks(execute=True):
        report = job_rescue_orphans()

    assert report.requeued == [lost.id] and report.dead == []
    rescued = Job.objects.get(id=lost.id)
    assert (rescued.status, rescued.error_code) == (S.RETRYING, "worker_lost")
    assert "lease ran out" in rescued.error_message
    assert rescued.published_at is not None  # the next attempt's message is out
    assert rescued.attempts.get().outcome == JobAttempt.Outcome.LOST
    assert Job.objects.get(id=renewed.id).status == S.RUNNING


@pytest.mark.django_db
def test_lost_attempt_without_attempts_left_is_dead(redis_client):
    last_try = running_job(started_ago=timedelta(seconds=120), lease_left=timedelta(seconds=-5), attempt=3)

    report = job_rescue_orphans()

    assert report.dead == [last_try.id]
    assert Job.objects.get(id=last_try.id).status == S.DEAD


@pytest.mark.django_db
@override_settings(JOBS_ORPHAN_GRACE_SECONDS=60, CELERY_TASK_TIME_LIMIT=600)
def test_job_claimed_before_leases_is_rescued_only_past_its_time_limit(redis_client):
    stuck = running_job(started_ago=timedelta(seconds=600 + 61), lease_left=None)
    young = running_job(started_ago=timedelta(seconds=120), lease_left=None)

    assert job_rescue_orphans().requeued == [stuck.id]
    assert Job.objects.get(id=young.id).status == S.RUNNING


@pytest.mark.django_db
def test_heartbeat_renews_the_leases_it_holds_and_no_others(redis_client):
    from jobs.worker.leases import LeaseKeeper

    held = running_job(started_ago=timedelta(seconds=10), lease_left=timedelta(seconds=2))
    moved_on = running_job(started_ago=timedelta(seconds=10), lease_left=timedelta(seconds=2), attempt=2)
    keeper = LeaseKeeper()

    with keeper.hold(job_id=held.id, attempt=1), keeper.hold(job_id=moved_on.id, attempt=1):
        renewed = keeper.renew_once()
    after = keeper.held()

    assert renewed == 1 and after == {}
    assert Job.objects.get(id=held.id).lease_expires_at > timezone.now() + timedelta(seconds=25)
    assert Job.objects.get(id=moved_on.id).lease_expires_at < timezone.now() + timedelta(seconds=3)


@pytest.mark.django_db
def test_prune_deletes_old_finished_jobs_in_batches(redis_client):
    now = timezone.now()
    old = [job_enqueue(job_type="tests.noop").job for _ in range(7)]
    Job.objects.filter(id__in=[j.id for j in old]).update(status=S.SUCCEEDED, finished_at=now - timedelta(days=40))
    JobLogLine.objects.create(job=old[0], attempt=1, logged_at=now, level="INFO", message="x")
    recent = job_enqueue(job_type="tests.noop").job
    Job.objects.filter(id=recent.id).update(status=S.SUCCEEDED, finished_at=now - timedelta(days=1))
    waiting_but_old = job_enqueue(job_type="tests.noop").job
    Job.objects.filter(id=waiting_but_old.id).update(created_at=now - timedelta(days=90))

    with time_machine.travel(now):
        deleted = job_prune_finished(older_than_days=30, batch_size=3)

    assert deleted == 7
    assert set(Job.objects.values_list("id", flat=True)) == {recent.id, waiting_but_old.id}
    assert JobLogLine.objects.count() == 0


@pytest.mark.django_db
def test_dead_jobs_are_kept_longer_than_other_finished_jobs(redis_client):
    now = timezone.now()
    jobs = {}
    for name, status, age_days in (
        ("succeeded_40", S.SUCCEEDED, 40),
        ("dead_40", S.DEAD, 40),
        ("dead_100", S.DEAD, 100),
    ):
        jobs[name] = job_enqueue(job_type="tests.noop").job
        Job.objects.filter(id=jobs[name].id).update(status=status, finished_at=now - timedelta(days=age_days))

    with time_machine.travel(now):
        deleted = job_prune_finished(older_than_days=30, dead_older_than_days=90)

    assert deleted == 2
    assert set(Job.objects.values_list("id", flat=True)) == {jobs["dead_40"].id}
