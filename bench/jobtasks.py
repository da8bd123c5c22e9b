"""Tasks used only by the jobs benchmarks (workers load them with --include bench.jobtasks)."""

from celery import shared_task

from jobs.public import JobContext, job_type


@shared_task(name="bench.bare_noop")
def bare_noop(index: int = 0) -> None:
    """A plain Celery task: the baseline."""
    return None


@job_type("bench.tracked_noop", max_attempts=1)
def tracked_noop(ctx: JobContext, payload: dict) -> None:
    """The same no-op as a tracked job."""
    return None
