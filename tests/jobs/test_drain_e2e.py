"""A draining worker hands back what it has not started at once (issue 24, item 3), with real processes."""

from __future__ import annotations

import os
import signal
import time

import pytest

from jobs.delivery.enqueue import job_enqueue
from jobs.models import Job
from tests.processes import wait_for

pytestmark = pytest.mark.worker
S = Job.Status

# A prefetched message is back on its queue this soon after SIGTERM, not when the worker exits.
HANDED_BACK_WITHIN_SECONDS = 5


def test_a_warm_shutdown_hands_back_prefetched_messages_while_its_running_job_finishes(start_worker, redis_client):
    draining = start_worker(
        queues="default", concurrency=1, name="draining", extra_env={"CELERY_WORKER_PREFETCH_MULTIPLIER": "4"}
    )
    long_job = job_enqueue(job_type="jobs.canary", payload={"seconds": 25}).job
    wait_for(lambda: Job.objects.filter(id=long_job.id, status=S.RUNNING).exists(), timeout=60, message="the long job")
    short = [job_enqueue(job_type="tests.noop").job.id for _ in range(3)]
    # The draining worker reserved all three behind its running job: none is left on the queue.
    wait_for(lambda: draining.log().count("tests.noop[") >= 3 and redis_client.llen("default") == 0, timeout=30,
             message="the worker to prefetch the short jobs")  # fmt: skip

    os.kill(draining.pid, signal.SIGTERM)  # warm shutdown of the main process (a deploy)
    signalled = time.monotonic()
    wait_for(lambda: redis_client.llen("default") == 3, timeout=HANDED_BACK_WITHIN_SECONDS,
             message="the prefetched messages to be back on the queue")  # fmt: skip
    print(f"3 prefetched messages back on the queue {time.monotonic() - signalled:.1f} s after SIGTERM")
    assert draining.process.poll() is None  # still finishing its running job

    start_worker(queues="default", concurrency=2, name="successor")
    wait_for(lambda: Job.objects.filter(id__in=short, status=S.SUCCEEDED).count() == 3, timeout=60,
             message="another worker to run the handed-back jobs")  # fmt: skip
    # They ran while the drained worker was still finishing its long job, which then succeeded there.
    assert Job.objects.get(id=long_job.id).status == S.RUNNING
    draining.process.wait(timeout=60)
    done = Job.objects.get(id=long_job.id)
    assert (done.status, done.attempt) == (S.SUCCEEDED, 1)
    assert set(Job.objects.filter(id__in=short).values_list("attempt", flat=True)) == {1}
    assert "handed back 3 reserved message(s)" in draining.log()
