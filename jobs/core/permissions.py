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


# What a job's owner reads of its error. Declared errors (JobsError subclasses and the platform's own outcomes:
# worker_lost, time_limit_exceeded, ...) carry snake_case codes and messages written for the person who started
# the job. Any other exception is recorded under its class name (lifecycle.Failure.from_error), and its text can
# quote data or SQL (a database error's statement): only holders of VIEW_ALL_JOBS read that, as with tracebacks.
UNEXPECTED_ERROR_MESSAGE = "the job stopped on an unexpected error; its details are logged for operators"


def error_code_is_unexpected(code: str) -> bool:
    """True for the code of an exception nobody declared (a class name such as ``DataError``)."""
    return code != code.lower()


def error_message_for(user: AbstractUser, *, code: str, message: str) -> str:
    """``message`` as ``user`` may read it: an unexpected error's text only for those who see every job."""
    if code and error_code_is_unexpected(code) and not user_sees_all_jobs(user):
        return UNEXPECTED_ERROR_MESSAGE
    return message
