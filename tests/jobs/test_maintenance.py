"""Reaper and pruner, with time frozen where the arithmetic matters."""

from datetime import timedelta

import pytest
import time_machine
from django.test import override_settings
from django.utils import timezone

from jobs import maintenance
from jobs.enqueue import job_enqueue
from jobs.maintenance import job_prune_finished, job_rescue_orphans
from jobs.models import Job, JobAttempt, JobLogLine

S = Job.Status


def running_job(*, started_ago: timedelta, attempt: int = 1, max_attempts: int = 3, worker: str = "w1@host") -> Job:
    job = job_enqueue(job_type="tests.noop").job
    Job.objects.filter(id=job.id).update(
        status=S.RUNNING, attempt=attempt, max_attempts=max_attempts, worker=worker,
        started_at=timezone.now() - started_ago,
    )  # fmt: skip
    return Job.objects.get(id=job.id)


@pytest.mark.django_db
@override_settings(JOBS_ORPHAN_GRACE_SECONDS=60, CELERY_TASK_TIME_LIMIT=600)
def test_job_past_its_time_limit_is_requeued(redis_client, monkeypatch, django_capture_on_commit_callbacks):
    monkeypatch.setattr(maintenance, "_live_workers", lambda: {"w1@host"})
    stuck = running_job(started_ago=timedelta(seconds=600 + 61))
    fresh = running_job(started_ago=timedelta(seconds=30))

    with django_capture_on_commit_callbacks(execute=True):
        report = job_rescue_orphans()

    assert report.requeued == [stuck.id] and report.dead == []
    rescued = Job.objects.get(id=stuck.id)
    assert (rescued.status, rescued.error_code) == (S.RETRYING, "worker_lost")
    assert rescued.published_at is not None  # the next attempt's message is out
    assert rescued.attempts.get().outcome == JobAttempt.Outcome.LOST
    assert Job.objects.get(id=fresh.id).status == S.RUNNING


@pytest.mark.django_db
@override_settings(JOBS_ORPHAN_GRACE_SECONDS=60)
def test_job_of_a_vanished_worker_is_rescued_before_its_time_limit(redis_client, monkeypatch):
    monkeypatch.setattr(maintenance, "_live_workers", lambda: {"alive@host"})
    orphan = running_job(started_ago=timedelta(seconds=90), worker="killed@host")
    healthy = running_job(started_ago=timedelta(seconds=90), worker="alive@host")

    report = job_rescue_orphans()

    assert report.requeued == [orphan.id]
    assert Job.objects.get(id=healthy.id).status == S.RUNNING


@pytest.mark.django_db
@override_settings(JOBS_ORPHAN_GRACE_SECONDS=60)
def test_orphan_without_attempts_left_is_dead(redis_client, monkeypatch):
    monkeypatch.setattr(maintenance, "_live_workers", lambda: set())
    last_try = running_job(started_ago=timedelta(seconds=120), attempt=3, max_attempts=3)

    report = job_rescue_orphans()

    assert report.dead == [last_try.id]
    assert Job.objects.get(id=last_try.id).status == S.DEAD


@pytest.mark.django_db
@override_settings(JOBS_ORPHAN_GRACE_SECONDS=60)
def test_reaper_trusts_workers_when_it_cannot_ask_them(redis_client, monkeypatch):
    monkeypatch.setattr(maintenance, "_live_workers", lambda: None)
    job = running_job(started_ago=timedelta(seconds=120))

    assert job_rescue_orphans().requeued == []
    assert Job.objects.get(id=job.id).status == S.RUNNING


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
