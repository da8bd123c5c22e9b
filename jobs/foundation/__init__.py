"""The foundation: what every wing stands on, knowing nothing of a job's states.

Owns the platform's exceptions, the correlation-id context and log formatting, hand-written row reading and
bulk inserts, the Redis client, database-connection resilience, the metric definitions and the migration
operations that index large tables concurrently.
Imports: Django, third parties and ``jobs.models`` only; no other wing.
"""
