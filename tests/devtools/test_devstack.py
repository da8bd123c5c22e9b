"""`make run` (devtools/devstack.py run): web, worker, beat and Flower come up; a stop signal leaves nothing behind."""

import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
from celery import Celery

from devtools.devstack import free_ports
from tests.processes import BASE_DIR

pytestmark = pytest.mark.worker

START_TIMEOUT = 120  # migrations on a fresh SQLite file plus five processes, on a loaded 2-core machine
STOP_TIMEOUT = 25  # idle workers stop at once (warm shutdown), the rest get 10 s before they are killed
# Settings the test's own environment may carry that would point the stack elsewhere.
INHERITED = {
    "REDIS_URL",
    "CELERY_BROKER_URL",
    "DJANGO_SETTINGS_MODULE",
    "DATABASE_URL",
    "EMBEDDED_REDIS_SERVER",
    "SUPPLIER_API_URL",
}


def proc_stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name: [state, ppid, ...]; None when gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def descendants(root: int) -> dict[int, str]:
    """Every live process under ``root``, as pid -> start time (to tell a reused pid apart)."""
    stats = {int(path.parent.name): proc_stat(int(path.parent.name)) for path in Path("/proc").glob("[0-9]*/stat")}
    children: dict[int, list[int]] = {}
    for pid, fields in stats.items():
        if fields:
            children.setdefault(int(fields[1]), []).append(pid)
    found, frontier = {}, [root]
    while frontier:
        for child in children.get(frontier.pop(), []):
            if child not in found:
                found[child] = stats[child][19]
                frontier.append(child)
    return found


def alive(pid: int, started_at: str) -> bool:
    fields = proc_stat(pid)
    return bool(fields) and fields[0] != "Z" and fields[19] == started_at


