"""End to end through real processes: broker -> worker -> result store, and beat -> worker."""

import socket
import threading

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


def test_task_events_are_off_until_flower_asks_then_flow(start_worker):
    # Events are off by default (config/settings/base.py); Flower sends enable_events to every
    # worker it sees, which is what this test does, and then reads task-succeeded events.
    worker = start_worker(queues="default")
    node = f"{worker.name}@{socket.gethostname()}"
    running_conf = app.control.inspect([node], timeout=5).conf(with_defaults=True)[node]
    assert running_conf["worker_send_task_events"] is False
    seen: list[str] = []
    sent: list[str] = []
    with app.connection_for_read() as connection:
        receiver = app.events.Receiver(
            connection, handlers={"task-succeeded": lambda event: seen.append(event["uuid"])}
        )
        listener = threading.Thread(target=receiver.capture, kwargs={"limit": None, "wakeup": False}, daemon=True)
        listener.start()
        try:
            replies = app.control.enable_events(destination=[node], reply=True, timeout=5)
            assert replies and "enabled" in str(replies[0]), replies

            def an_event_arrived() -> bool:
                # Each try sends one more ping: the receiver may subscribe after the first ones ran.
                result = app.send_task("jobs.ping", kwargs={"value": "seen"})
                assert result.get(timeout=30) == "seen"
                sent.append(result.id)
                return any(task_id in seen for task_id in sent)

            wait_for(an_event_arrived, timeout=30, interval=0.5, message="a task-succeeded event after enable_events")
        finally:
            receiver.should_stop = True
            listener.join(5)
