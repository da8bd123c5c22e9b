"""`make run`'s stack (config/devstack.py run): everything comes up, and Ctrl-C / SIGTERM leaves nothing behind."""

import os
import re
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from celery import Celery

from tests.processes import BASE_DIR, wait_for

pytestmark = pytest.mark.worker


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def descendants(root: int) -> set[int]:
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    found, frontier = set(), {root}
    while frontier:
        children = {pid for pid, ppid in parents.items() if ppid in frontier} - found
        found |= children
        frontier = children
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def http_status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return None


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_run_brings_up_every_process_and_stops_them_all(tmp_path, stop_signal):
    web_port, flower_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "DJANGO_SETTINGS_MODULE"}}
    env.update(PORT=str(web_port), FLOWER_PORT=str(flower_port), DATABASE_URL=f"sqlite:///{tmp_path}/dev.sqlite3")
    log = tmp_path / "devstack.log"
    with open(log, "wb") as out:
        stack = subprocess.Popen([sys.executable, "config/devstack.py", "run"], cwd=BASE_DIR, env=env,
                                 stdout=out, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    try:
        redis_url = wait_for(
            lambda: (m := re.search(r"redis\s+(redis://\S+) \(embedded\)", log.read_text())) and m.group(1),
            timeout=120, interval=0.5, message="the stack to print its addresses",
        )  # fmt: skip
        wait_for(lambda: http_status(f"http://127.0.0.1:{web_port}/healthz") == 200, timeout=90, interval=0.5,
                 message="web /healthz")  # fmt: skip
        wait_for(lambda: http_status(f"http://127.0.0.1:{flower_port}/") in {200, 401}, timeout=90, interval=0.5,
                 message="Flower")  # fmt: skip
        probe = Celery(broker=redis_url)
        wait_for(lambda: probe.control.ping(timeout=1), timeout=60, interval=0.5, message="the worker to answer")
        assert any("beat" in Path(f"/proc/{pid}/cmdline").read_text(errors="replace") for pid in descendants(stack.pid) if alive(pid))
        started = descendants(stack.pid)
        assert len(started) >= 5  # redis, web, worker (+ pool), beat, flower

        stack.send_signal(stop_signal)

        assert stack.wait(timeout=40) == 0
        wait_for(lambda: not any(alive(pid) for pid in started), timeout=10, message="every child to exit")
    finally:
        if stack.poll() is None:
            os.killpg(stack.pid, signal.SIGKILL)
        for pid in descendants(stack.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
