"""Job types: what each kind of job is called, where it runs, how it retries, who may enqueue it.

Domain apps declare a job type with the ``@job_type`` decorator (see ``jobs.public``);
the decorator registers a ``JobType`` here and a Celery task named after the type.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.conf import settings

from jobs.core.retry import RetryPolicy
from jobs.core.schema import schema_check
from jobs.foundation.exceptions import UnknownJobType

if TYPE_CHECKING:
    from jobs.core.job_context import JobContext

JobHandler = Callable[["JobContext", dict[str, Any]], Any]


@dataclass(frozen=True)
class JobType:
    name: str
    handler: JobHandler
    queue: str = "default"
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    # Seconds; the soft limit raises inside the job, the hard limit kills the process.
    soft_time_limit: int | None = None
    time_limit: int | None = None
    # None: not enqueueable over the HTTP API. Otherwise the payload's JSON schema.
    api_schema: dict[str, Any] | None = None
    api_staff_only: bool = False
    # Singleton: at most one job of this type runs at a time (a Redis run lock).
    singleton: bool = False
    description: str = ""
    # Called as on_give_up(payload, error_code, error_message) once the job has ended
    # failed or dead, so the domain can record it (e.g. mark a sync page failed).
    on_give_up: Callable[[dict[str, Any], str, str], None] | None = None
    # Global concurrency limits (jobs.worker.concurrency): at most ``concurrency`` attempts of the type at once,
    # and at most ``concurrency_per_key`` per value of ``concurrency_key(payload)``.
    concurrency: int | None = None
    concurrency_key: Callable[[dict[str, Any]], object] | None = None
    concurrency_per_key: int | None = None

    def __post_init__(self) -> None:
        _check_concurrency(self)

    @property
    def limited(self) -> bool:
        """Whether a concurrency limit applies: its attempts claim a slot first."""
        return self.concurrency is not None or self.concurrency_per_key is not None

    @property
    def enqueueable_over_api(self) -> bool:
        return self.api_schema is not None

    @property
    def effective_time_limit(self) -> int:
        return self.time_limit or settings.CELERY_TASK_TIME_LIMIT


def _check_concurrency(spec: JobType) -> None:
    """At declaration (import), not at the first run: a limit that cannot mean anything is a bug."""
    for name in ("concurrency", "concurrency_per_key"):
        value = getattr(spec, name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ValueError(f"job type {spec.name!r}: {name} must be a whole number >= 1 (or None for no limit), "
                             f"got {value!r}")  # fmt: skip
    if spec.concurrency_key is not None and spec.concurrency_per_key is None:
        raise ValueError(f"job type {spec.name!r}: concurrency_key needs concurrency_per_key (how many may run at "
                         "once per key)")  # fmt: skip
    if spec.concurrency_per_key is not None and spec.concurrency_key is None:
        raise ValueError(f"job type {spec.name!r}: concurrency_per_key needs concurrency_key (a function of the "
                         "payload naming the key)")  # fmt: skip
    if spec.concurrency_key is not None and not callable(spec.concurrency_key):
        raise ValueError(f"job type {spec.name!r}: concurrency_key must be a function of the payload, "
                         f"got {spec.concurrency_key!r}")  # fmt: skip


_registry: dict[str, JobType] = {}


def register(job_type: JobType) -> None:
    if job_type.api_schema is not None:
        # At declaration, not at the first request: a keyword that would be silently ignored is a bug.
        schema_check(job_type.api_schema, name=job_type.name)
    existing = _registry.get(job_type.name)
    if existing is not None and existing.handler is not job_type.handler:
        raise ValueError(f"job type {job_type.name!r} is declared twice ({existing.handler} and {job_type.handler})")
    _registry[job_type.name] = job_type


def get(name: str) -> JobType:
    try:
        return _registry[name]
    except KeyError:
        known = ", ".join(sorted(_registry)) or "none"
        raise UnknownJobType(
            f"unknown job type {name!r}; known types: {known}", detail={"type": name, "known": sorted(_registry)}
        ) from None


def is_declared(name: str) -> bool:
    """True when a job type of this name is declared (for enqueueing another app's type by name)."""
    return name in _registry


def all_types() -> list[JobType]:
    return [_registry[name] for name in sorted(_registry)]


def route_job_type(
    name: str, args: Any, kwargs: Any, options: Any, task: Any = None, **_: Any
) -> dict[str, str] | None:
    """Celery router (``task_routes``): a job type's task goes to the queue it was declared with.

    Celery deprecates the ``queue`` task attribute (no effect from 6.0), so the queue lives here instead. The
    publisher names the queue on every message anyway; this covers any other sender (``send_task``, Flower).
    Other tasks fall through to the routes after this one (``None``)."""
    spec = _registry.get(name)
    return {"queue": spec.queue} if spec is not None else None
