"""Enqueueing jobs: one or many, transactional, durable, idempotent within a window."""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.db import DEFAULT_DB_ALIAS, IntegrityError, connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.utils import timezone

from jobs.coordination.locks import ADVISORY_LOCK_NAMESPACE, transaction_lock
from jobs.core import registry
from jobs.core.publisher import publish_on_commit
from jobs.core.schema import validate, with_defaults
from jobs.core.switches import job_type_is_enabled, switched_off_sql
from jobs.foundation import metrics
from jobs.foundation.bulkinsert import bulk_insert_varying, insert_one_statement
from jobs.foundation.context import get_correlation_id, new_correlation_id
from jobs.foundation.exceptions import (
    IdempotencyKeyConflict,
    JobsError,
    JobTypeDisabled,
    PayloadInvalid,
    ScheduleInvalid,
)
from jobs.foundation.rowreader import column_name, table_name
from jobs.models import Job, new_job_id


def job_holding_idempotency_key(*, idempotency_key: str, job_types: list[str]) -> Job | None:
    """The job among ``job_types`` whose idempotency key (still within its window) is ``idempotency_key``, if any.

    ``job_types`` keeps the lookup on the (type, idempotency_key) unique index instead of a table scan.
    """
    if not job_types:
        return None
    # Hand-written SQL (jobs.foundation.rowreader's reasoning): every API enqueue with a key asks this.
    db = connections[DEFAULT_DB_ALIAS]
    with db.cursor() as cursor:
        cursor.execute(
            idempotency_holder_sql(db, type_count=len(job_types)), [idempotency_key, *job_types, timezone.now()]
        )
        row = cursor.fetchone()
    return Job.from_db(db.alias, ["id", "type"], list(row)) if row is not None else None  # the others deferred


def idempotency_holder_sql(db: BaseDatabaseWrapper, *, type_count: int) -> str:
    """SELECT id, type of the job holding a key within its window; parameters: the key, ``type_count`` types, now."""
    table = table_name(db, Job)
    column = {
        name: f"{table}.{column_name(db, Job, name)}"
        for name in ("pk", "type", "idempotency_key", "idempotency_expires_at")
    }
    return (f"SELECT {column['pk']}, {column['type']} FROM {table} WHERE {column['idempotency_key']} = %s "  # noqa: S608
            f"AND {column['type']} IN ({', '.join(['%s'] * type_count)}) AND {column['idempotency_expires_at']} > %s")  # fmt: skip


def payload_fingerprint(payload: dict[str, Any]) -> str:
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class EnqueueResult:
    job: Job
    created: bool


def job_validate_payload(*, job_type: str, payload: dict[str, Any]) -> dict[str, Any]:
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


def due_time(*, run_at: datetime | None = None, delay: timedelta | None = None, now: datetime) -> datetime | None:
    """When a job asked to run later is due: ``run_at`` (aware) or ``now + delay``; None to run now.

    A due time in the past runs now (and keeps it as its due time). Raises ScheduleInvalid, naming the field,
    for a naive ``run_at``, both given, or a due time beyond the horizon (``JOBS_SCHEDULE_HORIZON_DAYS``).
    """
    if run_at is not None and delay is not None:
        raise ScheduleInvalid("give either run_at or delay, not both", detail={"field": "run_at"})
    if delay is not None:
        if not isinstance(delay, timedelta):
            raise ScheduleInvalid(f"delay must be a timedelta, got {type(delay).__name__}", detail={"field": "delay"})
        run_at, field = now + max(delay, timedelta(0)), "delay"
    elif run_at is not None:
        if not isinstance(run_at, datetime):
            raise ScheduleInvalid(f"run_at must be a datetime, got {type(run_at).__name__}", detail={"field": "run_at"})
        if timezone.is_naive(run_at):
            raise ScheduleInvalid(
                f"run_at {run_at.isoformat()} has no time zone; pass an aware datetime (e.g. with tzinfo=UTC)",
                detail={"field": "run_at"},
            )
        field = "run_at"
    else:
        return None
    horizon = timedelta(days=float(getattr(settings, "JOBS_SCHEDULE_HORIZON_DAYS", 365)))
    if run_at > now + horizon:
        message = (f"the due time {run_at.isoformat()} is more than {horizon.days} days ahead "
                   "(JOBS_SCHEDULE_HORIZON_DAYS); schedule it closer, or enqueue it later")  # fmt: skip
        raise ScheduleInvalid(
            f"{field}: {message}",
            detail={"field": field, "horizon_days": horizon.days, "errors": [{"field": field, "message": message}]},
        )
    return run_at


