"""The job lifecycle: the one owner of who may move a job, and what happens when an attempt ends.

Every state change is a conditional update (``UPDATE ... WHERE status IN (...)``), so when
two processes race for one job exactly one wins and the other sees ``False``. The runner
(a worker), the reaper, the admin and the API all move jobs through the functions here:

- ``job_start_attempt``: waiting -> running (one delivery of a message wins);
- ``job_succeed``: running -> succeeded;
- ``job_snooze``: running -> queued, the attempt not spent (rate limit, busy resource);
- ``job_fail_attempt``: running -> retrying, or failed/dead and the give-up hook;
- ``job_rescue_lost_attempt``: a running attempt whose worker is gone -> retrying, or dead and the hook
  (or succeeded, when its body had finished but its success write failed);
- ``job_stop_attempt``: running -> cancelled (the job stopped on request, or a busy singleton skipped);
- ``job_cancel`` / ``job_retry``: an operator's cancel (waiting or running) and retry (failed or dead);
- ``job_renew_leases``: a worker's heartbeat for the attempts it runs.

The exhaustion rule (attempts left? retrying : dead, then the give-up hook) is ``_retry_or_die``.

Every write about a running attempt is fenced by its number (``... AND attempt = n``): an
attempt that ends after the job moved on (the reaper rescued it and a newer attempt runs)
changes nothing on the job; its outcome goes on its own attempt row as ``superseded``.
"""

from __future__ import annotations

import copy
import json
import logging
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connection, connections, transaction
from django.db.models import Q
from django.utils import timezone
from django_celery_results.models import TaskResult
from redis import RedisError

from jobs.core import registry
from jobs.core.attempts import duration_ms, job_record_attempt
from jobs.core.audit import Action, audit_record
from jobs.core.completions import Completion, completion_find, completion_forget, completions_find_many
from jobs.core.publisher import no_flush_wait, publish_on_commit
from jobs.core.registry import JobType
from jobs.foundation import metrics
from jobs.foundation.exceptions import IllegalTransition, JobsError, UnknownJobType
from jobs.foundation.rowreader import row_reader
from jobs.models import WAITING_STATUSES, Job, JobAttempt

logger = logging.getLogger("jobs.lifecycle")

S = Job.Status
Outcome = JobAttempt.Outcome

# The lifecycle. Anything else raises IllegalTransition.
ALLOWED_TRANSITIONS: dict[str, frozenset[str]] = {
    S.QUEUED: frozenset({S.RUNNING, S.CANCELLED, S.FAILED}),
    S.RUNNING: frozenset({S.SUCCEEDED, S.FAILED, S.DEAD, S.RETRYING, S.CANCELLED, S.QUEUED}),
    S.RETRYING: frozenset({S.RUNNING, S.CANCELLED, S.FAILED}),
    S.FAILED: frozenset({S.QUEUED}),
    S.DEAD: frozenset({S.QUEUED}),
    S.SUCCEEDED: frozenset(),
    S.CANCELLED: frozenset(),
}

# Writes a caller wants in the same transaction as the outcome (the attempt's log lines).
ExtraWrites = Callable[[], None] | None

# The error code of an attempt whose worker vanished.
WORKER_LOST = "worker_lost"


@dataclass(frozen=True)
class Failure:
    """How an attempt failed, as recorded on the job and its attempt row."""

    code: str
    message: str
    traceback: str = ""

    @classmethod
    def from_error(
        cls, error: BaseException, *, with_traceback: bool = False, keep_empty_message: bool = False
    ) -> Failure:
        """What an exception raised by a handler records: a stable code, its message, optionally its traceback."""
        if isinstance(error, SoftTimeLimitExceeded):
            code = "time_limit_exceeded"
        elif isinstance(error, JobsError):
            code = error.code
        else:
            code = error.__class__.__name__
        message = str(error)[:5000] or ("" if keep_empty_message else error.__class__.__name__)
        trace = "".join(traceback.format_exception(error))[-20_000:] if with_traceback else ""
        return cls(code=code, message=message, traceback=trace)