def command_line(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def role(pid: int) -> str | None:
    argv = command_line(pid)
    if argv and "redis-server" in argv[0]:  # redis rewrites its title: "<path>/redis-server 127.0.0.1:<port>"
        return "redis"
    return next(
        (
            name
            for name in ("runserver", "worker", "beat", "flower", "supplier_simulator", "emails.smtp_catcher")
            if name in argv
        ),
        None,
    )


def http_status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return None


def stored_result(database: Path, task_id: str) -> tuple[str, str] | None:
    """The worker's row in django-celery-results' table, read straight from the stack's SQLite file."""
    try:
        with sqlite3.connect(database, timeout=5) as connection:
            return connection.execute(
                "SELECT status, result FROM django_celery_results_taskresult WHERE task_id = ?", (task_id,)
            ).fetchone()
    except sqlite3.OperationalError:  # tables not migrated yet
        return None


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_run_brings_everything_up_and_a_signal_stops_every_process(tmp_path, stop_signal):
    web_port, flower_port, simulator_port, catcher_port = free_ports(4)
    database = tmp_path / "devstack.sqlite3"
    env = {key: value for key, value in os.environ.items() if key not in INHERITED}
    env.update(
        PORT=str(web_port), FLOWER_PORT=str(flower_port), DATABASE_URL=f"sqlite:///{database}",
        SUPPLIER_SIMULATOR_PORT=str(simulator_port), EMAIL_CATCHER_PORT=str(catcher_port),
        # A throwaway embedded Redis: never the append-only file of a developer's `make run`.
        EMBEDDED_REDIS_DIR=str(tmp_path / "redis"), PYTHONUNBUFFERED="1",
        DEVSTACK_RUN_ENV_FILE=str(tmp_path / "run.env"),
    )  # fmt: skip
    log = tmp_path / "devstack.log"
    with open(log, "wb") as out:
        stack = subprocess.Popen(
            [sys.executable, "devtools/devstack.py", "run"], cwd=BASE_DIR, env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    deadline = time.monotonic() + START_TIMEOUT
    started: dict[int, str] = {}
    probe = None

    def until(condition, what: str):
        while True:
            value = condition()
            if value:
                return value
            if stack.poll() is not None or time.monotonic() > deadline:
                state = f"exited with {stack.returncode}" if stack.poll() is not None else "still starting"
                pytest.fail(f"devstack {state} while waiting for {what}; its output:\n{log.read_text()[-6000:]}")
            time.sleep(0.5)

    try:
        printed = re.compile(r"redis\s+(redis://\S+) \(embedded\)")
        redis_url = until(lambda: (m := printed.search(log.read_text())) and m.group(1), "the addresses it prints")
        until(lambda: http_status(f"http://127.0.0.1:{web_port}/healthz") == 200, "web /healthz to answer 200")
        until(lambda: http_status(f"http://127.0.0.1:{flower_port}/healthcheck") == 200, "Flower to answer")
        # Not the current app (shared tasks in later tests would publish through it), no Django fixup.
        probe = Celery("probe", broker=redis_url, set_as_current=False, fixups=[])
        token = uuid.uuid4().hex
        task_id = probe.send_task("jobs.ping", kwargs={"value": token}, queue="default").id
        until(lambda: stored_result(database, task_id) == ("SUCCESS", f'"{token}"'), "the worker to run jobs.ping")
        # The housekeeping queue (relay, reaper, pruner, schedule triggers) has its own worker.
        task_id = probe.send_task("jobs.ping", kwargs={"value": token}, queue="housekeeping").id
        until(lambda: stored_result(database, task_id) == ("SUCCESS", f'"{token}"'), "the housekeeping worker")

        # A manage.py command run beside it, with no addresses of its own, reaches the same Redis and database.
        beside = {key: value for key, value in env.items() if key not in ("DATABASE_URL", "REDIS_URL")}
        shell = subprocess.run(
            [sys.executable, "manage.py", "shell", "-c",
             "from django.conf import settings; print(settings.REDIS_URL, settings.DATABASES['default']['NAME'])"],
            cwd=BASE_DIR, env=beside, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert shell.stdout.splitlines()[-1].split() == [redis_url, str(database)], shell.stderr[-3000:]

        started = descendants(stack.pid)
        assert {"redis", "runserver", "worker", "beat", "flower", "supplier_simulator", "emails.smtp_catcher"} <= {
            role(pid) for pid in started
        }

        stack.send_signal(stop_signal)

        try:
            returncode = stack.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            pytest.fail(f"devstack still running {STOP_TIMEOUT}s after {stop_signal.name}:\n{log.read_text()[-6000:]}")
        assert returncode == 0, log.read_text()[-6000:]
        assert not (tmp_path / "run.env").exists()  # a stopped stack leaves no addresses behind
        # A killed pool process can take a moment to die; none may stay.
        settle = time.monotonic() + 5
        while (left := [pid for pid, at in started.items() if alive(pid, at)]) and time.monotonic() < settle:
            time.sleep(0.1)
        assert not left, [(pid, command_line(pid)) for pid in left]
    finally:
        if probe is not None:
            probe.close()
        clean_up_after(stack, started)


COUNT_INTERRUPTS = """
import signal, sys, time
received = []
signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
open(sys.argv[1], "w").write("ready")
deadline = time.monotonic() + 3
while time.monotonic() < deadline and len(received) < 2:
    time.sleep(0.05)
time.sleep(0.5)  # room for a second, forwarded interrupt to arrive
open(sys.argv[1], "w").write(str(len(received)))
"""


def exec_env() -> dict[str, str]:
    # A REDIS_URL keeps exec from starting an embedded Redis: only signal handling is under test.
    return {**{k: v for k, v in os.environ.items() if k not in INHERITED}, "REDIS_URL": "redis://127.0.0.1:1/0"}


def wait_for_text(path: Path, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text():
            return path.read_text()
        time.sleep(0.05)
    raise AssertionError(f"{path} stayed empty for {timeout} s")


def test_exec_passes_one_ctrl_c_from_a_terminal_to_the_command(tmp_path):
    import pty

    report = tmp_path / "interrupts"
    argv = [sys.executable, str(BASE_DIR / "devtools" / "devstack.py"), "exec", "--", sys.executable, "-c",
            COUNT_INTERRUPTS, str(report)]  # fmt: skip
    env = exec_env()  # built before the fork: the child only calls execve
    pid, terminal = pty.fork()
    if pid == 0:  # the child: a session with the pty as its controlling terminal, as in a shell
        os.execve(sys.executable, argv, env)
    try:
        assert wait_for_text(report) == "ready"
        os.write(terminal, b"\x03")  # Ctrl-C: the terminal signals its whole foreground group
        assert wait_for_text_change(report, "ready") == "1"
    finally:
        os.close(terminal)
        os.waitpid(pid, 0)


def test_exec_passes_a_sigint_sent_to_it_alone_to_the_command(tmp_path):
    report = tmp_path / "interrupts"
    process = subprocess.Popen(
        [sys.executable, "devtools/devstack.py", "exec", "--", sys.executable, "-c", COUNT_INTERRUPTS, str(report)],
        cwd=BASE_DIR, env=exec_env(), stdin=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        assert wait_for_text(report) == "ready"
        process.send_signal(signal.SIGINT)
        assert wait_for_text_change(report, "ready") == "1"
        assert process.wait(timeout=30) == 0
    finally:
        process.kill()
        process.wait()


def wait_for_text_change(path: Path, old: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = path.read_text()
        if text and text != old:
            return text
        time.sleep(0.05)
    raise AssertionError(f"{path} still says {old!r} after {timeout} s")


def stack_row(database: Path, query: str, *args: object) -> tuple | None:
    """One row read straight from the stack's SQLite file (None until its tables exist)."""
    try:
        with sqlite3.connect(database, timeout=5) as connection:
            return connection.execute(query, args).fetchone()
    except sqlite3.OperationalError:
        return None


ENQUEUE_SLOW_EXPORT = """
from django.contrib.auth import get_user_model
from exports.services import ExportRequest, export_create
owner = get_user_model().objects.create_user("stopper", password="pw")
export, _ = export_create(owner=owner, wanted=ExportRequest(source="slow", format="csv",
                                                            filters={"rows": 1500, "delay_ms": 4}))
print("export", export.pk, export.job_id)
"""


def test_sigterm_lets_a_running_job_finish_before_the_stack_stops(tmp_path):
    """A stop is a deploy's warm shutdown: the worker finishes the job it runs, then everything is gone."""
    web_port, flower_port, simulator_port, catcher_port = free_ports(4)
    database = tmp_path / "devstack.sqlite3"
    env = {key: value for key, value in os.environ.items() if key not in INHERITED}
    env.update(
        PORT=str(web_port), FLOWER_PORT=str(flower_port), DATABASE_URL=f"sqlite:///{database}",
        SUPPLIER_SIMULATOR_PORT=str(simulator_port), EMAIL_CATCHER_PORT=str(catcher_port),
        EMBEDDED_REDIS_DIR=str(tmp_path / "redis"), PYTHONUNBUFFERED="1", DEVSTACK_RUN_ENV_FILE=str(tmp_path / "run.env"),
        MEDIA_ROOT=str(tmp_path / "media"), DEVSTACK_WORKER_STOP_GRACE_SECONDS="60",
        # A source that takes its time (tests/exports/slow_source.py): about 6 s for 1,500 rows.
        EXPORTS_SOURCES="tests.exports.slow_source.SlowRows",
    )  # fmt: skip
    log = tmp_path / "devstack.log"
    with open(log, "wb") as out:
        stack = subprocess.Popen(
            [sys.executable, "devtools/devstack.py", "run"], cwd=BASE_DIR, env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    deadline = time.monotonic() + START_TIMEOUT
    started: dict[int, str] = {}

    def until(condition, what: str, *, stack_may_exit: bool = False):
        while True:
            value = condition()
            if value:
                return value
            if (stack.poll() is not None and not stack_may_exit) or time.monotonic() > deadline:
                pytest.fail(f"{what}: not seen; devstack's output:\n{log.read_text()[-6000:]}")
            time.sleep(0.2)

    try:
        until(lambda: "Platform running" in log.read_text(), "the stack to start")
        until(lambda: http_status(f"http://127.0.0.1:{web_port}/healthz") == 200, "web /healthz to answer 200")
        enqueue = subprocess.run([sys.executable, "manage.py", "shell", "-c", ENQUEUE_SLOW_EXPORT], cwd=BASE_DIR,
                                 env=env, capture_output=True, text=True, timeout=60)  # fmt: skip
        assert enqueue.returncode == 0, enqueue.stderr[-3000:]
        _, export_id, job_id = enqueue.stdout.split()[-3:]
        # Rows are being written (the job is well under way, several seconds from its end).
        until(lambda: (row := stack_row(database, "SELECT row_count FROM exports_export WHERE id = ?", int(export_id)))
              and row[0] > 0, "the export to write rows")  # fmt: skip
        started = descendants(stack.pid)

        stack.send_signal(signal.SIGTERM)
        try:
            returncode = stack.wait(timeout=90)
        except subprocess.TimeoutExpired:
            pytest.fail(f"devstack still running 90 s after SIGTERM:\n{log.read_text()[-6000:]}")
        assert returncode == 0, log.read_text()[-6000:]

        job = stack_row(database, "SELECT status, attempt FROM jobs_job WHERE id = ?", job_id)
        outcomes = [row[0] for row in sqlite3.connect(database).execute(
            "SELECT outcome FROM jobs_jobattempt WHERE job_id = ? ORDER BY number", (job_id,))]  # fmt: skip
        export = stack_row(database, "SELECT status, row_count FROM exports_export WHERE id = ?", int(export_id))
        after = (job, outcomes, export)
        expected = (("succeeded", 1), ["succeeded"], ("succeeded", 1500))
        assert after == expected, f"after the stop: {after}; devstack's output:\n{log.read_text()[-4000:]}"
        assert "WorkerLostError" not in log.read_text()
        settle = time.monotonic() + 5
        while (left := [pid for pid, at in started.items() if alive(pid, at)]) and time.monotonic() < settle:
            time.sleep(0.1)
        assert not left, [(pid, command_line(pid)) for pid in left]
    finally:
        clean_up_after(stack, started)


def test_free_ports_are_distinct():
    # One after another, free_port() can repeat a port (it was let go); the stack's services then collide.
    ports = free_ports(64)
    assert len(set(ports)) == 64


def clean_up_after(stack: subprocess.Popen[bytes], started: dict[int, str]) -> None:
    """Whatever a test leaves: if devstack still runs (the test failed early), let it clean up, then make sure."""
    if stack.poll() is None:
        started.update(descendants(stack.pid))
        stack.terminate()
        try:
            stack.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(stack.pid, signal.SIGKILL)
            stack.wait()
    for pid, started_at in started.items():
        if alive(pid, started_at):
            os.kill(pid, signal.SIGKILL)
