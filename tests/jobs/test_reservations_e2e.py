"""Nothing stranded behind a dead worker (issue 24, item 2): real worker processes, one SIGKILLed."""

from __future__ import annotations

import signal
import time

import pytest

from jobs.delivery.enqueue import job_enqueue
from jobs.models import Job, JobAttempt
from jobs.tasks import rescue_orphans
from tests.processes import wait_for

pytestmark = [pytest.mark.worker, pytest.mark.timeout(300)]
S = Job.Status

RUN_AGAIN_WITHIN_SECONDS = 60


def test_every_job_a_killed_worker_held_runs_again_within_a_minute(start_worker, redis_client):
    # Not the relay's delay (an hour here) nor the visibility timeout (an hour): the reservation lease.
    slow_relay = {"JOBS_REPUBLISH_AFTER_SECONDS": "3600", "CELERY_WORKER_PREFETCH_MULTIPLIER": "4"}
    doomed = start_worker(queues="default", concurrency=1, name="doomed", extra_env=slow_relay)
    running = job_enqueue(job_type="jobs.canary", payload={"seconds": 5}).job.id
    wait_for(lambda: Job.objects.filter(id=running, status=S.RUNNING).exists(), timeout=60, message="the running job")
    prefetched = [job_enqueue(job_type="tests.noop").job.id for _ in range(3)]
    wait_for(lambda: doomed.log().count("tests.noop[") >= 3 and redis_client.llen("default") == 0, timeout=30,
             message="the worker to prefetch three messages")  # fmt: skip
    assert redis_client.hlen("unacked") == 4

    doomed.kill_group(signal.SIGKILL)
    killed_at = time.time()
    start_worker(queues="default", concurrency=2, name="survivor", extra_env=slow_relay)

    def settled() -> bool:
        rescue_orphans.run()  # the reaper's tick (beat sends it every JOBS_REAPER_INTERVAL_SECONDS)
        return Job.objects.filter(id__in=[running, *prefetched], status=S.SUCCEEDED).count() == 4

    wait_for(settled, timeout=120, interval=1, message="every job the killed worker held to run again")
    # Each ran again within a minute of the kill: the prefetched ones (attempt 1, never started) and the
    # running one (attempt 2, after its attempt lease ran out).
    starts = {
        job_id: started.timestamp()
        for job_id, started in JobAttempt.objects.filter(job_id__in=[running, *prefetched], outcome="succeeded")
        .values_list("job_id", "started_at")
    }  # fmt: skip
    late = {
        job_id: round(at - killed_at, 1) for job_id, at in starts.items() if at - killed_at > RUN_AGAIN_WITHIN_SECONDS
    }
    print("ran again after the kill (s):", sorted(round(at - killed_at, 1) for at in starts.values()))
    assert len(starts) == 4 and not late, (starts, late)
    assert Job.objects.get(id=running).attempt == 2
    assert set(Job.objects.filter(id__in=prefetched).values_list("attempt", flat=True)) == {1}
    # The dead worker's entries left the broker's unacknowledged set: they do not pile up.
    assert redis_client.hlen("unacked") == 0
    assert not redis_client.keys("jobs:reservations:lease:doomed*")
