"""Metrics from real worker processes: prefork children summed, recycled children's counts kept."""

from __future__ import annotations

import os

import pytest
from django.test import override_settings

from jobs.delivery.enqueue import job_bulk_enqueue, job_enqueue
from jobs.models import Job
from tests.jobs.metrics_helpers import free_port, scrape, value
from tests.processes import CeleryProcess, wait_for

pytestmark = pytest.mark.worker
S = Job.Status


@pytest.fixture
def metrics_worker(subprocess_env, redis_client, tmp_path):
    """A worker whose main process serves its service's metrics, children recycled every 3 tasks."""
    started: list[CeleryProcess] = []

    def _start(*, concurrency: int = 2, max_tasks_per_child: int = 3, name: str = "metricsworker"):
        port = free_port()
        metrics_dir = tmp_path / f"{name}-metrics"
        metrics_dir.mkdir()
        # A stale file from an earlier run of the service: worker_init must empty the directory.
        (metrics_dir / "counter_999999.db").write_bytes(b"stale")
        env = {**subprocess_env, "JOBS_WORKER_METRICS_PORT": str(port), "JOBS_WORKER_METRICS_ADDR": "127.0.0.1",
               "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}  # fmt: skip
        process = CeleryProcess.worker(
            name=name, queues="default", concurrency=concurrency, env=env, log_path=tmp_path / f"{name}.log",
            include="tests.jobs.jobtypes",
        )  # fmt: skip
        process.argv += ["--max-tasks-per-child", str(max_tasks_per_child)]
        started.append(process)
        process.start()
        process.wait_ready()
        process.metrics_url = f"http://127.0.0.1:{port}/metrics"  # type: ignore[attr-defined]
        process.metrics_dir = metrics_dir  # type: ignore[attr-defined]
        return process

    yield _start
    for process in started:
        process.stop()


def test_worker_metrics_sum_prefork_children_and_keep_recycled_ones(metrics_worker):
    worker = metrics_worker(concurrency=2, max_tasks_per_child=3)
    assert not (worker.metrics_dir / "counter_999999.db").exists()
    jobs = [result.job for result in job_bulk_enqueue(job_type="tests.noop", payloads=[{}] * 20)]
    failing = job_enqueue(job_type="tests.bug").job

    wait_for(
        lambda: Job.objects.filter(id__in=[job.id for job in jobs], status=S.SUCCEEDED).count() == 20
        and Job.objects.filter(id=failing.id, status=S.FAILED).exists(),
        timeout=90, message="20 noop jobs and one failing job to finish",
    )  # fmt: skip
    text = wait_for(
        lambda: (body := scrape(worker.metrics_url))
        and value(body, "job_attempts_total", type="tests.noop", outcome="succeeded") == 20
        and body,
        timeout=10, message="the worker's endpoint to count 20 successes",
    )  # fmt: skip

    # 21 tasks, 3 per child: at least 7 child processes recorded, each in its own file, all summed.
    pids = {name.split("_")[-1] for name in os.listdir(worker.metrics_dir) if name.startswith("counter_")}
    assert len(pids) >= 7, pids
    assert value(text, "job_attempts_total", type="tests.bug", outcome="failed") == 1
    assert value(text, "job_run_seconds_count", type="tests.noop") == 20
    assert value(text, "job_run_seconds_bucket", type="tests.noop", le="1800.0") == 20
    assert value(text, "job_queue_wait_seconds_count", type="tests.noop", queue="default") == 20
    assert value(text, "jobs_worker_consuming_queue", queue="default") == 1


@override_settings(METRICS_TOKEN="s3cret")
def test_web_metrics_after_jobs_ran(client, metrics_worker):
    metrics_worker(concurrency=1)
    before = client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret").content.decode()
    enqueued_before = value(before, "jobs_enqueued_total", type="jobs.canary", queue="default") or 0
    job = job_enqueue(job_type="jobs.canary", payload={"fail_first": 3}).job  # 3 attempts: dead
    wait_for(lambda: Job.objects.filter(id=job.id, status=S.DEAD).exists(), timeout=60, message="canary to die")

    response = client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret")

    assert response.status_code == 200
    text = response.content.decode()
    # This process's counters carry earlier tests' counts: the increase is what this test did.
    assert value(text, "jobs_enqueued_total", type="jobs.canary", queue="default") == enqueued_before + 1
    assert value(text, "jobs_current", status="dead") == 1
    assert value(text, "jobs_dead_letter_queue_size") == 1
    assert value(text, "jobs_database_up") == 1
    assert value(text, "jobs_broker_up") == 1
    assert value(text, "jobs_queue_due", queue="default") == 0
    assert value(text, "jobs_queue_broker_depth", queue="default") == 0