def publish_when_due(jobs: Sequence[Job], *, now: datetime) -> None:
    """Publish after commit the jobs that are due; a job that runs later waits for the scheduler's tick."""
    publish_on_commit([job for job in jobs if job.run_at is None or job.run_at <= now])


def _idempotency_window() -> timedelta:
    return timedelta(seconds=getattr(settings, "JOBS_IDEMPOTENCY_WINDOW_SECONDS", 24 * 3600))


@dataclass(frozen=True)
class _Wanted:
    """One job_enqueue call's job, before it becomes a row."""

    job_type: str
    payload: dict[str, Any]
    owner: AbstractUser | None
    idempotency_key: str | None
    correlation_id: str | None
    replay_of: Job | None
    run_at: datetime | None = None


def _new_job(wanted: _Wanted, *, now: datetime) -> Job:
    job_type, payload, idempotency_key = wanted.job_type, wanted.payload, wanted.idempotency_key
    owner, correlation_id, replay_of = wanted.owner, wanted.correlation_id, wanted.replay_of
    spec = registry.get(job_type)
    return Job(
        type=job_type,
        queue=spec.queue,
        max_attempts=spec.retry.max_attempts,
        owner=cast(Any, owner),  # the project's user model, whichever it is
        payload=payload,
        payload_fingerprint=payload_fingerprint(payload),
        idempotency_key=idempotency_key or None,
        idempotency_expires_at=(now + _idempotency_window()) if idempotency_key else None,
        correlation_id=correlation_id or get_correlation_id() or new_correlation_id(),
        replay_of=replay_of,
        enqueued_at=now,
        run_at=wanted.run_at,
    )


def ensure_enabled(job_type: str) -> None:
    """Raise JobTypeDisabled when ``job_type`` is switched off."""
    if not job_type_is_enabled(job_type=job_type):
        raise JobTypeDisabled(
            f"job type {job_type!r} is switched off; enqueue it again once an operator switches it back on",
            detail={"type": job_type},
        )


def _release_expired_keys(*, job_type: str, keys: Sequence[str | None], now: datetime) -> None:
    # Conditional: only keys whose window has passed are freed, so a racing enqueue
    # that already re-used one is never disturbed.
    Job.objects.filter(type=job_type, idempotency_key__in=keys, idempotency_expires_at__lte=now).update(
        idempotency_key=None
    )


def job_enqueue(
    *,
    job_type: str,
    payload: dict[str, Any] | None = None,
    owner: AbstractUser | None = None,
    idempotency_key: str | None = None,
    correlation_id: str | None = None,
    replay_of: Job | None = None,
    key_exclusive_among: Sequence[str] = (),
    run_at: datetime | None = None,
    delay: timedelta | None = None,
) -> EnqueueResult:
    """Create a job and publish it when the surrounding transaction commits.

    - Transactional: if the caller's transaction rolls back, no job exists and nothing runs.
    - Durable: the row is written first; if the broker is down at commit time the
      relay (``jobs.delivery.relay``) publishes it later.
    - Idempotent: the same (type, idempotency_key) within the window returns the existing
      job (``created=False``); the database's unique constraint settles concurrent calls.
      The same key with a different payload raises IdempotencyKeyConflict.
    - ``key_exclusive_among``: job types sharing one key space (the API's: a key is one request).
      A key held within its window by another of these types raises IdempotencyKeyConflict too; a
      lock on the key makes that check and the insert one step for concurrent calls.
    - Later: ``run_at`` (an aware datetime) or ``delay`` (a timedelta) stores the job as queued with that due
      time; the scheduler's tick publishes it once due (``jobs.delivery.scheduled``). A due time in the past
      runs now; ScheduleInvalid for a naive ``run_at`` or one beyond ``JOBS_SCHEDULE_HORIZON_DAYS``.
    """
    registry.get(job_type)
    wanted = _Wanted(job_type=job_type, payload=payload or {}, owner=owner, idempotency_key=idempotency_key,
                     correlation_id=correlation_id, replay_of=replay_of,
                     run_at=due_time(run_at=run_at, delay=delay, now=timezone.now()))  # fmt: skip
    if not (idempotency_key and key_exclusive_among):
        return _enqueue_one(wanted)
    job = _new_job(wanted, now=timezone.now())
    if _insert_while_key_free(job, key_exclusive_among=key_exclusive_among):
        publish_when_due([job], now=cast(datetime, job.enqueued_at))
        metrics.jobs_enqueued(job_type=job.type, queue=job.queue)
        return EnqueueResult(job=job, created=True)
    # Something stands in the way (a holder, a switch, an expired key): the general path says what.
    with transaction.atomic():
        transaction_lock(_key_lock_name(idempotency_key))
        holder = job_holding_idempotency_key(idempotency_key=idempotency_key, job_types=list(key_exclusive_among))
        if holder is not None and holder.type != job_type:
            raise IdempotencyKeyConflict(
                f"idempotency key {idempotency_key!r} was already used for job {holder.id} of type {holder.type!r}; "
                "use a new key for a different request",
                detail={"job_id": holder.id, "idempotency_key": idempotency_key},
            )
        return _enqueue_one(wanted)


