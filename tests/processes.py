"""Real Celery processes for tests: start, wait until ready, kill, stop."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from django.db import connection

BASE_DIR = Path(__file__).resolve().parent.parent


def database_url_for_subprocess() -> str:
    """A DATABASE_URL that points a child process at the current test database."""
    cfg = connection.settings_dict
    if cfg["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{Path(cfg['NAME']).resolve()}"
    user = cfg.get("USER") or ""
    password = f":{cfg['PASSWORD']}" if cfg.get("PASSWORD") else ""
    auth = f"{user}{password}@" if user else ""
    host = cfg.get("HOST") or "127.0.0.1"
    port = f":{cfg['PORT']}" if cfg.get("PORT") else ""
    return f"postgres://{auth}{host}{port}/{cfg['NAME']}"


def wait_for(condition: Callable[[], object], *, timeout: float, interval: float = 0.1, message: str = "condition"):
    """Poll ``condition`` until it returns a truthy value or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


def run_django_snippet(code: str, *, env: dict[str, str], timeout: float = 60) -> str:
    """Run Python ``code`` in a fresh process with Django set up; return its stdout (fails loudly)."""
    script = "import django\ndjango.setup()\n" + code
    completed = subprocess.run(
        [sys.executable, "-c", script], cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=timeout
    )
    if completed.returncode != 0:
        raise AssertionError(
            f"snippet failed ({completed.returncode}):\n{completed.stdout}\n{completed.stderr[-4000:]}"
        )
    return completed.stdout


class CeleryProcess:
    def __init__(self, *, name: str, argv: list[str], env: dict[str, str], log_path: Path):
        self.name = name
        self.argv = argv
        self.env = env
        self.log_path = log_path
        self.process: subprocess.Popen | None = None
        self._log_file = None

    @classmethod
    def worker(
        cls, *, name: str, queues: str, concurrency: int, env: dict[str, str], log_path: Path, include: str = ""
    ):
        argv = [
            sys.executable, "-m", "celery", "-A", "config", "worker",
            "-Q", queues, "--concurrency", str(concurrency), "-P", "prefork",
            "-n", f"{name}@%h", "--without-gossip", "--without-mingle", "-l", "info",
        ]  # fmt: skip
        if include:
            argv += ["--include", include]
        return cls(name=name, argv=argv, env=env, log_path=log_path)

    @classmethod
    def beat(cls, *, name: str, env: dict[str, str], log_path: Path):
        schedule = log_path.with_suffix(".schedule")
        argv = [
            sys.executable, "-m", "celery", "-A", "config", "beat", "-l", "info",
            "--max-interval", "1", "-s", str(schedule), "--pidfile=",
        ]  # fmt: skip
        return cls(name=name, argv=argv, env=env, log_path=log_path)

    def start(self) -> None:
        self._log_file = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            self.argv, cwd=BASE_DIR, env=self.env, stdout=self._log_file, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_ready(self, timeout: float = 60, *, app=None) -> None:
        """Wait for the worker's "ready" log line, or (with ``app``, when logging is quiet) a ping reply."""
        node = f"{self.name}@{socket.gethostname()}"

        def ready() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(f"{self.name} exited with {self.process.returncode}:\n{self.log()[-4000:]}")
            if app is not None:
                return bool(app.control.ping(destination=[node], timeout=0.5))
            return " ready." in self.log()

        wait_for(ready, timeout=timeout, message=f"{self.name} to be ready")

    @property
    def pid(self) -> int:
        return self.process.pid

    def kill_group(self, signum: int = signal.SIGKILL) -> None:
        """Signal the whole process group (the main process and its pool children)."""
        if self.process and self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signum)
            except ProcessLookupError:
                pass

    def stop(self, timeout: float = 15) -> None:
        if not self.process:
            return
        if self.process.poll() is None:
            self.kill_group(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        # Whatever is left of the group (pool children) goes now.
        self.kill_group(signal.SIGKILL)
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.process.wait()
        if self._log_file:
            self._log_file.close()
