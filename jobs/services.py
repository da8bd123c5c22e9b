"""Job services: every write to a job goes through here.

State changes are conditional updates (``UPDATE ... WHERE status IN (...)``), so when
two processes race for one job exactly one wins and the other sees ``False``.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from django_celery_results.models import TaskResult

from . import registry
from .bulkinsert import bulk_insert_varying
from .context import get_correlation_id, new_correlation_id
from .exceptions import (
    IdempotencyKeyConflict,
    IllegalTransition,
    JobNotFound,
    JobTypeDisabled,
    PayloadInvalid,
)
from .models import Job, JobAttempt, JobAuditEntry, JobTypeSwitch, new_job_id
from .schema import validate, with_defaults

logger = logging.getLogger("jobs")

S = Job.Status

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

MESSAGE_SCHEMA_VERSION = 1
SUPPORTED_MESSAGE_VERSIONS = frozenset({1})


def check_transition(from_status: str, to_status: str) -> None:
    from_status, to_status = str(from_status), str(to_status)  # plain values in messages, not enum reprs
    if to_status not in ALLOWED_TRANSITIONS[from_status]:
        allowed = ", ".join(sorted(ALLOWED_TRANSITIONS[from_status])) or "none (final state)"
        raise IllegalTransition(
            f"a job cannot go from {from_status!r} to {to_status!r}; allowed from {from_status!r}: {allowed}",
            detail={"from": from_status, "to": to_status},
        )


def job_transition(*, job_id: str, from_statuses: Iterable[str], to_status: str, **fields) -> bool:
    """Move a job to ``to_status`` if it is currently in one of ``from_statuses``.

    Returns False when the job was not in any of them (another process moved it first).
    Raises IllegalTransition when the lifecycle forbids the move from any of them.
    """
    from_statuses = tuple(from_statuses)
    for from_status in from_statuses:
        check_transition(from_status, to_status)
    filters = fields.pop("_where", {})
    updated = Job.objects.filter(id=job_id, status__in=from_statuses, **filters).update(
        status=to_status, updated_at=timezone.now(), **fields
    )
    return updated == 1


def _no_flush_wait() -> str:
    """A FROM item that lets this autocommit UPDATE commit without waiting for the WAL flush, or "".

    PostgreSQL only, for writes whose loss in a database crash is harmless (the claim, the
    published stamp). ``set_config(..., true)`` is local to the statement's own transaction;
    inside a caller's transaction it would make the caller's other writes non-durable, so
    then nothing is added.
    """
    if connection.vendor == "postgresql" and not connection.in_atomic_block:
        return " FROM (SELECT set_config('synchronous_commit', 'off', true)) AS no_flush_wait"
    return ""


def job_start_attempt(*, job_id: str, attempt: int, worker: str, celery_task_id: str) -> Job | None:
    """Claim attempt ``attempt`` of a waiting job and load it, in one statement.

    ``UPDATE ... WHERE status IN (queued, retrying) AND attempt = attempt - 1 RETURNING *``:
    of several deliveries of one message exactly one gets the job back; the others get
    None. One round trip instead of a SELECT and an UPDATE, because this runs for every job.

    On PostgreSQL the claim commits without waiting for its WAL flush (``synchronous_commit``
    off for this statement's transaction only): the flush is most of a no-op job's time, and
    losing a claim is harmless. Only a database crash can lose it, and only while the job is
    still running (the durable commit of its outcome flushes the claim with it); the row is
    then waiting again and the job runs again, as at-least-once delivery allows. Which
    delivery wins is decided by the row lock as before, so the attempt guard is unchanged.
    """
    for from_status in (S.QUEUED, S.RETRYING):
        check_transition(from_status, S.RUNNING)
    quote, adapt = connection.ops.quote_name, connection.ops.adapt_datetimefield_value
    now = adapt(timezone.now())
    columns = ", ".join(quote(field.column) for field in Job._meta.concrete_fields)
    sql = (
        f"UPDATE {quote(Job._meta.db_table)} SET status = %s, attempt = %s, started_at = %s, worker = %s, "
        f"celery_task_id = %s, next_retry_at = NULL, updated_at = %s{_no_flush_wait()} "
        f"WHERE id = %s AND status IN (%s, %s) AND attempt = %s RETURNING {columns}"
    )
    params = [S.RUNNING.value, attempt, now, worker[:255], celery_task_id[:255], now, job_id,
              S.QUEUED.value, S.RETRYING.value, attempt - 1]  # fmt: skip
    claimed = list(Job.objects.raw(sql, params))
    return claimed[0] if claimed else None


# ---------------------------------------------------------------------------
# Feature flags
# ---------------------------------------------------------------------------


def job_type_is_enabled(*, job_type: str) -> bool:
    if job_type in getattr(settings, "JOBS_DISABLED_TYPES", ()):
        return False
    return not JobTypeSwitch.objects.filter(type=job_type, enabled=False).exists()


def disabled_job_types() -> set[str]:
    return set(getattr(settings, "JOBS_DISABLED_TYPES", ())) | set(
        JobTypeSwitch.objects.filter(enabled=False).values_list("type", flat=True)
    )


def job_type_set_enabled(*, job_type: str, enabled: bool, reason: str = "", actor=None) -> None:
    registry.get(job_type)
    JobTypeSwitch.objects.update_or_create(type=job_type, defaults={"enabled": enabled, "reason": reason})
    audit_record(actor=actor, action="enable_type" if enabled else "disable_type", jobs=[], detail={"type": job_type})
    if enabled:
        # Jobs that waited while the type was off go out now rather than at the next relay tick.
        transaction.on_commit(lambda: job_relay_unpublished(job_type=job_type, grace_seconds=0))


# ---------------------------------------------------------------------------
# Enqueue
# ---------------------------------------------------------------------------


def payload_fingerprint(payload: dict) -> str:
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class EnqueueResult:
    job: Job
    created: bool


def job_validate_payload(*, job_type: str, payload: dict) -> dict:
    """Check ``payload`` against the type's declared API schema; return it with defaults filled."""
    spec = registry.get(job_type)
    if spec.api_schema is None:
        return payload
    errors = validate(payload, spec.api_schema)
    if errors:
        raise PayloadInvalid(
            f"payload for job type {job_type!r} is invalid: "
            + "; ".join(f"{error.field}: {error.message}" for error in errors),
            detail={"errors": [error.as_dict() for error in errors]},
        )
    return with_defaults(payload, spec.api_schema)


def _idempotency_window() -> timedelta:
    return timedelta(seconds=getattr(settings, "JOBS_IDEMPOTENCY_WINDOW_SECONDS", 24 * 3600))


def _new_job(*, job_type: str, payload: dict, owner, idempotency_key, correlation_id, replay_of, now) -> Job:
    spec = registry.get(job_type)
    return Job(
        type=job_type,
        queue=spec.queue,
        max_attempts=spec.retry.max_attempts,
        owner=owner,
        payload=payload,
        payload_fingerprint=payload_fingerprint(payload),
        idempotency_key=idempotency_key or None,
        idempotency_expires_at=(now + _idempotency_window()) if idempotency_key else None,
        correlation_id=correlation_id or get_correlation_id() or new_correlation_id(),
        replay_of=replay_of,
        enqueued_at=now,
    )


def _ensure_enabled(job_type: str) -> None:
    if not job_type_is_enabled(job_type=job_type):
        raise JobTypeDisabled(
            f"job type {job_type!r} is switched off; enqueue it again once an operator switches it back on",
            detail={"type": job_type},
        )


def _release_expired_keys(*, job_type: str, keys: Sequence[str], now) -> None:
    # Conditional: only keys whose window has passed are freed, so a racing enqueue
    # that already re-used one is never disturbed.
    Job.objects.filter(type=job_type, idempotency_key__in=keys, idempotency_expires_at__lte=now).update(
        idempotency_key=None
    )


def job_enqueue(
    *,
    job_type: str,
    payload: dict | None = None,
    owner=None,
    idempotency_key: str | None = None,
    correlation_id: str | None = None,
    replay_of: Job | None = None,
) -> EnqueueResult:
    """Create a job and publish it when the surrounding transaction commits.

    - Transactional: if the caller's transaction rolls back, no job exists and nothing runs.
    - Durable: the row is written first; if the broker is down at commit time the
      relay (``jobs.relay``) publishes it later.
    - Idempotent: the same (type, idempotency_key) within the window returns the existing
      job (``created=False``); the database's unique constraint settles concurrent calls.
      The same key with a different payload raises IdempotencyKeyConflict.
    """
    registry.get(job_type)
    payload = payload or {}
    if not job_type_is_enabled(job_type=job_type):
        # A retried request whose job already exists gets it back, switch or not.
        replayed = _live_idempotent_job(job_type=job_type, key=idempotency_key, payload=payload)
        if replayed is not None:
            return EnqueueResult(job=replayed, created=False)
        _ensure_enabled(job_type)
    now = timezone.now()
    job = _new_job(
        job_type=job_type, payload=payload, owner=owner, idempotency_key=idempotency_key,
        correlation_id=correlation_id, replay_of=replay_of, now=now,
    )  # fmt: skip
    if idempotency_key:
        existing = _insert_idempotent(job, now=now)
        if existing is not None:
            return EnqueueResult(job=existing, created=False)
    else:
        job.save(force_insert=True)
    _publish_on_commit([job])
    return EnqueueResult(job=job, created=True)


def _live_idempotent_job(*, job_type: str, key: str | None, payload: dict) -> Job | None:
    if not key:
        return None
    return Job.objects.filter(
        type=job_type, idempotency_key=key, idempotency_expires_at__gt=timezone.now(),
        payload_fingerprint=payload_fingerprint(payload),
    ).first()  # fmt: skip


def _insert_idempotent(job: Job, *, now) -> Job | None:
    """Insert ``job``; on a key collision return the job already holding the key."""
    for _ in range(3):
        try:
            with transaction.atomic():
                job.save(force_insert=True)
            return None
        except IntegrityError:
            existing = Job.objects.filter(type=job.type, idempotency_key=job.idempotency_key).first()
            if existing is None:
                continue  # the holder was just released or pruned: try again
            if existing.idempotency_expires_at and existing.idempotency_expires_at <= now:
                _release_expired_keys(job_type=job.type, keys=[job.idempotency_key], now=now)
                continue
            if existing.payload_fingerprint != job.payload_fingerprint:
                raise IdempotencyKeyConflict(
                    f"idempotency key {job.idempotency_key!r} was already used for job {existing.id} of type "
                    f"{job.type!r} with a different payload; use a new key for a different request",
                    detail={"job_id": existing.id, "idempotency_key": job.idempotency_key},
                ) from None
            return existing
    raise IntegrityError(f"could not settle idempotency key {job.idempotency_key!r} after 3 tries")


def job_bulk_enqueue(
    *,
    job_type: str,
    payloads: Sequence[dict],
    idempotency_keys: Sequence[str | None] | None = None,
    owner=None,
    correlation_id: str | None = None,
    batch_size: int = 5000,
) -> list[EnqueueResult]:
    """Enqueue many jobs of one type: one multi-row insert per batch, one pipelined publish.

    Same guarantees as ``job_enqueue``: nothing runs if the transaction rolls back, and
    the rows are written before anything is published. A key already used within the
    window returns the job holding it (``created=False``), whatever its payload: fan-out
    callers derive keys from the event they handle, so a repeated key is a repeated event.
    Results are in input order.
    """
    spec = registry.get(job_type)
    _ensure_enabled(job_type)
    if idempotency_keys is not None and len(idempotency_keys) != len(payloads):
        raise ValueError(
            f"idempotency_keys has {len(idempotency_keys)} entries, payloads has {len(payloads)}; expected the same"
        )
    keys = [key or None for key in idempotency_keys] if idempotency_keys is not None else [None] * len(payloads)
    present_keys = [key for key in keys if key]
    if len(set(present_keys)) != len(present_keys):
        raise ValueError("idempotency_keys repeat within one bulk call; each job needs its own key")
    if not payloads:
        return []
    now = timezone.now()
    payloads = [payload or {} for payload in payloads]
    # Everything but these columns is the same for every job of the call.
    template = Job(
        type=job_type, queue=spec.queue, max_attempts=spec.retry.max_attempts, owner=owner,
        correlation_id=correlation_id or get_correlation_id() or new_correlation_id(), enqueued_at=now,
        created_at=now, updated_at=now,
    )  # fmt: skip
    varying = {
        "id": [new_job_id() for _ in payloads],
        "payload": payloads,
        "payload_fingerprint": [payload_fingerprint(payload) for payload in payloads],
    }
    if present_keys:
        expires_at = now + _idempotency_window()
        varying["idempotency_key"] = keys
        varying["idempotency_expires_at"] = [expires_at if key else None for key in keys]
    settled: dict[int, EnqueueResult] = {}
    pending = list(range(len(payloads)))
    if present_keys:
        # Rows go in in key order: concurrent calls with overlapping keys then wait for each
        # other in one order instead of deadlocking on each other's unique-index entries.
        pending.sort(key=lambda index: keys[index] or "")
    with transaction.atomic():
        if present_keys:
            _release_expired_keys(job_type=job_type, keys=present_keys, now=now)
        # A key that lost to a holder which then vanished (pruned, or released as expired by a
        # concurrent call) is tried again, as job_enqueue does.
        for _ in range(3):
            subset = {name: [values[index] for index in pending] for name, values in varying.items()}
            inserted = {
                job.id: job
                for job in bulk_insert_varying(
                    template=template, varying=subset, batch_size=batch_size, skip_conflicts=bool(present_keys)
                )
            }
            lost = [index for index in pending if varying["id"][index] not in inserted]
            holders = {}
            if lost:
                lost_keys = [keys[index] for index in lost]
                holders = {
                    job.idempotency_key: job for job in Job.objects.filter(type=job_type, idempotency_key__in=lost_keys)
                }
            for index in pending:
                job_id, key = varying["id"][index], keys[index]
                if job_id in inserted:
                    settled[index] = EnqueueResult(job=inserted[job_id], created=True)
                elif key in holders:
                    settled[index] = EnqueueResult(job=holders[key], created=False)
            pending = [index for index in pending if index not in settled]
            if not pending:
                break
        else:
            raise IntegrityError(f"could not settle {len(pending)} idempotency key(s) of {job_type!r} after 3 tries")
    results = [settled[index] for index in range(len(payloads))]
    created = [result.job for result in results if result.created]
    _publish_on_commit(created)
    return results


# ---------------------------------------------------------------------------
# Publishing (the only place that talks to the broker)
# ---------------------------------------------------------------------------


def _publish_on_commit(jobs: Sequence[Job], *, countdown: float | None = None) -> None:
    if not jobs:
        return
    refs = [(job.id, job.type, job.queue, job.attempt + 1, job.correlation_id) for job in jobs]
    transaction.on_commit(lambda: publish_messages(refs, countdown=countdown), robust=True)


def task_id_for(job_id: str, attempt: int) -> str:
    # Deterministic, so an attempt links to its Celery result and back.
    return f"{job_id}.{attempt}"


def publish_messages(refs: Sequence[tuple[str, str, str, int, str]], *, countdown: float | None = None) -> int:
    """Send one message per (job_id, type, queue, attempt, correlation_id); mark the rows published.

    Never raises for a broker outage: the rows stay unpublished and the relay retries.
    Returns how many were published.
    """
    from config.celery_app import app

    from .publisher import publish_batch

    try:
        published = publish_batch(
            app,
            [
                {
                    "task": job_type,
                    "queue": queue,
                    "task_id": task_id_for(job_id, attempt),
                    "kwargs": {"job_id": job_id, "attempt": attempt, "schema_version": MESSAGE_SCHEMA_VERSION},
                    "headers": {"correlation_id": correlation_id, "job_id": job_id},
                    "countdown": countdown,
                }
                for job_id, job_type, queue, attempt, correlation_id in refs
            ],
        )
    except Exception as exc:  # broker unreachable, or anything kombu raises while publishing
        logger.warning(
            "publishing %d job message(s) failed (%s: %s); the relay will publish them when the broker is back",
            len(refs), exc.__class__.__name__, exc,
        )  # fmt: skip
        return 0
    if published:
        _mark_published(refs)
    return published


def _mark_published(refs: Sequence[tuple[str, str, str, int, str]], *, chunk: int = 5000) -> None:
    """Stamp published_at, in a few set-based UPDATEs rather than one per job."""
    now = timezone.now()
    by_attempt: dict[int, list[str]] = {}
    for job_id, _type, _queue, attempt, _cid in refs:
        by_attempt.setdefault(attempt, []).append(job_id)
    for attempt, job_ids in by_attempt.items():
        for start in range(0, len(job_ids), chunk):
            # Only jobs still waiting for exactly this attempt's message.
            _stamp_published(job_ids=job_ids[start : start + chunk], previous_attempt=attempt - 1, now=now)


def _stamp_published(*, job_ids: list[str], previous_attempt: int, now) -> None:
    if connection.vendor == "postgresql":
        # One array parameter instead of an IN list of thousands: far less to build and parse.
        # Without the flush wait: a stamp lost in a database crash only makes the relay publish
        # the job again, and the attempt guard runs one delivery of an attempt.
        table = connection.ops.quote_name(Job._meta.db_table)
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {table} SET published_at = %s{_no_flush_wait()} WHERE id = ANY(%s::varchar[]) "  # noqa: S608
                "AND attempt = %s "
                "AND published_at IS NULL",
                [now, job_ids, previous_attempt],
            )
        return
    Job.objects.filter(id__in=job_ids, attempt=previous_attempt, published_at__isnull=True).update(published_at=now)