def check_transition(from_status: str, to_status: str) -> None:
    from_status, to_status = str(from_status), str(to_status)  # plain values in messages, not enum reprs
    if to_status not in ALLOWED_TRANSITIONS[from_status]:
        allowed = ", ".join(sorted(ALLOWED_TRANSITIONS[from_status])) or "none (final state)"
        raise IllegalTransition(
            f"a job cannot go from {from_status!r} to {to_status!r}; allowed from {from_status!r}: {allowed}",
            detail={"from": from_status, "to": to_status},
        )


def job_transition(
    *,
    job_id: str,
    from_statuses: Iterable[str],
    to_status: str,
    _where: dict[str, Any] | None = None,
    **fields: Any,
) -> bool:
    """Move a job to ``to_status`` if it is currently in one of ``from_statuses`` (and matches ``_where``).

    Returns False when the job was not (another process moved it first).
    Raises IllegalTransition when the lifecycle forbids the move from any of them.
    """
    from_statuses = tuple(from_statuses)
    for from_status in from_statuses:
        check_transition(from_status, to_status)
    updated = Job.objects.filter(id=job_id, status__in=from_statuses, **(_where or {})).update(
        status=to_status, updated_at=timezone.now(), **fields
    )
    return updated == 1


def job_start_attempt(*, job_id: str, attempt: int, worker: str, celery_task_id: str) -> Job | None:
    """Claim attempt ``attempt`` of a waiting job and load it, in one statement.

    ``UPDATE ... WHERE status IN (queued, retrying) AND attempt = attempt - 1 RETURNING *``:
    of several deliveries of one message exactly one gets the job back; the others get
    None. One round trip instead of a SELECT and an UPDATE, because this runs for every job.
    The attempt's first lease (``JOBS_LEASE_SECONDS``) is taken in the same statement.

    On PostgreSQL the claim commits without waiting for the WAL flush (``no_flush_wait``): a
    claim lost in a database crash leaves the job waiting, and the relay publishes it again
    (at-least-once, as for any lost message), or, when the attempt's body had finished (its
    completion is in Redis), finishes it as succeeded without running it again.
    """
    for from_status in WAITING_STATUSES:
        check_transition(from_status, S.RUNNING)
    quote, adapt = connection.ops.quote_name, connection.ops.adapt_datetimefield_value
    current = timezone.now()
    now, lease = adapt(current), adapt(current + timedelta(seconds=lease_seconds()))
    # The row becomes an instance as the ORM would load it (``row_reader``), without RawQuerySet's
    # per-call setup, which cost about a tenth of a worker process' time per job.
    db = connections[DEFAULT_DB_ALIAS]
    reader = row_reader(Job, db)
    sql = (
        f"UPDATE {quote(Job._meta.db_table)} SET status = %s, attempt = %s, started_at = %s, worker = %s, "
        f"celery_task_id = %s, next_retry_at = NULL, lease_expires_at = %s, updated_at = %s{no_flush_wait()} "
        f"WHERE id = %s AND status IN (%s, %s) AND attempt = %s RETURNING {reader.columns}"
    )
    params: list[Any] = [S.RUNNING.value, attempt, now, worker[:255], celery_task_id[:255], lease, now, job_id,
              S.QUEUED.value, S.RETRYING.value, attempt - 1]  # fmt: skip
    with db.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    return reader.instance(row, db) if row is not None else None


def lease_seconds() -> float:
    return float(getattr(settings, "JOBS_LEASE_SECONDS", 30))


def job_renew_leases(*, attempts: Mapping[str, int]) -> int:
    """Extend the lease of each running (job id, attempt number) by ``JOBS_LEASE_SECONDS``; the heartbeat.

    Fenced by the attempt: a rescued attempt's worker cannot take its job back. Returns how many were renewed.
    """
    if not attempts:
        return 0
    until = timezone.now() + timedelta(seconds=lease_seconds())
    fences = Q()
    for job_id, attempt in attempts.items():
        fences |= Q(id=job_id, attempt=attempt)
    return Job.objects.filter(fences, status=S.RUNNING).update(lease_expires_at=until)


