"""The foundation: what every wing stands on, knowing nothing of a job's states.

Owns the platform's exceptions, the correlation-id context and log formatting, hand-written row reading and
bulk inserts, the Redis client, database-connection resilience and the metric definitions.
Imports: Django, third parties and ``jobs.models`` only; no other wing.
"""