def job_relay_unpublished(*, job_type: str | None = None, grace_seconds: float | None = None, limit: int = 500) -> int:
    """Publish due jobs whose message never reached the broker, or was lost after it did.

    - Never published (broker down at commit, crash in between): ``grace_seconds`` (default
      JOBS_RELAY_GRACE_SECONDS) leaves fresh rows to their own on-commit publish.
    - Published but still waiting ``JOBS_REPUBLISH_AFTER_SECONDS`` after they were due, on a
      queue whose broker list is empty: the message may sit unacknowledged with a worker that
      was killed (Redis returns it only after the visibility timeout, an hour by default) or
      have been lost with a Redis without persistence. While messages still wait in the list,
      a long wait is a backlog, not a loss, and nothing is sent again (duplicates would only
      lengthen it). Publishing again is safe: the attempt guard runs one delivery of an attempt.
    """
    if grace_seconds is None:
        grace_seconds = getattr(settings, "JOBS_RELAY_GRACE_SECONDS", 10)
    now = timezone.now()
    stale_before = now - timedelta(seconds=getattr(settings, "JOBS_REPUBLISH_AFTER_SECONDS", 600))
    waiting = Job.objects.filter(status__in=[S.QUEUED, S.RETRYING])
    if job_type:
        waiting = waiting.filter(type=job_type)
    disabled = disabled_job_types()
    if disabled:
        waiting = waiting.exclude(type__in=disabled)
    unpublished = waiting.filter(
        published_at__isnull=True, updated_at__lte=now - timedelta(seconds=grace_seconds)
    ).exclude(next_retry_at__gt=now)
    stale = waiting.filter(published_at__lt=stale_before).exclude(next_retry_at__gt=stale_before)
    stale_queues = set(stale.order_by().values_list("queue", flat=True).distinct())
    if stale_queues:
        from .publisher import queue_depths

        depths = queue_depths(sorted(stale_queues))
        stale = stale.filter(queue__in=[queue for queue in stale_queues if depths.get(queue) == 0])
    published = 0
    for rows, label in ((unpublished, "unpublished"), (stale, "stale")):
        refs = [
            (job_id, type_, queue, attempt + 1, cid)
            for job_id, type_, queue, attempt, cid in rows.order_by("created_at").values_list(
                "id", "type", "queue", "attempt", "correlation_id"
            )[:limit]
        ]
        if not refs:
            continue
        if label == "stale":
            # Clear the stamp first: publish_messages stamps only unpublished rows.
            Job.objects.filter(id__in=[ref[0] for ref in refs], published_at__lt=stale_before).update(published_at=None)
        count = publish_messages(refs)
        published += count
        logger.info("relay published %d of %d %s job(s)", count, len(refs), label)
    return published