def job_wait_for_switch(*, job_id: str, attempt: int) -> None:
    """A delivery found the job's type switched off: leave it waiting and unpublished for the relay."""
    Job.objects.filter(id=job_id, status__in=WAITING_STATUSES, attempt=attempt - 1).update(published_at=None)


def job_fail_undeliverable(*, job_id: str, failure: Failure) -> bool:
    """A waiting job whose message this worker cannot read (unknown schema version) fails at once."""
    return job_transition(
        job_id=job_id, from_statuses=WAITING_STATUSES, to_status=S.FAILED, finished_at=timezone.now(),
        error_code=failure.code, error_message=failure.message,
    )  # fmt: skip


# ---------------------------------------------------------------------------
# How a running attempt ends
# ---------------------------------------------------------------------------


def _end_attempt(
    job: Job,
    *,
    to_status: str,
    outcome: str,
    now: datetime,
    failure: Failure | None = None,
    failure_on_job: bool = True,
    retry_delay: float | None = None,
    publish_countdown: float | None = None,
    publish: bool = False,
    extra_writes: ExtraWrites = None,
    supersede: bool = True,
    **fields: Any,
) -> bool:
    """running -> ``to_status`` and the attempt's row, atomically; publish the next attempt if asked.

    Fenced by the attempt number; when the job moved on, the attempt's own outcome is recorded as
    superseded instead (``supersede``; not for the reaper, which speaks for no attempt).
    """
    if failure is not None and failure_on_job:
        fields.update(error_code=failure.code, error_message=failure.message)
        if failure.traceback:
            fields["error_traceback"] = failure.traceback
    with transaction.atomic():
        if extra_writes is not None:
            extra_writes()  # the attempt's log lines: in before its outcome, whoever reads it
        moved = job_transition(
            job_id=job.id, from_statuses=[S.RUNNING], to_status=to_status, _where={"attempt": job.attempt}, **fields
        )
        if moved:
            job_record_attempt(
                job=job, outcome=outcome, finished_at=now, error_code=failure.code if failure else "",
                error_message=failure.message if failure else "",
                error_traceback=failure.traceback if failure else "",
                retry_delay_ms=int(retry_delay * 1000) if retry_delay is not None else None,
            )  # fmt: skip
            if publish:
                publish_on_commit([job], countdown=publish_countdown)
            metrics.attempt_finished(job=job, outcome=outcome, finished_at=now)
        elif supersede:
            _record_superseded(job, outcome=outcome, now=now, failure=failure)
    return moved


def _record_superseded(job: Job, *, outcome: str, now: datetime, failure: Failure | None) -> None:
    """An attempt ended after its job had moved on: keep what it said on its own attempt row, apply nothing.

    The row the reaper wrote when it took the attempt for lost becomes ``superseded``; a row with
    another outcome is this attempt's own earlier write (a bookkeeping write tried again) and stays.
    """
    current = Job.objects.filter(id=job.id).values_list("status", "attempt").first()
    if current is None or tuple(current) == (S.RUNNING, job.attempt):
        return  # pruned, or (a write that failed for another reason) still ours
    recorded = JobAttempt.objects.filter(job_id=job.id, number=job.attempt).order_by("-id").first()
    if recorded is not None and recorded.outcome != Outcome.LOST:
        return
    said = f" ({failure.code}: {failure.message})" if failure else ""
    note = (
        f"attempt {job.attempt} ended {outcome}{said} after the job had moved on "
        f"(now {current[0]}, attempt {current[1]}); not applied"
    )
    if recorded is not None:
        recorded.outcome, recorded.finished_at = Outcome.SUPERSEDED, now
        recorded.error_message = f"{recorded.error_message}; then {note}"[:5000]
        recorded.save(update_fields=["outcome", "finished_at", "error_message"])
    else:
        JobAttempt.objects.create(
            job_id=job.id, number=job.attempt, outcome=Outcome.SUPERSEDED, started_at=job.started_at, finished_at=now,
            duration_ms=duration_ms(job.started_at, now), worker=job.worker, celery_task_id=job.celery_task_id,
            error_code="superseded", error_message=note[:5000],
        )  # fmt: skip
    logger.warning("job %s: %s", job.id, note)


