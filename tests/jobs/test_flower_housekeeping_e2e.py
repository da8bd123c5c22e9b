"""Flower lists real jobs, not housekeeping (issue 29, defect 10): with a real worker on every queue, a real
beat firing the relay every second and a real Flower, the relay's runs leave no task in Flower's list (neither
the worker's received/started/succeeded events nor beat's task-sent), while a job's attempt is there.

No browser: Flower's task list page is drawn from the same /api/tasks read here."""

from __future__ import annotations

import sys

import pytest
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from jobs.delivery.enqueue import job_enqueue
from jobs.delivery.schedules import schedules_sync
from jobs.models import Job
from tests.jobs.test_celery_state_e2e import flower_tasks, free_port
from tests.processes import CeleryProcess, wait_for

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]
S = Job.Status
HOUSEKEEPING = ("jobs.relay_unpublished", "jobs.rescue_orphans", "jobs.prune_finished", "jobs.run_schedule")


def test_flower_shows_jobs_and_no_housekeeping(start_worker, start_beat, subprocess_env, tmp_path):
    schedules_sync()
    every_second, _ = IntervalSchedule.objects.get_or_create(every=1, period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.filter(name="jobs.relay_unpublished").update(interval=every_second)
    port = free_port()
    flower = CeleryProcess(
        name="flower",
        argv=[sys.executable, "-m", "celery", "-A", "config", "flower", f"--port={port}", "--address=127.0.0.1"],
        env={**subprocess_env, "FLOWER_UNAUTHENTICATED_API": "true"}, log_path=tmp_path / "flower.log",
    )  # fmt: skip
    flower.start()
    try:
        wait_for(lambda: flower.log() and "Visit me at" in flower.log(), timeout=30, message="Flower to listen")
        worker = start_worker(queues="default,housekeeping", concurrency=1)
        start_beat(extra_env={"JOBS_RELAY_INTERVAL_SECONDS": "1"})
        probes: list[Job] = []

        def flower_lists_a_job() -> bool:
            tasks = flower_tasks(port)
            if any(tasks.get(f"{probe.id}.1", {}).get("state") == "SUCCESS" for probe in probes):
                return True
            if not probes or Job.objects.filter(id=probes[-1].id, status=S.SUCCEEDED).exists():
                probes.append(job_enqueue(job_type="tests.noop", payload={}).job)
            return False

        wait_for(flower_lists_a_job, timeout=40, interval=0.5, message="Flower to list a job's attempt")
        # The relay ran (several times) while Flower was listening to the worker's events.
        wait_for(lambda: worker.log().count("jobs.relay_unpublished") >= 6, timeout=30, message="the relay to run")
        names = sorted({task.get("name") or "" for task in flower_tasks(port).values()})
        assert not [name for name in names if name in HOUSEKEEPING], f"Flower lists {names}"
    finally:
        flower.stop()
