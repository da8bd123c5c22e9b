"""The ``@job_type`` decorator: declares a job type and the Celery task that runs it.

A domain job is a plain function ``handler(ctx, payload)``. The decorator registers a
``JobType`` and turns the handler into a Celery task named after the type, on the type's
queue. The task message carries only the job id, the attempt number and the message
schema version; the payload lives in the database.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from celery import shared_task
from django.conf import settings

from jobs.core import registry
from jobs.core.registry import JobHandler, JobType
from jobs.core.retry import DEFAULT_FAIL_ON, DEFAULT_RETRY_ON, Backoff, RetryPolicy
from jobs.foundation.dbresilience import execute_or_requeue
from jobs.worker.celery_state import AttemptFailed, report_outcome_to_celery
from jobs.worker.runner import execute


def job_type(
    name: str,
    *,
    queue: str = "default",
    max_attempts: int = 5,
    backoff: Backoff | None = None,
    retry_on: Sequence[type[BaseException]] = (),
    fail_on: Sequence[type[BaseException]] = (),
    soft_time_limit: int | None = None,
    time_limit: int | None = None,
    api_schema: dict[str, Any] | None = None,
    api_staff_only: bool = False,
    singleton: bool = False,
    description: str = "",
    on_give_up: Callable[[dict[str, Any], str, str], None] | None = None,
    concurrency: int | None = None,
    concurrency_key: Callable[[dict[str, Any]], object] | None = None,
    concurrency_per_key: int | None = None,
) -> Callable[[JobHandler], JobHandler]:
    """Declare a job type. The decorated ``handler(ctx, payload)`` runs once per attempt.

    ``retry_on`` / ``fail_on`` add to the defaults (timeouts, connection errors and
    TransientJobError retry; PermanentJobError fails at once). Any other exception fails
    the job at once: retrying is opt-in, so a bug never runs five times.

    ``concurrency=N``: at most N attempts of the type run at once across all workers and hosts;
    ``concurrency_key=<function of the payload>`` with ``concurrency_per_key=M``: at most M per key. A job over
    its limit waits, queued, without spending an attempt or holding a worker (``jobs.worker.concurrency``).
    An invalid declaration raises ValueError at import, naming the type.
    """
    if queue not in settings.JOB_QUEUES:
        raise ValueError(f"job type {name!r}: queue {queue!r} is not one of {settings.JOB_QUEUES}")

    def decorator(handler: JobHandler) -> JobHandler:
        spec = JobType(
            name=name,
            handler=handler,
            queue=queue,
            retry=RetryPolicy(
                max_attempts=max_attempts,
                backoff=backoff or Backoff(),
                retry_on=DEFAULT_RETRY_ON + tuple(retry_on),
                fail_on=DEFAULT_FAIL_ON + tuple(fail_on),
            ),
            soft_time_limit=soft_time_limit,
            time_limit=time_limit,
            api_schema=api_schema,
            api_staff_only=api_staff_only,
            singleton=singleton,
            description=description or (handler.__doc__ or "").strip().split("\n")[0],
            on_give_up=on_give_up,
            concurrency=concurrency,
            concurrency_key=concurrency_key,
            concurrency_per_key=concurrency_per_key,
        )
        registry.register(spec)

        def run(
            task: Any,
            job_id: str | None = None,
            attempt: int | None = None,
            schema_version: int | None = None,
            **newer_fields: Any,
        ) -> dict[str, Any]:
            # Unknown keyword fields come from newer publishers: ignored on purpose.
            # A database error before the body started retries the message instead of consuming it.
            summary = execute_or_requeue(
                task,
                lambda: execute(task=task, spec=spec, job_id=job_id, attempt=attempt, schema_version=schema_version),
            )
            # Then Celery (and so Flower and the result row) is told how the attempt really ended.
            return report_outcome_to_celery(task, summary)

        run.__name__ = handler.__name__
        run.__doc__ = handler.__doc__
        # No "queue" option: Celery deprecates it; jobs.core.registry.route_job_type routes by the declared queue.
        # ignore_result: the result row is written with the job's own state (job_record_attempt).
        # throws: an attempt that failed is an expected outcome, logged without a traceback.
        # reconnects_on_its_own: its claim retries on a fresh connection (no health check needed first).
        task_options: dict[str, Any] = {
            "name": name, "bind": True, "ignore_result": True, "throws": (AttemptFailed,),
            "reconnects_on_its_own": True,
        }  # fmt: skip
        if soft_time_limit:
            task_options["soft_time_limit"] = soft_time_limit
        if time_limit:
            task_options["time_limit"] = time_limit
        # The handler stays a plain function; its task and spec hang off it for callers and tests.
        handler.task = shared_task(**task_options)(run)  # type: ignore[attr-defined]
        handler.job_type = spec  # type: ignore[attr-defined]
        return handler

    return decorator