@dataclass(frozen=True)
class SucceededAttempt:
    """An attempt whose body returned: the claimed job, when it finished and what it returned."""

    job: Job
    finished_at: datetime
    result: Any


def job_succeed(
    *, job: Job, finished_at: datetime, result: Any, extra_writes: ExtraWrites = None, durable: bool = True
) -> bool:
    """running -> succeeded, with its attempt row and Celery result row, atomically.

    ``extra_writes`` (the attempt's log lines) are written first, so a reader never sees the job
    succeeded without them (on PostgreSQL just before the statement, elsewhere in its transaction).
    Returns False if the job was no longer running. ``durable`` as for ``job_succeed_many``.
    """
    succeeded = SucceededAttempt(job=job, finished_at=finished_at, result=result)
    if connection.vendor != "postgresql":
        return job.id in _succeed_each([succeeded], extra_writes=extra_writes)
    if extra_writes is not None:
        extra_writes()
    return job.id in job_succeed_many([succeeded], durable=durable)


def job_succeed_many(attempts: Sequence[SucceededAttempt], *, durable: bool = True) -> set[str]:
    """running -> succeeded for each attempt, with attempt rows and Celery result rows; the ids that moved.

    Every successful job passes here, one at a time or a worker process' batch at once
    (``jobs.worker.success_batch``), so on PostgreSQL all of it is one statement (data-modifying CTEs over a
    VALUES list: one round trip, one commit). Elsewhere the ORM writes each in its own transaction.
    An attempt whose job had moved on is recorded as superseded on its own attempt row.

    ``durable=False`` (PostgreSQL, outside a transaction) commits without waiting for the WAL
    flush: only for a caller that recorded the completions in Redis first (``jobs.core.completions``),
    which is what finishes a job, without running it again, if a database crash forgets this commit.
    """
    check_transition(S.RUNNING, S.SUCCEEDED)
    if not attempts:
        return set()
    if connection.vendor != "postgresql":
        return _succeed_each(attempts, extra_writes=None)
    quote = connection.ops.quote_name
    jobs, attempt_rows, results = (quote(model._meta.db_table) for model in (Job, JobAttempt, TaskResult))
    # The statement already has a FROM list (done): the flush clause joins it as one more item.
    flush = "" if durable else no_flush_wait().replace(" FROM ", ", ", 1)
    ordered = sorted(attempts, key=lambda succeeded: succeeded.job.id)  # one lock order for every writer
    row = (
        "(%s::varchar, %s::integer, %s::jsonb, %s::timestamptz, %s::timestamptz, %s::integer, %s::varchar, "
        "%s::varchar, %s::varchar, %s::text, %s::text)"
    )
    params: list[Any] = []
    for succeeded in ordered:
        job, now = succeeded.job, succeeded.finished_at
        summary = {"job_id": job.id, "attempt": job.attempt, "outcome": Outcome.SUCCEEDED.value}
        params += [
            job.id, job.attempt, json.dumps(succeeded.result), now, job.started_at, duration_ms(job.started_at, now),
            job.worker or None, job.celery_task_id, job.type, json.dumps(summary),
            json.dumps({"job_id": job.id, "attempt": job.attempt}),
        ]  # fmt: skip
    sql = f"""
        WITH done (job_id, attempt, result, finished_at, started_at, duration_ms, worker, task_id, type, summary,
                   kwargs) AS (
            VALUES {", ".join([row] * len(ordered))}
        ), moved AS (
            UPDATE {jobs} AS job SET status = '{S.SUCCEEDED.value}', finished_at = done.finished_at,
                   updated_at = done.finished_at, progress = 100, result = done.result, error_code = '',
                   error_message = '', error_traceback = ''
              FROM done{flush}
             WHERE job.id = done.job_id AND job.status = '{S.RUNNING.value}' AND job.attempt = done.attempt
         RETURNING job.id
        ), attempt AS (
            INSERT INTO {attempt_rows} (job_id, number, outcome, started_at, finished_at, duration_ms, worker,
                                        celery_task_id, error_code, error_message, error_traceback)
            SELECT done.job_id, done.attempt, '{Outcome.SUCCEEDED.value}', done.started_at, done.finished_at,
                   done.duration_ms, done.worker, done.task_id, '', '', ''
              FROM done JOIN moved ON moved.id = done.job_id
         RETURNING job_id
        ), celery_result AS (
            INSERT INTO {results} (task_id, task_name, status, result, content_type, content_encoding, worker,
                                   date_started, date_done, date_created, task_kwargs)
            SELECT done.task_id, done.type, 'SUCCESS', done.summary, 'application/json', 'utf-8', done.worker,
                   done.started_at, done.finished_at, done.finished_at, done.kwargs
              FROM done JOIN attempt ON attempt.job_id = done.job_id
             WHERE done.task_id <> ''
                ON CONFLICT (task_id) DO UPDATE SET status = 'SUCCESS', result = EXCLUDED.result,
                   date_done = EXCLUDED.date_done, worker = EXCLUDED.worker
        )
        SELECT id FROM moved
    """  # noqa: S608 - table names come from model metadata, statuses are enum values, the rest are parameters
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        moved = {job_id for (job_id,) in cursor.fetchall()}
    for succeeded in ordered:
        if succeeded.job.id in moved:
            metrics.attempt_finished(job=succeeded.job, outcome=Outcome.SUCCEEDED, finished_at=succeeded.finished_at)
        else:
            _record_superseded(succeeded.job, outcome=Outcome.SUCCEEDED, now=succeeded.finished_at, failure=None)
    return moved


