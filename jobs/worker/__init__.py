"""Running jobs in a Celery worker: the task decorator, the runner around a handler, lease heartbeats,
batched success writes, global concurrency limits (slots), Celery's state signals and the reaper's maintenance sweeps.

Imports: ``jobs.coordination``, ``jobs.core``, ``jobs.foundation`` and ``jobs.models`` (not ``jobs.delivery``:
a worker finishes or retries jobs through the lifecycle and never enqueues new ones itself).
"""
