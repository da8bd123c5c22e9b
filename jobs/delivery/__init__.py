"""Getting work to the broker: enqueue (one or many, idempotently), the relay of unpublished jobs and the
cron schedules that enqueue on time.

Imports: ``jobs.coordination``, ``jobs.core``, ``jobs.foundation`` and ``jobs.models``.
"""
