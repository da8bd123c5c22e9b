"""End to end through real processes: broker -> worker -> result store, and beat -> worker."""

import pytest
from django_celery_beat.models import IntervalSchedule, PeriodicTask
from django_celery_results.models import TaskResult

from config.celery_app import app
from tests.processes import wait_for

pytestmark = pytest.mark.worker


def test_worker_runs_task_and_result_is_stored(start_worker):
    start_worker(queues="default")

    async_result = app.send_task("jobs.ping", kwargs={"value": "hello"})

    assert async_result.get(timeout=30) == "hello"
    stored = wait_for(
        lambda: TaskResult.objects.filter(task_id=async_result.id, status="SUCCESS").first(),
        timeout=10,
        message="the task result row",
    )
    assert stored.task_name == "jobs.ping"
    assert stored.result == '"hello"'


def test_beat_sends_periodic_task_through_database_scheduler(start_worker, start_beat):
    every_second, _ = IntervalSchedule.objects.get_or_create(every=1, period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.create(
        name="e2e ping", task="jobs.ping", interval=every_second, kwargs='{"value": "from-beat"}'
    )
    start_worker(queues="default")
    start_beat()

    stored = wait_for(
        lambda: TaskResult.objects.filter(
            task_name="jobs.ping", status="SUCCESS", periodic_task_name="e2e ping"
        ).first(),
        timeout=45,
        message="a result of the task beat sent",
    )
    assert stored.result == '"from-beat"'
    assert PeriodicTask.objects.get(name="e2e ping").total_run_count >= 1
