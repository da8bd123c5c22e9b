"""The worker probe (compose's worker healthcheck): a real worker, pinged over the real broker."""

import json
import subprocess
import sys

import pytest
from django.db import OperationalError

from jobs.foundation.dbresilience import report_database_failure
from tests.processes import BASE_DIR

pytestmark = pytest.mark.worker


def probe(node: str, env: dict[str, str]) -> tuple[int, dict, str]:
    completed = subprocess.run(
        [sys.executable, "manage.py", "jobs_worker_probe", "--node", node, "--timeout", "2"],
        cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    return completed.returncode, json.loads(completed.stdout.strip().splitlines()[-1]), completed.stderr


def test_probe_passes_for_a_live_worker_and_names_what_fails(start_worker, subprocess_env):
    start_worker(queues="default", name="probed")

    code, body, _ = probe("probed@%h", subprocess_env)  # %h: this host, as `celery worker -n` expands it
    assert (code, body["status"]) == (0, "ok")
    assert body["checks"] == {"database": "ok", "broker": "ok", "ping": "ok", "worker_database": "ok"}

    code, body, stderr = probe("nobody@%h", subprocess_env)
    assert code == 1 and "did not answer a ping" in body["checks"]["ping"] and "ping:" in stderr

    # One of its pool processes cannot reach the database: the worker is not ready.
    report_database_failure(
        OperationalError("server closed the connection"), hostname=body["node"].replace("nobody", "probed")
    )
    code, body, _ = probe("probed@%h", subprocess_env)
    assert code == 1 and "OperationalError: server closed the connection" in body["checks"]["worker_database"]


def test_probe_fails_when_the_broker_is_down(subprocess_env, embedded_redis_factory):
    broker = embedded_redis_factory()
    broker.stop()

    code, body, _ = probe("probed@%h", {**subprocess_env, "REDIS_URL": broker.url})

    assert code == 1 and body["checks"]["broker"].startswith("broker unreachable")
