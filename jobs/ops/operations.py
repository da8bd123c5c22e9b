"""Operator actions on many jobs: replay as new jobs, drain the dead-letter queue, switch a type on or off.

Single-job transitions an operator asks for (retry, cancel) live with the rest of the
lifecycle in ``jobs.core.lifecycle``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from django.db import transaction
from django.utils import timezone

from jobs.core import registry
from jobs.core.audit import Action, audit_record
from jobs.core.publisher import publish_on_commit
from jobs.delivery.enqueue import ensure_enabled, payload_fingerprint
from jobs.delivery.relay import job_relay_unpublished
from jobs.foundation.bulkinsert import bulk_insert_varying
from jobs.foundation.exceptions import IllegalTransition
from jobs.models import FINISHED_STATUSES, Job, JobTypeSwitch, new_job_id


def job_type_set_enabled(*, job_type: str, enabled: bool, reason: str = "", actor: Any = None) -> JobTypeSwitch:
    """Switch a declared job type on or off, with an audit entry.

    Raises UnknownJobType for a name no code declares. Switched on, the jobs that waited
    meanwhile are published when the transaction commits rather than at the next relay tick.
    """
    registry.get(job_type)
    switch, _ = JobTypeSwitch.objects.update_or_create(type=job_type, defaults={"enabled": enabled, "reason": reason})
    audit_record(
        actor=actor, action=Action.ENABLE_TYPE if enabled else Action.DISABLE_TYPE, jobs=[],
        detail={"type": job_type, "reason": reason},
    )  # fmt: skip
    if enabled:
        transaction.on_commit(lambda: job_relay_unpublished(job_type=job_type, grace_seconds=0))
    return switch


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
        ensure_enabled(job_type)
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
    publish_on_commit(new_jobs)
    return new_jobs


def job_bulk_replay_dead(
    *,
    job_type: str | None = None,
    actor: Any = None,
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
        _, created = job_replay_locked(
            job_ids=original_ids[start : start + chunk_size], dead_letter_only=True, actor=actor,
            actor_label=actor_label, action=Action.BULK_REPLAY_DEAD, detail={"type": job_type},
        )  # fmt: skip
        new_jobs.extend(created)
        if on_progress:
            on_progress(min(start + chunk_size, len(original_ids)), len(original_ids))
    return new_jobs


def job_replay_locked(
    *,
    job_ids: Sequence[str],
    dead_letter_only: bool,
    actor: Any = None,
    actor_label: str = "",
    action: str = Action.REPLAY,
    detail: dict[str, Any] | None = None,
) -> tuple[list[Job], list[Job]]:
    """Replay the chosen jobs that may still be replayed, under a row lock, with an audit entry.

    The jobs are locked (``SELECT ... FOR UPDATE``) and checked again in one transaction:
    another operator may have retried or replayed some since they were listed. With
    ``dead_letter_only`` only jobs still in the dead-letter queue qualify, so two operators
    confirming the same replay at once replay each job once; otherwise any finished job does.
    Returns (the originals replayed, their new jobs), oldest first.
    """
    with transaction.atomic():
        locked = list(Job.objects.filter(id__in=list(job_ids)).select_for_update().values_list("id", flat=True))
        eligible = Job.objects.dead_letter() if dead_letter_only else Job.objects.filter(status__in=FINISHED_STATUSES)
        originals = list(eligible.filter(id__in=locked).order_by("created_at", "id"))
        created = job_bulk_replay(jobs=originals)
        if originals:
            audit_record(
                actor=actor, action=action, jobs=originals, actor_label=actor_label,
                detail={**(detail or {}), "new_job_ids": [job.id for job in created]},
            )  # fmt: skip
    return originals, created
