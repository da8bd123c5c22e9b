"""Celery's view of each attempt (stored result rows, task events, so Flower) matches the attempt's outcome."""

from __future__ import annotations

import json

import pytest
from django_celery_results.models import TaskResult

from jobs.delivery.enqueue import job_enqueue
from jobs.models import Job
from tests.flower import flower_tasks, running_flower, wait_until_flower_lists_a_job
from tests.processes import wait_for

pytestmark = pytest.mark.worker
S = Job.Status


def test_result_rows_and_flower_count_dead_attempts_as_failed(start_worker, subprocess_env, tmp_path):
    with running_flower(subprocess_env, tmp_path) as port:
        start_worker(queues="default", concurrency=2)
        wait_until_flower_lists_a_job(port)
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