def _key_lock_name(idempotency_key: str) -> str:
    # The name the API's view locked before this moved here: old and new processes agree during a deploy.
    return f"api-idempotency:{idempotency_key}"


def _insert_while_key_free(job: Job, *, key_exclusive_among: Sequence[str]) -> bool:
    """Insert ``job`` in one round trip when nothing stands in its way; False (nothing written) otherwise.

    PostgreSQL, when the type is not switched off in settings. The key's lock, then an INSERT guarded by
    "no job of ``key_exclusive_among`` holds the key within its window and the type is not switched off"
    (``ON CONFLICT DO NOTHING`` for an expired holder), and, outside a transaction, BEGIN and COMMIT
    around them: one round trip instead of six (BEGIN, the lock, the holder, the switch, the INSERT,
    COMMIT). With parameters bound on the server (settings: DATABASE_PREPARED_STATEMENTS) the statements
    go as one pipeline, each prepared once per connection; with client-side binding, as one
    simple-protocol query. The lock is its own statement on purpose: under READ COMMITTED each statement
    reads a snapshot taken when it starts, so the guard, starting after the lock is held, sees a holder
    that a concurrent call committed while this one waited; inside one statement the snapshot would
    predate the wait. COMMIT waits for the WAL flush as before, so the row is durable before the caller
    answers.
    """
    db = connections[DEFAULT_DB_ALIAS]
    if db.vendor != "postgresql" or job.type in getattr(settings, "JOBS_DISABLED_TYPES", ()):
        return False
    condition = (
        f"NOT EXISTS ({idempotency_holder_sql(db, type_count=len(key_exclusive_among))}) "
        f"AND NOT EXISTS ({switched_off_sql(db)})"
    )
    insert, values = insert_one_statement(job, condition=condition)
    lock = "SELECT pg_advisory_xact_lock(%s, hashtext(%s))"
    lock_params = [ADVISORY_LOCK_NAMESPACE, _key_lock_name(cast(str, job.idempotency_key))]
    insert_params = [*values, job.idempotency_key, *key_exclusive_among, job.enqueued_at, job.type]
    own_transaction = not db.in_atomic_block and db.get_autocommit()
    pipelined = bool(db.settings_dict.get("OPTIONS", {}).get("server_side_binding"))
    if not own_transaction:
        # Inside the caller's transaction (or a test's): its BEGIN and COMMIT are its own.
        with transaction.atomic():
            inserted = _lock_then_insert(db, lock, lock_params, insert, insert_params, pipelined=pipelined)
    else:
        try:
            inserted = _lock_then_insert(db, lock, lock_params, insert, insert_params, pipelined=pipelined,
                                         begin_and_commit=True)  # fmt: skip
        except Exception:
            # A failed statement leaves the explicit transaction open and aborted: end it here, as Django's
            # atomic would, so the connection is usable again (a broken one is discarded anyway).
            if db.connection is not None and not db.connection.closed:
                with contextlib.suppress(Exception):
                    db.connection.execute("ROLLBACK")
            raise
    if inserted:
        job._state.adding, job._state.db = False, db.alias
    return inserted


