"""Correlation id and running-job context, carried through contextvars.

The web middleware sets the correlation id for a request; the task base class sets
it (and the job fields) for the duration of a job. Log records and enqueued jobs
read it from here, so it flows from the request to every job it causes.
"""

from __future__ import annotations

import contextvars
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

_correlation_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("correlation_id", default=None)
_job_context: contextvars.ContextVar[JobLogContext | None] = contextvars.ContextVar("job_context", default=None)

# Accept callers' ids only if they look like ids: they end up in logs and headers.
_VALID_CORRELATION_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


@dataclass(frozen=True)
class JobLogContext:
    job_id: str
    job_type: str
    queue: str
    attempt: int


def new_correlation_id() -> str:
    return uuid.uuid4().hex


def clean_correlation_id(candidate: str | None) -> str:
    """Return ``candidate`` if it is a safe id, else a fresh one."""
    if candidate and _VALID_CORRELATION_ID.match(candidate):
        return candidate
    return new_correlation_id()


def get_correlation_id() -> str | None:
    return _correlation_id.get()


@contextmanager
def correlation_scope(correlation_id: str | None) -> Iterator[str]:
    value = clean_correlation_id(correlation_id)
    token = _correlation_id.set(value)
    try:
        yield value
    finally:
        _correlation_id.reset(token)


def get_job_context() -> JobLogContext | None:
    return _job_context.get()


@contextmanager
def job_scope(context: JobLogContext) -> Iterator[JobLogContext]:
    token = _job_context.set(context)
    try:
        yield context
    finally:
        _job_context.reset(token)
