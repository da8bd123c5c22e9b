"""Tasks used only by the jobs benchmarks (workers load them with --include bench.jobtasks)."""

from typing import Any

from celery import shared_task

from jobs.public import JobContext, job_type


@shared_task(name="bench.bare_noop")  # type: ignore[untyped-decorator]  # celery has no types
def bare_noop(index: int = 0) -> None:
    """A plain Celery task: the baseline."""
    return None


@job_type("bench.tracked_noop", max_attempts=1)
def tracked_noop(ctx: JobContext, payload: dict[str, Any]) -> None:
    """The same no-op as a tracked job."""
    return None