def _lock_then_insert(
    db: BaseDatabaseWrapper, lock: str, lock_params: list[Any], insert: str, insert_params: list[Any], *, pipelined: bool,
    begin_and_commit: bool = False,
) -> bool:  # fmt: skip
    """Send the lock and the guarded INSERT (between BEGIN and COMMIT if asked) in one round trip; True when
    the INSERT returned its row."""
    if not pipelined:
        # Client-side binding: one simple-protocol query of several statements, one result each.
        sql = f"BEGIN; {lock}; {insert}; COMMIT" if begin_and_commit else f"{lock}; {insert}"
        with db.cursor() as cursor:
            cursor.execute(sql, [*lock_params, *insert_params])
            if begin_and_commit:
                cursor.nextset()  # past BEGIN's empty result
            cursor.nextset()  # past the lock's row, to the INSERT's RETURNING
            return cursor.fetchone() is not None
    # Server-side binding prepares each statement and a prepared statement holds one: a pipeline sends them
    # all, then waits once for every result. psycopg raises the first error when it syncs, at the pipeline's
    # end, outside any execute(): wrap_database_errors gives it Django's class there too.
    with db.cursor() as control, db.cursor() as locking, db.cursor() as inserting:
        with db.wrap_database_errors, db.connection.pipeline():
            if begin_and_commit:
                control.execute("BEGIN")
            locking.execute(lock, lock_params)
            inserting.execute(insert, insert_params)
            if begin_and_commit:
                control.execute("COMMIT")
        return inserting.fetchone() is not None


def _enqueue_one(wanted: _Wanted) -> EnqueueResult:
    job_type, payload, idempotency_key = wanted.job_type, wanted.payload, wanted.idempotency_key
    if not job_type_is_enabled(job_type=job_type):
        # A retried request whose job already exists gets it back, switch or not.
        replayed = _live_idempotent_job(job_type=job_type, key=idempotency_key, payload=payload)
        if replayed is not None:
            return EnqueueResult(job=replayed, created=False)
        ensure_enabled(job_type)
    now = timezone.now()
    job = _new_job(wanted, now=now)
    if idempotency_key:
        existing = _insert_idempotent(job, now=now)
        if existing is not None:
            return EnqueueResult(job=existing, created=False)
    else:
        job.save(force_insert=True)
    publish_when_due([job], now=now)
    metrics.jobs_enqueued(job_type=job.type, queue=job.queue)
    return EnqueueResult(job=job, created=True)


def _live_idempotent_job(*, job_type: str, key: str | None, payload: dict[str, Any]) -> Job | None:
    if not key:
        return None
    return Job.objects.filter(
        type=job_type, idempotency_key=key, idempotency_expires_at__gt=timezone.now(),
        payload_fingerprint=payload_fingerprint(payload),
    ).first()  # fmt: skip


def _insert_idempotent(job: Job, *, now: datetime) -> Job | None:
    """Insert ``job``; on a key collision return the job already holding the key.

    ``ON CONFLICT DO NOTHING`` instead of catching the unique violation: no savepoint around the
    INSERT, two round trips fewer inside the API's transaction. A concurrent holder that has not
    committed yet is waited for, as the plain INSERT waited before raising.
    """
    for _ in range(3):
        if bulk_insert_varying(template=job, varying={"id": [job.id]}, skip_conflicts=True):
            job._state.adding, job._state.db = False, "default"  # saved (pre_save filled its timestamps)
            return None
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
            )
        return existing
    raise IntegrityError(f"could not settle idempotency key {job.idempotency_key!r} after 3 tries")


