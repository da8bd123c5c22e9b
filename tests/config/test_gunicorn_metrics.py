"""The web service as compose runs it (gunicorn, several workers): /metrics sums every worker's samples."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import psutil
import pytest

from tests.jobs.metrics_helpers import free_port, scrape, value
from tests.peers import require_writable_directory
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
    yield f"http://127.0.0.1:{port}", process.pid
    process.terminate()
    process.wait(timeout=20)
    log.close()


def test_every_scrape_sums_all_gunicorn_workers(gunicorn, redis_client):
    gunicorn, _master = gunicorn
    for _ in range(30):
        with urllib.request.urlopen(f"{gunicorn}/api/openapi.json", timeout=10) as response:
            assert response.status == 200
    # Whichever worker answers the scrape, it reads every worker's file: always 30.
    for _ in range(6):
        text = scrape(f"{gunicorn}/metrics", token="gunicorn-test")
        assert value(text, "jobs_http_requests_total", route="/api/openapi.json", method="GET", status="200") == 30
        assert value(text, "jobs_database_up") == 1


def open_files(pid: int) -> list[str]:
    """What ``pid``'s descriptors point at; one closed between listing and reading (a finished request's socket)
    is skipped."""
    paths = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(FileNotFoundError):
            paths.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
    return paths


def test_workers_write_their_heartbeat_and_metrics_files_in_memory(gunicorn, redis_client):
    # Both are written on every request: memory, not a disk-backed /tmp (config/gunicorn.py says why).
    require_writable_directory("/dev/shm", what="a writable /dev/shm (shared memory)",
                               install="mount -t tmpfs tmpfs /dev/shm (in a container: drop --ipc=none)")  # fmt: skip
    url, master = gunicorn
    for _ in range(12):
        with urllib.request.urlopen(f"{url}/api/openapi.json", timeout=10) as response:
            assert response.status == 200
    workers = psutil.Process(master).children()
    assert len(workers) == 3
    metrics = set()
    for worker in workers:
        files = open_files(worker.pid)
        heartbeats = [path for path in files if "wgunicorn-" in path]
        assert heartbeats and all(path.startswith("/dev/shm/") for path in heartbeats), files
        maps = Path(f"/proc/{worker.pid}/maps").read_text().splitlines()
        metrics |= {line.split()[-1] for line in maps if line.endswith(f"_{worker.pid}.db")}  # its own files
    # The workers that served a request have mapped their metrics files: all in one directory in memory.
    assert metrics and all(path.startswith("/dev/shm/jobplatform-web-metrics-") for path in metrics), metrics


def test_a_metrics_directory_gunicorn_made_itself_is_removed_when_it_stops(subprocess_env, tmp_path):
    # Unset PROMETHEUS_MULTIPROC_DIR (make run, tests): the master makes one, in memory, and must not leave it.
    port = free_port()
    env = {key: value for key, value in subprocess_env.items()
           if key not in ("PROMETHEUS_MULTIPROC_DIR", "JOBS_METRICS_PRIVATE_DIR")}  # fmt: skip
    env["METRICS_TOKEN"] = "gunicorn-test"
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "config.wsgi:application", "--bind", f"127.0.0.1:{port}", "--workers", "2",
         "--config", "python:config.gunicorn"],
        cwd=BASE_DIR, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:

        def answered() -> bool:
            try:
                return urllib.request.urlopen(f"http://127.0.0.1:{port}/api/openapi.json", timeout=2).status == 200
            except OSError:
                return False

        wait_for(answered, timeout=60, interval=0.3, message="gunicorn to answer")  # the worker records its metrics
        directories = set().union(*(_metrics_dirs_of(worker.pid) for worker in psutil.Process(process.pid).children()))
        (directory,) = directories
        assert Path(directory).is_dir() and directory.startswith("/dev/shm/") == os.access("/dev/shm", os.W_OK)
    finally:
        process.terminate()
        process.wait(timeout=20)
    assert not Path(directory).exists()


def _metrics_dirs_of(pid: int) -> set[str]:
    """The web metrics directories whose files process ``pid`` has open or mapped."""
    paths = open_files(pid)
    paths += [line.split()[-1] for line in Path(f"/proc/{pid}/maps").read_text().splitlines()]
    return {os.path.dirname(path) for path in paths if "jobplatform-web-metrics-" in path}
