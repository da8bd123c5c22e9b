"""Coordination between processes: locks (Redis and database advisory) and rate limits.

Imports: ``jobs.foundation`` and ``jobs.models``; nothing of a job's lifecycle, so any wing above may use it.
"""
