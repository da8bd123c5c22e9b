"""Celery's view of each attempt (stored result rows, task events, so Flower) matches the attempt's outcome."""

from __future__ import annotations

import json
import socket
import sys
import urllib.request

import pytest
from django_celery_results.models import TaskResult

from jobs.delivery.enqueue import job_enqueue
from jobs.models import Job
from tests.processes import CeleryProcess, wait_for

pytestmark = pytest.mark.worker
S = Job.Status


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def flower_tasks(port: int) -> dict[str, dict]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/tasks", timeout=2) as response:
            return json.loads(response.read())
    except OSError:
        return {}


def test_result_rows_and_flower_count_dead_attempts_as_failed(start_worker, subprocess_env, tmp_path):
    port = free_port()
    flower = CeleryProcess(
        name="flower",
        argv=[sys.executable, "-m", "celery", "-A", "config", "flower", f"--port={port}", "--address=127.0.0.1"],
        env={**subprocess_env, "FLOWER_UNAUTHENTICATED_API": "true"}, log_path=tmp_path / "flower.log",
    )  # fmt: skip
    flower.start()
    try:
        wait_for(lambda: flower.log() and "Visit me at" in flower.log(), timeout=30, message="Flower to listen")
        start_worker(queues="default", concurrency=2)
        # Workers send task events only once Flower has switched them on (CELERY_WORKER_SEND_TASK_EVENTS is off;
        # Flower sends enable_events every 5 s): until then a task leaves no trace in Flower. Probe until one does.
        probes: list[Job] = []

        def flower_sees_events() -> bool:
            tasks = flower_tasks(port)
            if any(tasks.get(f"{probe.id}.1", {}).get("state") == "SUCCESS" for probe in probes):
                return True
            if not probes or Job.objects.filter(id=probes[-1].id, status=S.SUCCEEDED).exists():
                probes.append(job_enqueue(job_type="tests.noop", payload={}).job)
            return False

        wait_for(flower_sees_events, timeout=30, interval=0.5, message="Flower to switch the worker's task events on")
        succeeded = job_enqueue(job_type="tests.noop", payload={}).job
        retried = job_enqueue(job_type="tests.connection_flaky", payload={"fail_first": 1}).job
        dead = job_enqueue(job_type="tests.always_fails", payload={}).job
        for job in (succeeded, retried, dead):
            wait_for(lambda job=job: Job.objects.filter(id=job.id, status__in=[S.SUCCEEDED, S.DEAD]).exists(),
                     timeout=60, message=f"{job.type} to finish")  # fmt: skip

        # The stored result rows (django-celery-results), one per attempt.
        states = dict(TaskResult.objects.filter(task_name__startswith="tests.").values_list("task_id", "status"))
        assert states[f"{succeeded.id}.1"] == "SUCCESS"
        assert (states[f"{retried.id}.1"], states[f"{retried.id}.2"]) == ("RETRY", "SUCCESS")
        assert [states[f"{dead.id}.{n}"] for n in (1, 2, 3)] == ["RETRY", "RETRY", "FAILURE"]
        dead_row = TaskResult.objects.get(task_id=f"{dead.id}.3")
        assert "TransientJobError" in dead_row.traceback and json.loads(dead_row.result)["outcome"] == "dead"

        # Flower, from the workers' task events: the dead job's last attempt is a failure.
        expected = {f"{succeeded.id}.1": "SUCCESS", f"{retried.id}.1": "RETRY", f"{retried.id}.2": "SUCCESS",
                    f"{dead.id}.2": "RETRY", f"{dead.id}.3": "FAILURE"}  # fmt: skip

        def flower_agrees() -> bool:
            tasks = flower_tasks(port)
            return all(tasks.get(task_id, {}).get("state") == state for task_id, state in expected.items())

        wait_for(flower_agrees, timeout=30, message=f"Flower to report {expected}, has {flower_tasks(port)}")
        assert "always fails (attempt 3)" in flower_tasks(port)[f"{dead.id}.3"]["exception"]
    finally:
        flower.stop()
