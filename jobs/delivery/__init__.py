"""Getting work to the broker: enqueue (one or many, idempotently, now or later), the relay of unpublished jobs,
the scheduler's tick that publishes jobs that run later once due, and the cron schedules that enqueue on time.

Imports: ``jobs.coordination``, ``jobs.core``, ``jobs.foundation`` and ``jobs.models``.
"""
