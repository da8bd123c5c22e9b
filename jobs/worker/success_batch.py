"""Write-behind of successes in a worker process: one statement for the successes of a few milliseconds.

Every tracked job that succeeds writes its outcome (job row, attempt row, Celery result row). Written one
job at a time, that statement and its round trip were about a third of a worker process' busy time per
job (bench/README.md, jobs_throughput). Here a worker process hands the success to a writer thread and
returns at once; the thread writes what gathered in ``JOBS_SUCCESS_BATCH_MS`` (or
``JOBS_SUCCESS_BATCH_SIZE`` successes, whichever comes first) in one statement, while the process is
already claiming its next job.

Only a success whose completion is already in Redis (``jobs.core.completions``) is deferred, and only in a
prefork pool process (``worker_process_init``). That record is what makes the lag safe: if the
process dies before the thread wrote the batch, or the write fails, the job's lease runs out and the
reaper finishes the job as succeeded from its record instead of running it again. Until the batch is
written, the job reads ``running`` (a few milliseconds), and its Celery result row is written with it,
so ``AsyncResult.get()`` does not return before the job reads ``succeeded``. A process that shuts down
writes what it holds first (``worker_process_shutdown``).
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from celery.signals import worker_process_init, worker_process_shutdown
from django.conf import settings
from django.db import DatabaseError, connection

from jobs.core.lifecycle import SucceededAttempt, job_succeed_many
from jobs.foundation.processes import ProcessThread
from jobs.models import Job

logger = logging.getLogger("jobs.run")

# An idle writer closes its database connection after this long without successes.
IDLE_CLOSE_SECONDS = 5.0
WRITE_TRIES = 3


def batch_seconds() -> float:
    return max(0.0, float(getattr(settings, "JOBS_SUCCESS_BATCH_MS", 20))) / 1000


def batch_size() -> int:
    return max(1, int(getattr(settings, "JOBS_SUCCESS_BATCH_SIZE", 100)))


@dataclass(frozen=True)
class PendingSuccess:
    job: Job
    finished_at: datetime
    result: Any

    def as_attempt(self) -> SucceededAttempt:
        return SucceededAttempt(job=self.job, finished_at=self.finished_at, result=self.result)


class SuccessWriter:
    """The successes this process has not written yet, and the thread that writes them."""

    def __init__(self) -> None:
        self._pending: list[PendingSuccess] = []
        self._writing = 0  # successes taken by the thread and not yet written
        self._changed = threading.Condition()
        self._thread = ProcessThread(target=self._run, name="jobs-success-writer")
        self._enabled_in: int | None = None  # the pid of the pool process that switched it on

    def enable(self) -> None:
        """Defer successes in this process from now on (a prefork pool process, after the fork)."""
        self._enabled_in = os.getpid() if batch_seconds() > 0 else None

    def disable(self) -> None:
        """Write what is held and stop deferring; the thread closes its connection and ends."""
        self.flush()
        with self._changed:
            self._enabled_in = None
            self._changed.notify_all()
        self._thread.join(timeout=10)

    @property
    def enabled(self) -> bool:
        return self._enabled_in == os.getpid()

    def add(self, success: PendingSuccess) -> None:
        with self._changed:
            self._pending.append(success)
            self._thread.ensure_started()
            self._changed.notify_all()

    def pending(self) -> int:
        with self._changed:
            return len(self._pending) + self._writing

    def flush(self, *, timeout: float = 30.0) -> None:
        """Write everything held, in the calling thread, and wait for a batch the thread is writing."""
        with self._changed:
            batch, self._pending = self._pending, []
            self._writing += len(batch)
        self._write(batch)
        with self._changed:
            self._changed.wait_for(lambda: self._writing == 0, timeout=timeout)

    def _run(self) -> None:
        while True:
            with self._changed:
                self._changed.wait_for(lambda: bool(self._pending) or not self.enabled, timeout=IDLE_CLOSE_SECONDS)
                if not self._pending:
                    connection.close()  # idle: hold no database connection
                    if not self.enabled:
                        return
                    continue
                # Gather for the batch window, unless the batch fills first or a flush took them.
                self._changed.wait_for(
                    lambda: len(self._pending) >= batch_size() or not self._pending or not self.enabled,
                    timeout=batch_seconds(),
                )
                batch, self._pending = self._pending[: batch_size()], self._pending[batch_size() :]
                self._writing += len(batch)
            self._write(batch)

    def _write(self, batch: list[PendingSuccess]) -> None:
        try:
            if batch:
                _write_with_retries(batch)
        finally:
            with self._changed:
                self._writing -= len(batch)
                self._changed.notify_all()


def _write_with_retries(batch: list[PendingSuccess]) -> None:
    from jobs.foundation.dbresilience import run_with_fresh_connection

    attempts = [success.as_attempt() for success in batch]
    for attempt in range(1, WRITE_TRIES + 1):
        try:
            run_with_fresh_connection(lambda: job_succeed_many(attempts, durable=False))
            return
        except DatabaseError:
            if attempt == WRITE_TRIES:
                logger.exception(
                    "could not record %d success(es) after %d tries; the reaper finishes them from their "
                    "completion records once their leases run out", len(batch), WRITE_TRIES,
                )  # fmt: skip
                connection.close()
                return
            connection.close()
            threading.Event().wait(0.2 * attempt)


writer = SuccessWriter()


@worker_process_init.connect  # type: ignore[untyped-decorator]  # celery has no types
def _enable_in_pool_process(**_: Any) -> None:
    writer.enable()


@worker_process_shutdown.connect  # type: ignore[untyped-decorator]  # celery has no types
def _flush_before_exit(**_: Any) -> None:
    if writer.enabled:
        writer.flush()