# ---------------------------------------------------------------------------
# Operator actions: retry, replay, cancel
# ---------------------------------------------------------------------------


def audit_record(
    *, actor, action: str, jobs: Sequence[Job] | Sequence[str], detail: dict | None = None, actor_label: str = ""
) -> JobAuditEntry:
    """Write who did what to which jobs. ``actor`` is a user or None (then ``actor_label`` names the caller)."""
    job_ids = [job.id if isinstance(job, Job) else job for job in jobs]
    label = actor_label or (actor.get_username() if getattr(actor, "pk", None) else "system")
    return JobAuditEntry.objects.create(
        actor=actor if getattr(actor, "pk", None) else None,
        actor_label=label or "system",
        action=action,
        job_ids=job_ids,
        job_count=len(job_ids),
        detail=detail or {},
    )


def job_retry(*, job: Job, actor=None, audit: bool = True) -> bool:
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
        _publish_on_commit([job])
        if audit:
            audit_record(actor=actor, action="retry", jobs=[job])
    return moved


def job_bulk_replay(*, jobs: Sequence[Job]) -> list[Job]:
    """Replay many finished jobs as new jobs: one insert per job type, one publish after commit.

    Each new job has its original's type, payload, owner and correlation id and links to it
    (``replay_of``); the new jobs come back in input order. The caller writes the audit entry.
    Raises IllegalTransition if any job is not finished and JobTypeDisabled if any type is
    switched off, before writing anything.
    """
    unfinished = [job.id for job in jobs if not job.is_finished]
    if unfinished:
        raise IllegalTransition(
            f"{len(unfinished)} of the jobs are not finished; only succeeded, failed, dead or cancelled jobs "
            f"can be replayed (e.g. {', '.join(unfinished[:5])})",
            detail={"job_ids": unfinished[:100]},
        )
    by_type: dict[str, list[Job]] = {}
    for job in jobs:
        by_type.setdefault(job.type, []).append(job)
    specs = {job_type: registry.get(job_type) for job_type in by_type}
    for job_type in by_type:
        _ensure_enabled(job_type)
    now = timezone.now()
    new_by_original: dict[str, Job] = {}
    with transaction.atomic():
        for job_type, originals in by_type.items():
            spec = specs[job_type]
            template = Job(type=job_type, queue=spec.queue, max_attempts=spec.retry.max_attempts, enqueued_at=now,
                           created_at=now, updated_at=now)  # fmt: skip
            created = bulk_insert_varying(template=template, varying={
                "id": [new_job_id() for _ in originals],
                "payload": [original.payload for original in originals],
                "payload_fingerprint": [original.payload_fingerprint or payload_fingerprint(original.payload)
                                        for original in originals],
                "owner_id": [original.owner_id for original in originals],
                "correlation_id": [original.correlation_id for original in originals],
                "replay_of_id": [original.id for original in originals],
            })  # fmt: skip
            new_by_original.update(zip([original.id for original in originals], created, strict=True))
    new_jobs = [new_by_original[job.id] for job in jobs]
    _publish_on_commit(new_jobs)
    return new_jobs


