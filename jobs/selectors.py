"""Reads for the API and the admin: which jobs a caller may see."""

from __future__ import annotations

from django.db.models import QuerySet

from .exceptions import JobNotFound
from .models import Job


def job_visible_to(*, user) -> QuerySet[Job]:
    """Staff see every job; everyone else only their own."""
    jobs = Job.objects.all()
    return jobs if user.is_staff else jobs.filter(owner=user)


def job_get_for(*, user, job_id: str) -> Job:
    """The job, if ``user`` may see it. Another user's job is 'not found', not 'forbidden': ids are not confirmed."""
    job = job_visible_to(user=user).filter(id=job_id).first()
    if job is None:
        raise JobNotFound(f"no job with id {job_id!r} that you can see", detail={"job_id": job_id})
    return job


def job_list_for(*, user, status: str | None = None, job_type: str | None = None, owner_id: int | None = None) -> QuerySet[Job]:
    jobs = job_visible_to(user=user).order_by("-created_at", "id")
    if status:
        jobs = jobs.filter(status=status)
    if job_type:
        jobs = jobs.filter(type=job_type)
    if owner_id is not None and user.is_staff:
        jobs = jobs.filter(owner_id=owner_id)
    return jobs
