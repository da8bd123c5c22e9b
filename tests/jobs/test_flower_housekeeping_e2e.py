"""Flower lists real jobs, not housekeeping (issue 29, defect 10): with a real worker on every queue, a real
beat firing the relay every second and a real Flower, the relay's runs leave no task in Flower's list (neither
the worker's received/started/succeeded events nor beat's task-sent), while a job's attempt is there.

No browser: Flower's task list page is drawn from the same /api/tasks read here."""

from __future__ import annotations

import pytest
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from jobs.delivery.schedules import schedules_sync
from jobs.models import Job
from tests.flower import flower_tasks, running_flower, wait_until_flower_lists_a_job
from tests.processes import wait_for

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]
S = Job.Status
HOUSEKEEPING = (
    "jobs.relay_unpublished",
    "jobs.publish_due",
    "jobs.rescue_orphans",
    "jobs.prune_finished",
    "jobs.run_schedule",
)


def test_flower_shows_jobs_and_no_housekeeping(start_worker, start_beat, subprocess_env, tmp_path):
    schedules_sync()
    every_second, _ = IntervalSchedule.objects.get_or_create(every=1, period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.filter(name="jobs.relay_unpublished").update(interval=every_second)
    with running_flower(subprocess_env, tmp_path) as port:
        worker = start_worker(queues="default,housekeeping", concurrency=1)
        start_beat(extra_env={"JOBS_RELAY_INTERVAL_SECONDS": "1"})
        wait_until_flower_lists_a_job(port, timeout=40)
        # The relay ran (several times) while Flower was listening to the worker's events.
        wait_for(lambda: worker.log().count("jobs.relay_unpublished") >= 6, timeout=30, message="the relay to run")
        names = sorted({task.get("name") or "" for task in flower_tasks(port).values()})
        assert not [name for name in names if name in HOUSEKEEPING], f"Flower lists {names}"
