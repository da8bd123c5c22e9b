"""Global concurrency limits with real workers: 4 worker processes on 2 nodes never run more than the limit (what
the job bodies count in Redis, sampled every 20 ms), keep the limit busy, and a SIGKILLed worker's slot comes back
once its lease runs out and the reaper rescues its attempt."""

from __future__ import annotations

import signal
import statistics
import threading
import time

import pytest

from jobs.delivery.enqueue import job_bulk_enqueue, job_enqueue
from jobs.models import Job
from jobs.worker.maintenance import job_rescue_orphans
from tests.processes import wait_for

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]
S = Job.Status
LIMIT = 2  # tests.capped's concurrency


class Sampler(threading.Thread):
    """Reads tests.capped's running count in Redis every 20 ms until stopped."""

    def __init__(self, redis_client) -> None:
        super().__init__(daemon=True)
        self.redis, self.samples, self.stopped = redis_client, [], threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(0.02):
            self.samples.append(int(self.redis.get("tests:capped:running") or 0))


def test_four_processes_on_two_nodes_never_run_more_than_the_limit_and_keep_it_busy(start_worker, redis_client):
    for node in ("node-a", "node-b"):
        start_worker(queues="default", concurrency=2, name=node)
    sampler = Sampler(redis_client)
    sampler.start()
    seconds, count = 2.0, 12  # long enough that a busy CI machine's hand-off delays stay a small share
    job_ids = [result.job.id for result in job_bulk_enqueue(job_type="tests.capped",
                                                            payloads=[{"seconds": seconds}] * count)]  # fmt: skip
    wait_for(lambda: Job.objects.filter(id__in=job_ids, status=S.SUCCEEDED).count() == count, timeout=90,
             interval=0.2, message=f"{count} capped jobs to succeed")  # fmt: skip
    sampler.stopped.set()
    sampler.join()

    jobs = list(Job.objects.filter(id__in=job_ids))
    assert max(sampler.samples) == LIMIT, sorted(set(sampler.samples))
    assert int(redis_client.get("tests:capped:max")) == LIMIT  # never over, not even between two samples
    assert {job.attempt for job in jobs} == {1}  # waiting spent no attempt
    assert {job.worker.split("@")[0] for job in jobs} == {"node-a", "node-b"}
    span = (max(job.finished_at for job in jobs) - min(job.started_at for job in jobs)).total_seconds()
    throughput = count / span
    ideal = LIMIT / seconds
    # How soon a waiting job starts after a slot frees: from each finish to the next start after it.
    starts = sorted(job.started_at for job in jobs)
    handoffs = [min(start for start in starts if start >= job.finished_at) - job.finished_at
                for job in jobs if any(start >= job.finished_at for start in starts)]  # fmt: skip
    handoff_ms = statistics.median(delta.total_seconds() * 1000 for delta in handoffs)
    print(
        f"\nconcurrency: {count} jobs of {seconds} s at limit {LIMIT} in {span:.2f} s: {throughput:.2f} jobs/s "
        f"= {throughput / ideal:.0%} of {ideal:.1f}; a waiting job started {handoff_ms:.0f} ms (median) after a slot freed"
    )
    assert throughput >= 0.9 * ideal


def test_a_sigkilled_workers_slots_return_when_their_leases_run_out(start_worker, redis_client):
    env = {"JOBS_LEASE_SECONDS": "3", "JOBS_HEARTBEAT_SECONDS": "1"}
    holder = start_worker(queues="default", concurrency=2, name="holder", extra_env=env)
    held = [job_enqueue(job_type="tests.capped", payload={"seconds": 120}).job for _ in range(LIMIT)]
    wait_for(lambda: int(redis_client.get("tests:capped:running") or 0) == LIMIT, timeout=30, message="both running")
    start_worker(queues="default", concurrency=1, name="waiter", extra_env=env)
    third = job_enqueue(job_type="tests.capped", payload={"seconds": 0.1}).job
    # The limit is full: the third waits, unpublished, no attempt spent, no process held.
    wait_for(lambda: Job.objects.filter(id=third.id, published_at__isnull=True, concurrency_key="").exists(),
             timeout=30, message="the third job to wait for a slot")  # fmt: skip

    holder.kill_group(signal.SIGKILL)  # the whole node: its main process and its pool children
    time.sleep(1)
    assert Job.objects.get(id=third.id).status == S.QUEUED  # the leases have not run out yet: the slots are taken

    def rescued_and_third_done() -> Job | None:
        job_rescue_orphans()  # what beat runs every JOBS_REAPER_INTERVAL_SECONDS
        return Job.objects.filter(id=third.id, status=S.SUCCEEDED).first()

    done = wait_for(rescued_and_third_done, timeout=60, interval=0.5, message="a freed slot to run the third job")
    lost = list(Job.objects.filter(id__in=[job.id for job in held]))
    # max_attempts=1: rescued as lost, dead; their slots went to the waiting job.
    assert {(job.status, job.attempts.get().outcome) for job in lost} == {(S.DEAD, "lost")}
    assert done.started_at > min(job.lease_expires_at for job in lost)
    assert (done.attempt, done.worker.split("@")[0]) == (1, "waiter")