def _succeed_each(attempts: Sequence[SucceededAttempt], *, extra_writes: ExtraWrites) -> set[str]:
    moved = set()
    for succeeded in attempts:
        now = succeeded.finished_at
        if _end_attempt(
            succeeded.job, to_status=S.SUCCEEDED, outcome=Outcome.SUCCEEDED, now=now, extra_writes=extra_writes,
            finished_at=now, progress=100, result=succeeded.result, error_code="", error_message="",
            error_traceback="",
        ):  # fmt: skip
            moved.add(succeeded.job.id)
    return moved


def job_snooze(*, job: Job, wait_seconds: float, failure: Failure, extra_writes: ExtraWrites = None) -> bool:
    """running -> queued without spending the attempt; the next message goes out in ``wait_seconds``.

    The reason is kept on the attempt's row only: the job itself did not fail. ``job`` is not changed
    (it still says the attempt that snoozed), so a write tried again on a fresh connection is fenced
    by the same attempt number and cannot give the attempt back twice.
    """
    now = timezone.now()
    moved = _end_attempt(
        job, to_status=S.QUEUED, outcome=Outcome.SNOOZED, now=now, failure=failure, failure_on_job=False,
        extra_writes=extra_writes, attempt=job.attempt - 1, next_retry_at=now + timedelta(seconds=wait_seconds),
        published_at=None,
    )  # fmt: skip
    if moved:
        # The next message carries the same attempt number again.
        waiting = copy.copy(job)
        waiting.attempt = job.attempt - 1
        publish_on_commit([waiting], countdown=wait_seconds)
    return moved


def job_stop_attempt(*, job: Job, outcome: str, failure: Failure, extra_writes: ExtraWrites = None) -> bool:
    """running -> cancelled: the job stopped on request (``cancelled``) or a busy singleton was ``skipped``."""
    now = timezone.now()
    return _end_attempt(
        job, to_status=S.CANCELLED, outcome=outcome, now=now, failure=failure, extra_writes=extra_writes,
        finished_at=now,
    )  # fmt: skip


def job_fail_attempt(
    *, job: Job, spec: JobType, failure: Failure, retryable: bool, extra_writes: ExtraWrites = None
) -> str:
    """An attempt raised. Retryable errors go through the exhaustion rule; others fail the job at once.

    Returns the job's new status (``retrying``, ``dead`` or ``failed``).
    """
    now = timezone.now()
    if not retryable:
        _give_up(
            job, spec=spec, to_status=S.FAILED, outcome=Outcome.FAILED, now=now, failure=failure,
            extra_writes=extra_writes,
        )  # fmt: skip
        return S.FAILED
    status, _ = _retry_or_die(
        job, spec=spec, now=now, failure=failure, delay=spec.retry.backoff.delay(job.attempt),
        retry_outcome=Outcome.RETRY, dead_outcome=Outcome.DEAD, extra_writes=extra_writes,
    )  # fmt: skip
    return status


