"""What a long-lived process of this platform needs from its machine and its own forks.

- ``ProcessThread``: one daemon thread per process, started on demand. A prefork pool child inherits the
  object that owns the thread but not the thread itself, so it starts its own on first use.
- ``memory_tmp_dir``: ``/dev/shm`` where it is a writable directory (Linux, every Docker container), else None
  (the system's temporary directory). Files written on every job or request belong in memory: on a container's
  overlay filesystem a write can block a process (gunicorn's heartbeat, the metrics files).

Imports nothing of Django, so gunicorn's configuration may use it before the application is loaded.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

MEMORY_TMP = "/dev/shm"


def memory_tmp_dir() -> str | None:
    return MEMORY_TMP if os.path.isdir(MEMORY_TMP) and os.access(MEMORY_TMP, os.W_OK) else None


class ProcessThread:
    """A named daemon thread running ``target``, at most one alive per process."""

    def __init__(self, *, target: Callable[[], None], name: str) -> None:
        self._target = target
        self._name = name
        self._thread: threading.Thread | None = None
        self._pid: int | None = None

    def ensure_started(self) -> None:
        if self.is_alive():
            return
        self._pid = os.getpid()
        self._thread = threading.Thread(target=self._target, name=self._name, daemon=True)
        self._thread.start()

    def is_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and self._pid == os.getpid()

    def join(self, *, timeout: float) -> None:
        """Wait for this process's thread to end (a thread inherited from the parent is not ours to join)."""
        if self._thread is not None and self._pid == os.getpid():
            self._thread.join(timeout=timeout)
