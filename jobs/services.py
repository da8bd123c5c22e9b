"""The jobs app's writes, by concern (an index: each lives in the module named here).

- ``jobs.core.lifecycle``: every state transition and how an attempt ends (start, succeed,
  snooze, retry or die, give up, rescue, cancel, retry by an operator);
- ``jobs.delivery.enqueue``: creating jobs, one or many, idempotently;
- ``jobs.core.publisher``: putting messages on the broker, and the relay;
- ``jobs.ops.operations``: operator actions on many jobs (replay, dead-letter queue, type switches);
- ``jobs.core.attempts``: attempt rows and their Celery result rows;
- ``jobs.core.audit``: the operator audit trail.

Reads are in ``jobs.ops.selectors``. Domain apps import none of these: they use ``jobs.public``.
"""

from __future__ import annotations

from jobs.core.attempts import job_record_attempt
from jobs.core.audit import audit_record
from jobs.core.lifecycle import (
    ALLOWED_TRANSITIONS,
    check_transition,
    job_cancel,
    job_retry,
    job_start_attempt,
    job_transition,
)
from jobs.core.publisher import publish_messages
from jobs.core.switches import disabled_job_types, job_type_is_enabled
from jobs.delivery.enqueue import (
    EnqueueResult,
    WantedJob,
    job_bulk_enqueue,
    job_enqueue,
    job_enqueue_many,
    job_validate_payload,
    payload_fingerprint,
)
from jobs.delivery.relay import job_relay_unpublished
from jobs.delivery.scheduled import job_publish_due
from jobs.ops.operations import job_bulk_replay, job_bulk_replay_dead, job_replay_locked, job_type_set_enabled
from jobs.ops.selectors import job_get

__all__ = [
    "ALLOWED_TRANSITIONS",
    "EnqueueResult",
    "WantedJob",
    "audit_record",
    "check_transition",
    "disabled_job_types",
    "job_bulk_enqueue",
    "job_bulk_replay",
    "job_bulk_replay_dead",
    "job_cancel",
    "job_enqueue",
    "job_enqueue_many",
    "job_get",
    "job_publish_due",
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
