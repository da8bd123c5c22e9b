"""Jobs that run later, end to end: a real beat fires the scheduler's tick on the housekeeping queue and a real
worker runs each job at its due time, never before it; until then no message exists anywhere."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from jobs.delivery.enqueue import job_bulk_enqueue, job_enqueue
from jobs.delivery.schedules import schedules_sync
from jobs.models import Job
from jobs.ops.operations import job_type_set_enabled
from tests.processes import wait_for

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]
S = Job.Status


def start_ticking(start_worker, start_beat, *, concurrency: int) -> None:
    """A worker on the default and housekeeping queues, and beat firing the tick: returns once a tick ran."""
    schedules_sync()  # the tick's beat entry (JOBS_SCHEDULER_TICK_SECONDS, 1 s by default)
    worker = start_worker(queues="default,housekeeping", concurrency=concurrency)
    start_beat()
    wait_for(lambda: "Task jobs.publish_due[" in worker.log(), timeout=90, message="the first tick")


def wait_succeeded(job_ids: list[str], timeout: float = 60) -> list[Job]:
    wait_for(lambda: Job.objects.filter(id__in=job_ids, status=S.SUCCEEDED).count() == len(job_ids),
             timeout=timeout, message=f"{len(job_ids)} job(s) to succeed")  # fmt: skip
    return list(Job.objects.filter(id__in=job_ids))


def test_jobs_run_at_their_due_time_and_not_before(start_worker, start_beat, redis_client):
    start_ticking(start_worker, start_beat, concurrency=2)
    now = timezone.now()
    single = job_enqueue(job_type="tests.noop", delay=timedelta(seconds=4)).job
    bulk = [result.job for result in job_bulk_enqueue(job_type="tests.record", payloads=[{"n": n} for n in range(3)],
                                                      run_at=now + timedelta(seconds=5))]  # fmt: skip
    past = job_enqueue(job_type="tests.noop", run_at=now - timedelta(days=1)).job

    time.sleep(2)  # well before they are due: stored, unpublished, no message on the broker
    waiting = Job.objects.filter(id__in=[single.id, *(job.id for job in bulk)])
    assert set(waiting.values_list("status", "published_at")) == {(S.QUEUED, None)}
    assert redis_client.llen("default") == 0

    done = wait_succeeded([single.id, past.id, *(job.id for job in bulk)])
    for job in done:
        assert job.started_at >= job.run_at, f"{job.id} started {job.run_at - job.started_at} early"
    late = {job.id: (job.started_at - job.run_at).total_seconds() for job in done if job.id != past.id}
    # The tick waits for the due time itself; a generous bound for a shared CI machine.
    assert max(late.values()) < 2.0, late


def test_a_type_switched_off_holds_its_due_job_until_switched_on(start_worker, start_beat):
    start_ticking(start_worker, start_beat, concurrency=1)
    job = job_enqueue(job_type="tests.noop", delay=timedelta(seconds=1)).job
    job_type_set_enabled(job_type="tests.noop", enabled=False)

    time.sleep(3)  # due, and several ticks later
    job.refresh_from_db()
    assert (job.status, job.published_at) == (S.QUEUED, None)

    job_type_set_enabled(job_type="tests.noop", enabled=True)
    [done] = wait_succeeded([job.id], timeout=30)
    assert done.started_at >= done.run_at