def job_bulk_replay_dead(
    *,
    job_type: str | None = None,
    actor=None,
    actor_label: str = "",
    limit: int = 100_000,
    chunk_size: int = 1000,
    on_progress: Callable[[int, int], None] | None = None,
) -> list[Job]:
    """Replay the dead-letter queue (optionally one type's part of it) as new jobs.

    Replayed jobs leave the queue (``Job.objects.dead_letter``), so running this twice replays
    each job once. Works through the queue in chunks of ``chunk_size`` (oldest first), reporting
    ``on_progress(done, total)`` after each, with an audit entry per chunk. Outside a caller's
    transaction each chunk commits (and publishes) on its own: a failure part-way leaves the
    chunks before it replayed and the rest in the queue, for the next run.
    """
    dead = Job.objects.dead_letter()
    if job_type:
        dead = dead.filter(type=job_type)
    original_ids = list(dead.order_by("created_at", "id").values_list("id", flat=True)[:limit])
    new_jobs: list[Job] = []
    for start in range(0, len(original_ids), chunk_size):
        chunk_ids = original_ids[start : start + chunk_size]
        with transaction.atomic():
            # Locked and checked again: another operator may have retried or replayed some meanwhile.
            locked = Job.objects.filter(id__in=chunk_ids).select_for_update().values_list("id", flat=True)
            originals = list(Job.objects.dead_letter().filter(id__in=list(locked)).order_by("created_at", "id"))
            created = job_bulk_replay(jobs=originals)
            audit_record(
                actor=actor, action="bulk_replay_dead", jobs=originals, actor_label=actor_label,
                detail={"type": job_type, "new_job_ids": [job.id for job in created]},
            )  # fmt: skip
        new_jobs.extend(created)
        if on_progress:
            on_progress(min(start + chunk_size, len(original_ids)), len(original_ids))
    return new_jobs