def job_bulk_enqueue(
    *,
    job_type: str,
    payloads: Sequence[dict[str, Any] | None],
    idempotency_keys: Sequence[str | None] | None = None,
    owner: AbstractUser | None = None,
    correlation_id: str | None = None,
    batch_size: int = 5000,
    run_at: datetime | None = None,
    delay: timedelta | None = None,
) -> list[EnqueueResult]:
    """Enqueue many jobs of one type: one multi-row insert per batch, one pipelined publish.

    Same guarantees as ``job_enqueue``: nothing runs if the transaction rolls back, and
    the rows are written before anything is published. A key already used within the
    window returns the job holding it (``created=False``), whatever its payload: fan-out
    callers derive keys from the event they handle, so a repeated key is a repeated event.
    Results are in input order. ``run_at`` / ``delay`` give every job of the call one due time, as in
    ``job_enqueue``.
    """
    spec = registry.get(job_type)
    ensure_enabled(job_type)
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
    due = due_time(run_at=run_at, delay=delay, now=now)
    filled: list[dict[str, Any]] = [payload or {} for payload in payloads]
    # Everything but these columns is the same for every job of the call.
    template = Job(
        type=job_type, queue=spec.queue, max_attempts=spec.retry.max_attempts, owner=cast(Any, owner),
        correlation_id=correlation_id or get_correlation_id() or new_correlation_id(), enqueued_at=now,
        created_at=now, updated_at=now, run_at=due,
    )  # fmt: skip
    varying: dict[str, list[Any]] = {
        "id": [new_job_id() for _ in payloads],
        "payload": filled,
        "payload_fingerprint": [payload_fingerprint(payload) for payload in filled],
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
    publish_when_due(created, now=now)
    metrics.jobs_enqueued(job_type=job_type, queue=created[0].queue if created else "", count=len(created))
    return results


@dataclass(frozen=True)
class WantedJob:
    """One job of a ``job_enqueue_many`` call: its type, its (validated) payload, its idempotency key if any, and
    its due time if it runs later (already checked: ``due_time``)."""

    job_type: str
    payload: dict[str, Any]
    idempotency_key: str | None = None
    run_at: datetime | None = None


class BatchRefused(JobsError):
    """``job_enqueue_many(all_or_nothing=True)`` refused an item, so nothing was written; ``refused`` maps each
    refused item's index to its error."""

    code = "batch_refused"

    def __init__(self, refused: Mapping[int, JobsError]):
        first = min(refused)
        super().__init__(
            f"{len(refused)} item(s) refused (the first at position {first}: {refused[first].message}); "
            "atomic: nothing was enqueued",
            detail={"refused": sorted(refused)},
        )  # fmt: skip
        self.refused = dict(refused)


def job_enqueue_many(
    *,
    wanted: Sequence[WantedJob],
    owner: AbstractUser | None = None,
    correlation_id: str | None = None,
    key_exclusive_among: Sequence[str] = (),
    all_or_nothing: bool = False,
) -> list[EnqueueResult | JobsError]:
    """Enqueue jobs of one or several types in one transaction; one result per item, in order.

    Each item is created (``EnqueueResult.created``), replayed (its key is held within its window by a job of
    the same type and payload: that job) or refused (the error: the key held by another type of
    ``key_exclusive_among`` or with another payload, IdempotencyKeyConflict; the type switched off,
    JobTypeDisabled). A refused item does not stop the others unless ``all_or_nothing``: then BatchRefused is
    raised and nothing is written. Keys must be unique within the call (ValueError otherwise).

    The same guarantees as ``job_enqueue``: rows first, messages after the commit (one pipelined publish for
    the whole call), nothing if the caller's transaction rolls back. Keyed items take the same per-key lock as
    ``job_enqueue`` (all at once, in key order), so a single and a bulk enqueue of one key settle one after
    the other. Round trips: the switches (one per type), the locks and holders (keyed items only), one
    multi-row INSERT, the published stamp after the commit.
    """
    keys = [item.idempotency_key for item in wanted if item.idempotency_key]
    if len(set(keys)) != len(keys):
        raise ValueError("idempotency keys repeat within one job_enqueue_many call; each job needs its own key")
    checked_at = timezone.now()
    for item in wanted:
        registry.get(item.job_type)
        due_time(run_at=item.run_at, now=checked_at)  # ScheduleInvalid for the whole call: naive, or too far ahead
    outcomes: list[EnqueueResult | JobsError | None] = [None] * len(wanted)
    with transaction.atomic():
        now = timezone.now()
        enabled = {job_type: job_type_is_enabled(job_type=job_type) for job_type in {item.job_type for item in wanted}}
        holders = _lock_keys_and_find_holders(keys, job_types=list(key_exclusive_among), wanted=wanted, now=now)
        to_insert: list[int] = []
        for index, item in enumerate(wanted):
            holder = holders.get(item.idempotency_key) if item.idempotency_key else None
            outcome = _settled_by_holder(item, holder) if holder is not None else None
            if outcome is None and not enabled[item.job_type]:
                outcome = JobTypeDisabled(
                    f"job type {item.job_type!r} is switched off; enqueue it again once an operator switches it "
                    "back on", detail={"type": item.job_type},
                )  # fmt: skip
            if outcome is None:
                to_insert.append(index)
            else:
                outcomes[index] = outcome
        refused = {index: outcome for index, outcome in enumerate(outcomes) if isinstance(outcome, JobsError)}
        if refused and all_or_nothing:
            raise BatchRefused(refused)
        for index, job in zip(to_insert, _insert_many([wanted[i] for i in to_insert], owner=owner,
                                                      correlation_id=correlation_id, now=now), strict=True):  # fmt: skip
            outcomes[index] = EnqueueResult(job=job, created=True)
    created = [outcome.job for outcome in outcomes if isinstance(outcome, EnqueueResult) and outcome.created]
    publish_when_due(created, now=now)
    for (job_type, queue), count in Counter((job.type, job.queue) for job in created).items():
        metrics.jobs_enqueued(job_type=job_type, queue=queue, count=count)
    return cast(list[EnqueueResult | JobsError], outcomes)


def _lock_keys_and_find_holders(
    keys: list[str], *, job_types: list[str], wanted: Sequence[WantedJob], now: datetime
) -> dict[str, Job]:
    """Lock every key (in key order: two calls sharing keys wait, never deadlock) and return the live holder of
    each key among ``job_types`` (default: the call's own types); holders whose window has passed lose the key."""
    if not keys:
        return {}
    types = job_types or sorted({item.job_type for item in wanted})
    db = connections[DEFAULT_DB_ALIAS]
    if db.vendor == "postgresql":
        # One statement for every lock; the subquery's order (fenced by OFFSET 0) is the order they are taken in.
        with db.cursor() as cursor:
            cursor.execute(
                "SELECT count(pg_advisory_xact_lock(%s, hashtext(name))) FROM "
                "(SELECT name FROM unnest(%s::text[]) AS name ORDER BY name OFFSET 0) AS names",
                [ADVISORY_LOCK_NAMESPACE, sorted(_key_lock_name(key) for key in keys)],
            )
    found = list(Job.objects.filter(idempotency_key__in=keys, type__in=types)
                 .only("id", "type", "status", "idempotency_key", "idempotency_expires_at", "payload_fingerprint"))  # fmt: skip
    expired = [job for job in found if job.idempotency_expires_at is not None and job.idempotency_expires_at <= now]
    if expired:
        Job.objects.filter(id__in=[job.id for job in expired], idempotency_expires_at__lte=now).update(
            idempotency_key=None
        )
    return {cast(str, job.idempotency_key): job for job in found if job not in expired}


def _settled_by_holder(item: WantedJob, holder: Job) -> EnqueueResult | JobsError:
    if holder.type != item.job_type or holder.payload_fingerprint != payload_fingerprint(item.payload):
        what = f"of type {holder.type!r}" if holder.type != item.job_type else "with a different payload"
        return IdempotencyKeyConflict(
            f"idempotency key {item.idempotency_key!r} was already used for job {holder.id} {what}; "
            "use a new key for a different request",
            detail={"job_id": holder.id, "idempotency_key": item.idempotency_key},
        )
    return EnqueueResult(job=holder, created=False)


def _insert_many(items: Sequence[WantedJob], *, owner: AbstractUser | None, correlation_id: str | None,
                 now: datetime) -> list[Job]:  # fmt: skip
    """One multi-row INSERT of ``items`` (any types), in their order; the caller holds their keys' locks."""
    if not items:
        return []
    specs = [registry.get(item.job_type) for item in items]
    template = Job(owner=cast(Any, owner), enqueued_at=now, created_at=now, updated_at=now,
                   correlation_id=correlation_id or get_correlation_id() or new_correlation_id())  # fmt: skip
    expires_at = now + _idempotency_window()
    varying: dict[str, list[Any]] = {
        "id": [new_job_id() for _ in items],
        "type": [item.job_type for item in items],
        "queue": [spec.queue for spec in specs],
        "max_attempts": [spec.retry.max_attempts for spec in specs],
        "payload": [item.payload for item in items],
        "payload_fingerprint": [payload_fingerprint(item.payload) for item in items],
        "idempotency_key": [item.idempotency_key or None for item in items],
        "idempotency_expires_at": [expires_at if item.idempotency_key else None for item in items],
        "run_at": [item.run_at for item in items],
    }
    # A conflict is impossible under the locks for keys only ``job_enqueue_many`` and the API write; a key
    # written without the lock (``job_enqueue`` without key_exclusive_among) makes the INSERT fail instead.
    inserted = {job.id: job for job in bulk_insert_varying(template=template, varying=varying)}
    return [inserted[job_id] for job_id in varying["id"]]
