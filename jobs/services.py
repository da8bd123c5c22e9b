"""The jobs app's writes, by concern (an index: each lives in the module named here).

- ``jobs.lifecycle``: every state transition and how an attempt ends (start, succeed,
  snooze, retry or die, give up, rescue, cancel, retry by an operator);
- ``jobs.enqueue``: creating jobs, one or many, idempotently;
- ``jobs.publisher``: putting messages on the broker, and the relay;
- ``jobs.operations``: operator actions on many jobs (replay, dead-letter queue, type switches);
- ``jobs.attempts``: attempt rows and their Celery result rows;
- ``jobs.audit``: the operator audit trail.

Reads are in ``jobs.selectors``. Domain apps import none of these: they use ``jobs.public``.
"""

from __future__ import annotations

from .attempts import job_record_attempt
from .audit import audit_record
from .enqueue import EnqueueResult, job_bulk_enqueue, job_enqueue, job_validate_payload, payload_fingerprint
from .lifecycle import (
    ALLOWED_TRANSITIONS,
    check_transition,
    job_cancel,
    job_retry,
    job_start_attempt,
    job_transition,
)
from .operations import job_bulk_replay, job_bulk_replay_dead, job_replay_locked, job_type_set_enabled
from .publisher import publish_messages
from .relay import job_relay_unpublished
from .selectors import job_get
from .switches import disabled_job_types, job_type_is_enabled

__all__ = [
    "ALLOWED_TRANSITIONS",
    "EnqueueResult",
    "audit_record",
    "check_transition",
    "disabled_job_types",
    "job_bulk_enqueue",
    "job_bulk_replay",
    "job_bulk_replay_dead",
    "job_cancel",
    "job_enqueue",
    "job_get",
    "job_record_attempt",
    "job_relay_unpublished",
    "job_replay_locked",
    "job_retry",
    "job_start_attempt",
    "job_transition",
    "job_type_is_enabled",
    "job_type_set_enabled",
    "job_validate_payload",
    "payload_fingerprint",
    "publish_messages",
]
