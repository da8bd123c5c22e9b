"""The web service as compose runs it (gunicorn, several workers): /metrics sums every worker's samples."""

from __future__ import annotations

import subprocess
import sys
import urllib.request

import pytest

from tests.jobs.metrics_helpers import free_port, scrape, value
from tests.processes import BASE_DIR, wait_for


@pytest.fixture
def gunicorn(subprocess_env, tmp_path):
    port = free_port()
    env = {**subprocess_env, "METRICS_TOKEN": "gunicorn-test", "ALLOWED_HOSTS": "127.0.0.1"}
    log = open(tmp_path / "gunicorn.log", "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "config.wsgi:application", "--bind", f"127.0.0.1:{port}", "--workers", "3",
         "--config", "python:config.gunicorn"],
        cwd=BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip

    def healthy() -> bool:
        assert process.poll() is None, (tmp_path / "gunicorn.log").read_text()[-3000:]
        try:
            return urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2).status == 200
        except OSError:
            return False

    wait_for(healthy, timeout=60, interval=0.3, message="gunicorn to answer")
    yield f"http://127.0.0.1:{port}"
    process.terminate()
    process.wait(timeout=20)
    log.close()


def test_every_scrape_sums_all_gunicorn_workers(gunicorn, redis_client):
    for _ in range(30):
        with urllib.request.urlopen(f"{gunicorn}/api/openapi.json", timeout=10) as response:
            assert response.status == 200
    # Whichever worker answers the scrape, it reads every worker's file: always 30.
    for _ in range(6):
        text = scrape(f"{gunicorn}/metrics", token="gunicorn-test")
        assert value(text, "jobs_http_requests_total", route="/api/openapi.json", method="GET", status="200") == 30
        assert value(text, "jobs_database_up") == 1