def job_rescue_lost_attempt(*, job: Job, reason: str, now: datetime | None = None) -> str | None:
    """A running attempt whose worker is gone: back in the queue at once if attempts are left, else dead.

    An attempt whose body had finished (its completion is in Redis, but its success write failed
    or never happened) is finished as succeeded instead: its body does not run again.
    Fenced by the attempt number (``job.attempt`` as the reaper read it), so an attempt that moved
    on meanwhile is left alone. Returns the job's new status, or None when this call did not move it
    (also when Redis cannot say whether the body finished: the next tick tries again).
    """
    now = now or timezone.now()
    try:
        completed = completion_find(job_id=job.id, attempt=job.attempt)
    except RedisError as error:
        logger.warning("job %s: cannot tell whether attempt %s finished its body (Redis: %s); not rescued yet",
                       job.id, job.attempt, error)  # fmt: skip
        return None
    if completed is not None:
        lost = f"its success was not written ({reason})"
        return S.SUCCEEDED if _finish_from_completion(job, completed, lost=lost) else None
    try:
        spec: JobType | None = registry.get(job.type)
    except UnknownJobType:
        spec = None
    status, moved = _retry_or_die(
        job, spec=spec, now=now, failure=Failure(code=WORKER_LOST, message=f"attempt {job.attempt} was lost: {reason}"),
        delay=0.0, retry_outcome=Outcome.LOST, dead_outcome=Outcome.LOST, supersede=False,
    )  # fmt: skip
    return status if moved else None


def job_finish_recorded_completions(refs: list[tuple[str, int]]) -> set[str]:
    """Of waiting jobs about to be published again as attempt N, finish those whose attempt N had finished.

    ``refs`` are (job id, attempt N). A job is waiting with attempt N - 1 although its attempt N ran
    to the end when a database crash forgot both the claim and the success (neither waited for the
    WAL flush); its completion is in Redis. Such a job is claimed and recorded as succeeded here,
    durably, and must not be published: its body does not run again. Returns the ids finished.
    Raises RedisError when Redis cannot say (the caller must then not publish either).
    """
    finished: set[str] = set()
    for job_id, completion in completions_find_many(refs).items():
        job = job_start_attempt(job_id=job_id, attempt=completion.attempt, worker="relay", celery_task_id="")
        if job is None:
            continue
        job.started_at = completion.finished_at  # when it really started is not recorded
        if _finish_from_completion(job, completion, lost="its claim and success were lost (database crash)"):
            finished.add(job_id)
    return finished


def _finish_from_completion(job: Job, completion: Completion, *, lost: str) -> bool:
    """Record the running ``job`` succeeded as its recorded completion says, durably; its body does not run again."""
    if not job_succeed(job=job, finished_at=completion.finished_at, result=completion.result):
        return False
    completion_forget(job_id=job.id)
    logger.warning("job %s: attempt %s had finished its body but %s; recorded as succeeded, not run again",
                   job.id, job.attempt, lost)  # fmt: skip
    return True


def job_completions_settled(attempts: Mapping[str, int]) -> set[str]:
    """Of {job id: attempt with a completion record}, the jobs whose record is no longer needed.

    Needed while the database shows the job waiting or running at or before that attempt (its
    success or claim was lost and the reaper or the relay will use the record); not needed once
    it shows anything else (succeeded, another outcome, a later attempt) or the job is gone.
    """
    unsettled = {
        job_id
        for job_id, status, attempt in Job.objects.filter(id__in=list(attempts)).values_list("id", "status", "attempt")
        if status in (*WAITING_STATUSES, S.RUNNING) and attempt <= attempts[job_id]
    }
    return set(attempts) - unsettled