def job_cancel(*, job: Job, actor=None, audit: bool = True) -> str:
    """Cancel a waiting job at once, or ask a running one to stop at its next check.

    Returns the job's status afterwards (``cancelled``, or ``running`` with the request recorded).
    """
    now = timezone.now()
    if job_transition(
        job_id=job.id, from_statuses=[S.QUEUED, S.RETRYING], to_status=S.CANCELLED, finished_at=now,
        cancel_requested=True,
    ):  # fmt: skip
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
        audit_record(actor=actor, action="cancel", jobs=[job], detail={"outcome": outcome})
    job.refresh_from_db()
    return outcome


def job_get(*, job_id: str) -> Job:
    try:
        return Job.objects.get(id=job_id)
    except Job.DoesNotExist:
        raise JobNotFound(f"no job with id {job_id!r}") from None


def job_finish_succeeded(*, job: Job, finished_at, result) -> bool:
    """running -> succeeded, with its attempt row and Celery result row, atomically.

    Every successful job passes here, so on PostgreSQL the three writes are one
    statement (data-modifying CTEs: one round trip, one commit). Elsewhere the ORM does
    them in one transaction. Returns False if the job was no longer running.
    """
    check_transition(S.RUNNING, S.SUCCEEDED)
    if connection.vendor != "postgresql":
        with transaction.atomic():
            moved = job_transition(
                job_id=job.id, from_statuses=[S.RUNNING], to_status=S.SUCCEEDED, finished_at=finished_at,
                progress=100, result=result, error_code="", error_message="", error_traceback="",
            )  # fmt: skip
            if moved:
                job_record_attempt(job=job, outcome=JobAttempt.Outcome.SUCCEEDED, finished_at=finished_at)
        return moved
    quote = connection.ops.quote_name
    jobs, attempts, results = (quote(model._meta.db_table) for model in (Job, JobAttempt, TaskResult))
    duration_ms = int((finished_at - job.started_at).total_seconds() * 1000) if job.started_at else None
    summary = json.dumps({"job_id": job.id, "attempt": job.attempt, "outcome": "succeeded"})
    sql = f"""
        WITH moved AS (
            UPDATE {jobs} SET status = %(succeeded)s, finished_at = %(now)s, updated_at = %(now)s, progress = 100,
                   result = %(result)s::jsonb, error_code = '', error_message = '', error_traceback = ''
             WHERE id = %(job_id)s AND status = %(running)s
         RETURNING id
        ), attempt AS (
            INSERT INTO {attempts} (job_id, number, outcome, started_at, finished_at, duration_ms, worker,
                                    celery_task_id, error_code, error_message, error_traceback)
            SELECT id, %(attempt)s, %(succeeded)s, %(started)s, %(now)s, %(duration)s, %(worker)s, %(task_id)s,
                   '', '', '' FROM moved
         RETURNING job_id
        ), celery_result AS (
            INSERT INTO {results} (task_id, task_name, status, result, content_type, content_encoding, worker,
                                   date_started, date_done, date_created, task_kwargs)
            SELECT %(task_id)s, %(type)s, 'SUCCESS', %(summary)s, 'application/json', 'utf-8', %(worker)s,
                   %(started)s, %(now)s, %(now)s, %(kwargs)s FROM attempt WHERE %(task_id)s <> ''
                ON CONFLICT (task_id) DO UPDATE SET status = 'SUCCESS', result = EXCLUDED.result,
                   date_done = EXCLUDED.date_done, worker = EXCLUDED.worker
        )
        SELECT count(*) FROM moved
    """  # noqa: S608 - table names come from model metadata, values are parameters
    params = {
        "succeeded": S.SUCCEEDED.value, "running": S.RUNNING.value, "now": finished_at, "job_id": job.id,
        "result": json.dumps(result), "attempt": job.attempt, "started": job.started_at, "duration": duration_ms,
        "worker": job.worker or None, "task_id": job.celery_task_id, "type": job.type, "summary": summary,
        "kwargs": json.dumps({"job_id": job.id, "attempt": job.attempt}),
    }  # fmt: skip
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()[0] == 1


