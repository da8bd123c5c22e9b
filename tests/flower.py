"""A real Flower for tests: start it on a free port, read its task list, wait until it shows a job's attempt."""

from __future__ import annotations

import json
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from devtools.devstack import free_port
from jobs.delivery.enqueue import job_enqueue
from jobs.models import Job
from tests.processes import CeleryProcess, wait_for


def flower_tasks(port: int) -> dict[str, dict[str, Any]]:
    """Flower's /api/tasks (what its task list page draws), {} while it does not answer."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/tasks", timeout=2) as response:
            tasks: dict[str, dict[str, Any]] = json.loads(response.read())
            return tasks
    except OSError:
        return {}


@contextmanager
def running_flower(subprocess_env: dict[str, str], tmp_path: Path) -> Iterator[int]:
    """A Flower listening on a free port (yielded), stopped afterwards."""
    port = free_port()
    flower = CeleryProcess(
        name="flower",
        argv=[sys.executable, "-m", "celery", "-A", "config", "flower", f"--port={port}", "--address=127.0.0.1"],
        env={**subprocess_env, "FLOWER_UNAUTHENTICATED_API": "true"}, log_path=tmp_path / "flower.log",
    )  # fmt: skip
    flower.start()
    try:
        wait_for(lambda: flower.log() and "Visit me at" in flower.log(), timeout=30, message="Flower to listen")
        yield port
    finally:
        flower.stop()


def wait_until_flower_lists_a_job(port: int, *, timeout: float = 30) -> None:
    """Workers send task events only once Flower has switched them on (CELERY_WORKER_SEND_TASK_EVENTS is off;
    Flower sends enable_events every 5 s): until then a task leaves no trace in Flower. Probe until one does."""
    probes: list[Job] = []

    def flower_lists_a_probe() -> bool:
        tasks = flower_tasks(port)
        if any(tasks.get(f"{probe.id}.1", {}).get("state") == "SUCCESS" for probe in probes):
            return True
        if not probes or Job.objects.filter(id=probes[-1].id, status=Job.Status.SUCCEEDED).exists():
            probes.append(job_enqueue(job_type="tests.noop", payload={}).job)
        return False

    wait_for(flower_lists_a_probe, timeout=timeout, interval=0.5, message="Flower to list a job's attempt")