def _retry_or_die(
    job: Job,
    *,
    spec: JobType | None,
    now: datetime,
    failure: Failure,
    delay: float,
    retry_outcome: str,
    dead_outcome: str,
    extra_writes: ExtraWrites = None,
    supersede: bool = True,
) -> tuple[str, bool]:
    """The exhaustion rule: attempts left? retrying (next message in ``delay`` s) : dead, then the give-up hook.

    Returns the status it moves the job to, and whether it did (False: no longer this running attempt).
    """
    if job.attempt < job.max_attempts:
        moved = _end_attempt(
            job, to_status=S.RETRYING, outcome=retry_outcome, now=now, failure=failure, retry_delay=delay,
            publish=True, publish_countdown=delay or None, extra_writes=extra_writes, supersede=supersede, next_retry_at=now + timedelta(seconds=delay), published_at=None,
        )  # fmt: skip
        return S.RETRYING, moved
    moved = _give_up(
        job, spec=spec, to_status=S.DEAD, outcome=dead_outcome, now=now, failure=failure, extra_writes=extra_writes,
        supersede=supersede,
    )  # fmt: skip
    return S.DEAD, moved


def _give_up(
    job: Job,
    *,
    spec: JobType | None,
    to_status: str,
    outcome: str,
    now: datetime,
    failure: Failure,
    extra_writes: ExtraWrites = None,
    supersede: bool = True,
) -> bool:
    """running -> failed or dead; then the type's give-up hook, once, after the write."""
    moved = _end_attempt(
        job, to_status=to_status, outcome=outcome, now=now, failure=failure, extra_writes=extra_writes,
        supersede=supersede, finished_at=now,
    )  # fmt: skip
    if moved and spec is not None:
        run_give_up_hook(spec, job.payload, failure.code, failure.message)
    return moved


def run_give_up_hook(spec: JobType, payload: dict[str, Any], error_code: str, error_message: str) -> None:
    """Tell the domain a job gave up; a failing hook is logged, never raised into the worker or reaper."""
    if spec.on_give_up is None:
        return
    try:
        spec.on_give_up(payload, error_code, error_message)
    except Exception:
        logger.exception("on_give_up hook of %s failed", spec.name)


# ---------------------------------------------------------------------------
# Operator transitions (admin, API, runbook command)
# ---------------------------------------------------------------------------


def job_cancel(*, job: Job, actor: Any = None, audit: bool = True) -> str:
    """Cancel a waiting job at once, or ask a running one to stop at its next check.

    Returns the job's status afterwards (``cancelled``, or ``running`` with the request recorded).
    Raises IllegalTransition when the job already finished.
    """
    now = timezone.now()
    if job_transition(
        job_id=job.id, from_statuses=WAITING_STATUSES, to_status=S.CANCELLED, finished_at=now, cancel_requested=True
    ):
        outcome = S.CANCELLED
    elif Job.objects.filter(id=job.id, status=S.RUNNING).update(cancel_requested=True, updated_at=now):
        outcome = S.RUNNING
    else:
        job.refresh_from_db()
        raise IllegalTransition(
            f"job {job.id} is {job.status}; only queued, retrying or running jobs can be cancelled",
            detail={"status": job.status},
        )
    if audit:
        audit_record(actor=actor, action=Action.CANCEL, jobs=[job], detail={"outcome": outcome})
    job.refresh_from_db()
    return outcome


def job_retry(*, job: Job, actor: Any = None, audit: bool = True) -> bool:
    """Put a failed or dead job back in the queue for another round of attempts (same job id)."""
    if job.status not in (S.FAILED, S.DEAD):
        return False
    moved = job_transition(
        job_id=job.id,
        from_statuses=[S.FAILED, S.DEAD],
        to_status=S.QUEUED,
        # A fresh budget of attempts on top of those already spent.
        max_attempts=job.attempt + registry.get(job.type).retry.max_attempts,
        published_at=None, next_retry_at=None, finished_at=None, enqueued_at=timezone.now(),
        cancel_requested=False, progress=0, progress_message="",
    )  # fmt: skip
    if moved:
        job.refresh_from_db()
        publish_on_commit([job])
        if audit:
            audit_record(actor=actor, action=Action.RETRY, jobs=[job])
    return moved
