"""The centre: a job's life and its records.

Owns the job-type registry (retry policy, payload schema), what a running handler sees (``JobContext``),
every state transition (``lifecycle``), attempts, the audit trail, completions, type switches, who may see
what (``permissions``) and the transactional publisher that hands messages to the broker after commit.
Imports: ``jobs.foundation`` and ``jobs.models``.
"""
