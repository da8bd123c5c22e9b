"""The worker side of attempt leases: one heartbeat thread per worker process renews the leases of
the attempts that process is running.

The thread lives as long as the process, so it keeps renewing while a worker in warm shutdown
(SIGTERM) finishes its jobs: a deploy never lets a running attempt's lease run out. A process
killed outright (SIGKILL, the hard time limit, the OOM killer) stops renewing, its leases run
out within ``JOBS_LEASE_SECONDS``, and the reaper rescues the attempts.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings
from django.db import DatabaseError, connection

from jobs.core.lifecycle import job_renew_leases
from jobs.foundation.processes import ProcessThread

logger = logging.getLogger("jobs.leases")


def heartbeat_seconds() -> float:
    return float(getattr(settings, "JOBS_HEARTBEAT_SECONDS", 5))


class LeaseKeeper:
    """Attempts this process runs, and the thread that renews their leases."""

    def __init__(self) -> None:
        self._held: dict[str, int] = {}
        self._lock = threading.Lock()
        self._heartbeat = ProcessThread(target=self._run, name="jobs-lease-heartbeat")

    @contextmanager
    def hold(self, *, job_id: str, attempt: int) -> Iterator[None]:
        """Renew the lease of ``attempt`` of ``job_id`` while the block runs."""
        with self._lock:
            self._held[job_id] = attempt
            self._heartbeat.ensure_started()
        try:
            yield
        finally:
            with self._lock:
                if self._held.get(job_id) == attempt:
                    del self._held[job_id]

    def held(self) -> dict[str, int]:
        with self._lock:
            return dict(self._held)

    def _run(self) -> None:
        stop = threading.Event()  # never set: the thread ends with its process
        while not stop.wait(heartbeat_seconds()):
            self.renew_once()

    def renew_once(self) -> int:
        """One heartbeat: renew every held lease. A database error is logged; the next beat tries again."""
        held = self.held()
        try:
            if not held:
                connection.close()  # an idle worker holds no database connection for its heartbeat
                return 0
            renewed = job_renew_leases(attempts=held)
            if renewed < len(held):
                logger.warning("renewed %d of %d lease(s): the others' jobs moved on", renewed, len(held))
            return renewed
        except DatabaseError:
            logger.exception("could not renew %d lease(s); trying again in %.0fs", len(held), heartbeat_seconds())
            connection.close()  # the next beat starts on a fresh connection
            return 0


keeper = LeaseKeeper()
