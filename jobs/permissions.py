"""What a caller may do through the API: the same model permissions the admin uses, never ``is_staff``.

A superuser has them all; anyone else is given them (or a group holding them) in the admin.
"""

from __future__ import annotations

from django.contrib.auth.models import AbstractUser

# Every user's jobs, attempt tracebacks and the operations overview (the admin's job list and overview).
VIEW_ALL_JOBS = "jobs.view_job"
# Cancel any user's job (the admin's "Cancel selected jobs" action).
CANCEL_ANY_JOB = "jobs.cancel_job"
# Enqueue job types declared ``api_staff_only`` (e.g. a full product sync).
ENQUEUE_RESTRICTED_TYPES = "jobs.add_job"


def user_sees_all_jobs(user: AbstractUser) -> bool:
    return user.is_active and user.has_perm(VIEW_ALL_JOBS)


def user_cancels_any_job(user: AbstractUser) -> bool:
    return user.is_active and user.has_perm(CANCEL_ANY_JOB)


def user_enqueues_restricted_types(user: AbstractUser) -> bool:
    return user.is_active and user.has_perm(ENQUEUE_RESTRICTED_TYPES)
