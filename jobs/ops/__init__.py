"""Operating the platform: operator actions on many jobs (replay, dead-letter queue, type switches), the reads
behind the admin and the API (``selectors``), health and worker probes, metrics collection and the overview charts.

Imports: ``jobs.worker``, ``jobs.delivery``, ``jobs.coordination``, ``jobs.core``, ``jobs.foundation``, ``jobs.models``.
"""
