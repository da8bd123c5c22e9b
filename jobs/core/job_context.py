"""What a running job sees: ``JobContext`` (ids, payload, progress, log, cancellation) and its bounded log."""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import DatabaseError
from django.utils import timezone

from jobs.foundation.dbresilience import run_with_fresh_connection
from jobs.foundation.exceptions import JobCancelled
from jobs.models import Job, JobLogLine

logger = logging.getLogger("jobs.run")
S = Job.Status

# How often a job's progress may be written, at most (seconds).
PROGRESS_MIN_INTERVAL = 0.5


class JobLog:
    """The job's logger: lines go to normal logging and, bounded, to the job's stored log."""

    def __init__(self, *, job: Job, max_lines: int) -> None:
        self._job = job
        self._logger = logging.getLogger(f"jobs.job.{job.type}")
        self._max_lines = max_lines
        self._pending: list[JobLogLine] = []
        self._kept = 0
        self._dropped = 0

    def emit(self, level: int, message: str, *args: Any, exc_info: bool = False) -> None:
        self._logger.log(level, message, *args, exc_info=exc_info)
        text = message % args if args else message
        if exc_info:
            text += "\n" + traceback.format_exc()
        if self._kept < self._max_lines:
            self._kept += 1
            self._pending.append(
                JobLogLine(
                    job_id=self._job.id,
                    attempt=self._job.attempt,
                    logged_at=timezone.now(),
                    level=logging.getLevelName(level),
                    message=text[:10_000],
                )  # fmt: skip
            )
        else:
            self._dropped += 1

    def debug(self, message: str, *args: Any) -> None:
        self.emit(logging.DEBUG, message, *args)

    def info(self, message: str, *args: Any) -> None:
        self.emit(logging.INFO, message, *args)

    def warning(self, message: str, *args: Any) -> None:
        self.emit(logging.WARNING, message, *args)

    def error(self, message: str, *args: Any) -> None:
        self.emit(logging.ERROR, message, *args)

    def exception(self, message: str, *args: Any) -> None:
        self.emit(logging.ERROR, message, *args, exc_info=True)

    @property
    def unwritten(self) -> bool:
        """Whether ``flush`` has anything to write."""
        return bool(self._pending or self._dropped)

    def flush(self) -> None:
        if self._dropped:
            self._pending.append(
                JobLogLine(
                    job_id=self._job.id,
                    attempt=self._job.attempt,
                    logged_at=timezone.now(),
                    level="WARNING",
                    message=f"{self._dropped} more log line(s) of this attempt were not kept (limit {self._max_lines})",
                )  # fmt: skip
            )
            self._dropped = 0
        if self._pending:
            JobLogLine.objects.bulk_create(self._pending)
            self._pending = []  # only once written: a write tried again on a fresh connection still has them


class JobContext:
    """What a running job may know and do: its ids, payload, progress, log, cancellation."""

    def __init__(self, *, job: Job) -> None:
        self.job = job
        self.log = JobLog(job=job, max_lines=getattr(settings, "JOBS_LOG_MAX_LINES", 200))
        self._last_progress_write = 0.0

    @property
    def job_id(self) -> str:
        return self.job.id

    @property
    def attempt(self) -> int:
        return self.job.attempt

    @property
    def correlation_id(self) -> str:
        return self.job.correlation_id

    def progress(self, percent: float, message: str = "", *, force: bool = False) -> None:
        """Report progress (0-100) with a short message. Writes are throttled; checks cancellation."""
        percent = int(max(0, min(100, percent)))
        now = time.monotonic()
        if not force and percent < 100 and now - self._last_progress_write < PROGRESS_MIN_INTERVAL:
            return
        self._last_progress_write = now
        tracking_write(
            # Fenced by the attempt: a late attempt never writes over a newer one's progress.
            lambda: Job.objects.filter(id=self.job.id, status=S.RUNNING, attempt=self.job.attempt).update(
                progress=percent, progress_message=message[:255], updated_at=timezone.now()
            ),
            what="progress",
        )
        self.job.progress, self.job.progress_message = percent, message[:255]
        tracking_write(self.log.flush, what="log lines")
        self.raise_if_cancelled()

    def raise_if_cancelled(self) -> None:
        """Raise JobCancelled if someone asked this job to stop, or if this attempt no longer owns the job
        (the reaper took it for lost and a newer attempt runs). Call it at safe points."""
        state = Job.objects.filter(id=self.job.id).values_list("cancel_requested", "status", "attempt").first()
        if state is None or state[0]:
            raise JobCancelled(f"job {self.job.id} was asked to stop")
        if (state[1], state[2]) != (S.RUNNING, self.job.attempt):
            raise JobCancelled(
                f"job {self.job.id} moved on (now {state[1]}, attempt {state[2]}); attempt {self.job.attempt} stops"
            )


def tracking_write(write: Callable[[], Any], *, what: str, tries: int = 3) -> bool:
    """Run a bookkeeping write; a database hiccup must not fail the job itself."""
    for attempt in range(1, tries + 1):
        try:
            run_with_fresh_connection(write)  # a broken connection is replaced, not retried as is
            return True
        except DatabaseError:
            if attempt == tries:
                logger.exception("could not record %s after %d tries; the reaper will reconcile the job", what, tries)
                return False
            time.sleep(0.2 * attempt)
    return False
