"""Reads for the API and the admin: which jobs a caller may see, and which types they may enqueue."""

from __future__ import annotations

import re

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet
from django.utils import timezone

from . import registry
from .exceptions import JobNotFound
from .models import Job, JobAttempt

# Job ids are secrets.token_urlsafe(16); anything else cannot be a job and never reaches the database
# (a NUL byte in a path segment would make PostgreSQL raise instead of answering "not found").
_JOB_ID = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


def job_visible_to(*, user: AbstractBaseUser) -> QuerySet[Job]:
    """Staff see every job; everyone else only their own."""
    jobs = Job.objects.all()
    return jobs if user.is_staff else jobs.filter(owner=user)


def job_get_for(*, user: AbstractBaseUser, job_id: str) -> Job:
    """The job, if ``user`` may see it. Another user's job is 'not found', not 'forbidden': ids are not confirmed."""
    job = job_visible_to(user=user).filter(id=job_id).first() if _JOB_ID.match(job_id) else None
    if job is None:
        raise JobNotFound(f"no job with id {job_id!r} that you can see", detail={"job_id": job_id})
    return job


def job_list_for(
    *, user: AbstractBaseUser, status: str | None = None, job_type: str | None = None, owner_id: int | None = None
) -> QuerySet[Job]:
    """The jobs ``user`` may see, newest first, optionally filtered; ``owner_id`` narrows staff's view to one user."""
    jobs = job_visible_to(user=user).order_by("-created_at", "id")
    if status:
        jobs = jobs.filter(status=status)
    if job_type:
        jobs = jobs.filter(type=job_type)
    if owner_id is not None:
        jobs = jobs.filter(owner_id=owner_id)
    return jobs


def job_attempt_list(*, job: Job) -> list[JobAttempt]:
    """A job's attempts in the order they ended."""
    return list(job.attempts.order_by("finished_at", "id"))


def job_holding_idempotency_key(*, idempotency_key: str, job_types: list[str]) -> Job | None:
    """The job among ``job_types`` whose idempotency key (still within its window) is ``idempotency_key``, if any.

    ``job_types`` keeps the lookup on the (type, idempotency_key) unique index instead of a table scan.
    """
    live = Job.objects.filter(idempotency_expires_at__gt=timezone.now())
    return live.filter(type__in=job_types, idempotency_key=idempotency_key).only("id", "type").first()


def job_type_names_enqueueable_by(*, user: AbstractBaseUser) -> list[str]:
    """The job types ``user`` may enqueue over the API (staff-only types only for staff)."""
    return [
        spec.name
        for spec in registry.all_types()
        if spec.enqueueable_over_api and (user.is_staff or not spec.api_staff_only)
    ]
