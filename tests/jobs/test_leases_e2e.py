"""Attempt leases with real worker processes: a killed pool child's job runs again within a minute, and a
worker stopped for a deploy finishes its job once, however often the reaper looks.

Job bodies count their executions in Redis (``tests.counted``), outside the job tables.
"""

import os
import signal
import time

import pytest
from django.conf import settings

from jobs.delivery.enqueue import job_enqueue
from jobs.models import Job, JobAttempt
from jobs.worker.maintenance import job_rescue_orphans
from tests.processes import wait_for

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]
S = Job.Status


def running_pid(redis_client, job: Job, attempt: int = 1) -> int:
    entry = wait_for(lambda: redis_client.lindex(f"tests:pids:{job.id}", attempt - 1), timeout=30,
                     message=f"attempt {attempt} of {job.id} to start")  # fmt: skip
    number, pid = entry.decode().split(":")
    assert int(number) == attempt
    return int(pid)


def counts(redis_client, job: Job) -> tuple[int, int]:
    runs, completed = (int(redis_client.get(f"tests:{what}:{job.id}") or 0) for what in ("runs", "completed"))
    return runs, completed


class Reaper:
    """What beat does: run the reaper every ``interval`` seconds."""

    def __init__(self, interval: float):
        self.interval = interval
        self.next_tick = time.monotonic()
        self.ticks = 0

    def tick_if_due(self) -> None:
        if time.monotonic() >= self.next_tick:
            job_rescue_orphans()
            self.ticks += 1
            self.next_tick += self.interval


def test_sigkilled_pool_child_job_runs_again_and_succeeds_within_60_seconds(start_worker, redis_client):
    # Default lease, heartbeat and reaper interval: the promise is about the defaults.
    worker = start_worker(queues="default", concurrency=2, name="survives-its-child")
    job = job_enqueue(job_type="tests.counted", payload={"seconds": 120}).job
    child = running_pid(redis_client, job)
    assert child != worker.pid

    os.kill(child, signal.SIGKILL)
    killed_at = time.monotonic()
    reaper = Reaper(interval=settings.JOBS_REAPER_INTERVAL_SECONDS)

    def succeeded() -> Job | None:
        reaper.tick_if_due()
        return Job.objects.filter(id=job.id, status=S.SUCCEEDED).first()

    done = wait_for(succeeded, timeout=60, interval=0.5, message="the job to run again and succeed")
    elapsed = time.monotonic() - killed_at

    assert elapsed < 60
    assert list(done.attempts.order_by("number").values_list("number", "outcome")) == [
        (1, JobAttempt.Outcome.LOST),
        (2, JobAttempt.Outcome.SUCCEEDED),
    ]
    assert counts(redis_client, job) == (2, 1)  # the killed body, then the one that finished
    assert worker.process.poll() is None  # the worker node lived on; only its child died
    print(f"killed child's job succeeded again {elapsed:.1f}s after the kill ({reaper.ticks} reaper ticks)")


def test_sigtermed_worker_finishes_its_long_job_exactly_once_while_the_reaper_ticks(start_worker, redis_client):
    # Leases of 3 s against a 10 s job: only a heartbeat that keeps going through the warm
    # shutdown keeps the reaper, ticking twice a second, from taking the attempt for lost.
    worker = start_worker(
        queues="default", name="deploying", extra_env={"JOBS_LEASE_SECONDS": "3", "JOBS_HEARTBEAT_SECONDS": "1"}
    )
    job = job_enqueue(job_type="tests.counted", payload={"seconds": 10}).job
    running_pid(redis_client, job)

    os.kill(worker.pid, signal.SIGTERM)  # to the main process only, as `docker stop` does
    reaper = Reaper(interval=0.5)

    def settled() -> Job | None:
        reaper.tick_if_due()
        return Job.objects.filter(id=job.id).exclude(status=S.RUNNING).first()

    done = wait_for(settled, timeout=40, interval=0.2, message="the job to finish")
    worker.process.wait(timeout=30)

    assert done.status == S.SUCCEEDED and done.attempt == 1
    assert list(done.attempts.values_list("number", "outcome")) == [(1, JobAttempt.Outcome.SUCCEEDED)]
    assert counts(redis_client, job) == (1, 1)
    assert reaper.ticks >= 15
    assert " ready." in worker.log() and "Warm shutdown" in worker.log()


@pytest.mark.django_db(transaction=True)
def test_job_page_shows_the_running_attempts_lease_in_a_real_browser(browser, live_server, redis_client):
    from django.contrib.auth.models import User
    from django.urls import reverse

    from jobs.core.lifecycle import job_start_attempt
    from tests.browser import DESKTOP, PHONE, admin_login, screenshot

    User.objects.create_superuser("ops", "ops@example.com", "pw-for-tests-only")
    job = job_enqueue(job_type="tests.counted").job
    job_start_attempt(job_id=job.id, attempt=1, worker="w1@host", celery_task_id=f"{job.id}.1")
    for name, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
        page = browser.new_page(viewport=viewport)
        try:
            admin_login(page, live_server.url, username="ops", password="pw-for-tests-only")
            page.goto(f"{live_server.url}{reverse('admin:jobs_job_change', args=[job.id])}")
            lease = page.locator(".field-lease_expires_at").inner_text()
            assert "Lease expires at" in lease and "renewed by the worker's heartbeat" in lease
            screenshot(page, f"job-lease-{name}")
        finally:
            page.close()