# Celery states for the result row each attempt leaves, by attempt outcome.
_CELERY_STATE_FOR_OUTCOME = {
    JobAttempt.Outcome.SUCCEEDED: "SUCCESS",
    JobAttempt.Outcome.RETRY: "RETRY",
    JobAttempt.Outcome.FAILED: "FAILURE",
    JobAttempt.Outcome.DEAD: "FAILURE",
    JobAttempt.Outcome.CANCELLED: "REVOKED",
    JobAttempt.Outcome.SKIPPED: "REVOKED",
}


def job_record_attempt(
    *, job: Job, outcome: str, finished_at, error_code="", error_message="", error_traceback="", retry_delay_ms=None
) -> JobAttempt:
    """Record how an attempt ended, and the Celery result row for it, in the caller's transaction.

    Tracked tasks do not use the result backend's own write (``ignore_result``): writing
    the django-celery-results row here keeps it consistent with the job and saves a
    commit per job. Attempts that never reached a worker's end (lost, snoozed) have none.
    """
    started_at = job.started_at
    duration_ms = int((finished_at - started_at).total_seconds() * 1000) if started_at else None
    attempt = JobAttempt.objects.create(
        job_id=job.id, number=job.attempt, outcome=outcome, started_at=started_at, finished_at=finished_at,
        duration_ms=duration_ms, worker=job.worker, celery_task_id=job.celery_task_id, error_code=error_code,
        error_message=error_message, error_traceback=error_traceback, retry_delay_ms=retry_delay_ms,
    )  # fmt: skip
    celery_state = _CELERY_STATE_FOR_OUTCOME.get(outcome)
    if celery_state and job.celery_task_id:
        summary = {"job_id": job.id, "attempt": job.attempt, "outcome": outcome}
        if error_code:
            summary["error"] = error_code
        fields = {
            "task_name": job.type, "status": celery_state, "result": json.dumps(summary),
            "content_type": "application/json", "content_encoding": "utf-8", "worker": job.worker or None,
            "date_started": started_at, "date_done": finished_at, "traceback": error_traceback or None,
            "task_kwargs": json.dumps({"job_id": job.id, "attempt": job.attempt}),
        }  # fmt: skip
        # One INSERT ... ON CONFLICT DO UPDATE: an upsert without a read first.
        TaskResult.objects.bulk_create(
            [TaskResult(task_id=job.celery_task_id, **fields)],
            update_conflicts=True, unique_fields=["task_id"], update_fields=list(fields),
        )  # fmt: skip
    return attempt
