"""Putting job messages on the broker (the only place that talks to it), the relay, and queue depths.

A job's message goes to the queue its type was declared with (``Job.queue``), named
explicitly on every publish: routing is by the job row, not by task-name patterns.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import weakref
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import redis
from celery import Celery, current_app
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from kombu.utils.json import dumps as kombu_dumps

from jobs.models import Job

logger = logging.getLogger("jobs.publisher")

# Messages per Redis round trip when publishing a batch.
PIPELINE_SIZE = 500

MESSAGE_SCHEMA_VERSION = 1
SUPPORTED_MESSAGE_VERSIONS = frozenset({1})

# What a message is built from: (job_id, type, queue, attempt, correlation_id).
MessageRef = tuple[str, str, str, int, str]


def publish_on_commit(jobs: Sequence[Job], *, countdown: float | None = None) -> None:
    """Publish the next attempt's message for each of ``jobs`` once the surrounding transaction commits."""
    if not jobs:
        return
    refs = [(job.id, job.type, job.queue, job.attempt + 1, job.correlation_id) for job in jobs]
    transaction.on_commit(lambda: publish_messages(refs, countdown=countdown), robust=True)


def task_id_for(job_id: str, attempt: int) -> str:
    # Deterministic, so an attempt links to its Celery result and back.
    return f"{job_id}.{attempt}"


def publish_messages(refs: Sequence[MessageRef], *, countdown: float | None = None, app: Celery | None = None) -> int:
    """Send one message per (job_id, type, queue, attempt, correlation_id); mark the rows published.

    Never raises for a broker outage: the rows stay unpublished and the relay retries.
    Returns how many were published. ``app`` defaults to the current Celery app (the
    core does not know the project that hosts it).
    """
    try:
        published = publish_batch(
            app or current_app,
            [
                {
                    "task": job_type,
                    "queue": queue,
                    "task_id": task_id_for(job_id, attempt),
                    "kwargs": {"job_id": job_id, "attempt": attempt, "schema_version": MESSAGE_SCHEMA_VERSION},
                    "headers": {"correlation_id": correlation_id, "job_id": job_id},
                    "countdown": countdown,
                }
                for job_id, job_type, queue, attempt, correlation_id in refs
            ],
        )
    except Exception as exc:  # broker unreachable, or anything kombu raises while publishing
        logger.warning(
            "publishing %d job message(s) failed (%s: %s); the relay will publish them when the broker is back",
            len(refs), exc.__class__.__name__, exc,
        )  # fmt: skip
        return 0
    if published:
        mark_published(refs)
    return published


def mark_published(refs: Sequence[MessageRef], *, chunk: int = 5000) -> None:
    """Stamp published_at, in a few set-based UPDATEs rather than one per job."""
    now = timezone.now()
    by_attempt: dict[int, list[str]] = {}
    for job_id, _type, _queue, attempt, _cid in refs:
        by_attempt.setdefault(attempt, []).append(job_id)
    for attempt, job_ids in by_attempt.items():
        for start in range(0, len(job_ids), chunk):
            # Only jobs still waiting for exactly this attempt's message.
            _stamp_published(job_ids=job_ids[start : start + chunk], previous_attempt=attempt - 1, now=now)


def no_flush_wait() -> str:
    """A FROM item that lets this autocommit UPDATE commit without waiting for the WAL flush, or "".

    PostgreSQL only, for writes whose loss in a database crash is harmless (the claim, the
    published stamp): each commit otherwise waits ~3 ms for the disk, and a tracked job paid two
    where django-celery-results pays one. ``set_config(..., true)`` is local to the statement's
    own transaction; inside a caller's transaction it would make the caller's other writes
    non-durable, so then nothing is added.
    """
    if can_skip_flush_wait():
        return " FROM (SELECT set_config('synchronous_commit', 'off', true)) AS no_flush_wait"
    return ""


def can_skip_flush_wait() -> bool:
    """Whether ``no_flush_wait`` adds anything here: PostgreSQL, outside a transaction."""
    return connection.vendor == "postgresql" and not connection.in_atomic_block


def _stamp_published(*, job_ids: list[str], previous_attempt: int, now: datetime) -> None:
    if connection.vendor == "postgresql":
        # One array parameter instead of an IN list of thousands: far less to build and parse.
        # Without the flush wait: a stamp lost in a database crash only makes the relay publish
        # the job again, and the attempt guard runs one delivery of an attempt.
        table = connection.ops.quote_name(Job._meta.db_table)
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {table} SET published_at = %s{no_flush_wait()} WHERE id = ANY(%s::varchar[]) "  # noqa: S608
                "AND attempt = %s AND published_at IS NULL",
                [now, job_ids, previous_attempt],
            )
        return
    Job.objects.filter(id__in=job_ids, attempt=previous_attempt, published_at__isnull=True).update(published_at=now)


class PublishSkipped(ConnectionError):
    """Publishing was not tried: the broker failed moments ago (the breaker is open)."""


class PublishBreaker:
    """A circuit breaker for publishing, one per process.

    A publish to a dead broker waits for the connection timeout (2 s by default). Rows are
    safe without it (the relay publishes them later), so after one failure every publish in
    the next ``back_off_seconds`` is skipped at once instead of waiting again: five enqueues
    in one transaction cost one timeout, not five. The first publish after the window tries
    the broker again (half-open); a failure opens the breaker for another window.
    """

    def __init__(self, *, back_off_seconds: float | None = None):
        self._back_off_seconds = back_off_seconds
        self._open_until = 0.0
        self._lock = threading.Lock()

    @property
    def back_off_seconds(self) -> float:
        if self._back_off_seconds is not None:
            return self._back_off_seconds
        return float(getattr(settings, "JOBS_PUBLISH_BACKOFF_SECONDS", 5))

    def allows(self) -> bool:
        return time.monotonic() >= self._open_until

    def record_failure(self, error: BaseException) -> None:
        with self._lock:
            was_closed = self.allows()
            self._open_until = time.monotonic() + self.back_off_seconds
        if was_closed:
            logger.warning(
                "broker unreachable (%s: %s); publishing is skipped for %.1f s, the relay publishes the rows later",
                error.__class__.__name__, error, self.back_off_seconds,
            )  # fmt: skip

    def record_success(self) -> None:
        with self._lock:
            self._open_until = 0.0


breaker = PublishBreaker()


def publish_batch(app: Celery, messages: Sequence[dict[str, Any]]) -> int:
    """Publish ``messages`` (``task``, ``queue``, ``task_id``, ``kwargs``, ``headers``, ``countdown``).

    Raises whatever the broker client raises when it is unreachable, and PublishSkipped
    without trying while the breaker is open after such a failure; the caller keeps the
    rows unpublished and the relay tries again.
    """
    if not messages:
        return 0
    if not breaker.allows():
        raise PublishSkipped(
            f"{len(messages)} message(s) not published: the broker failed less than "
            f"{breaker.back_off_seconds:.0f} s ago (JOBS_PUBLISH_BACKOFF_SECONDS); the relay publishes them"
        )
    try:
        published = _publish(app, messages)
    except Exception as exc:
        breaker.record_failure(exc)
        raise
    breaker.record_success()
    return published


def _publish(app: Celery, messages: Sequence[dict[str, Any]]) -> int:
    with app.pool.acquire(block=True) as connection:
        channel = connection.default_channel
        if _can_pipeline(channel, messages):
            return _publish_redis_pipeline(app, channel, messages)
    return _publish_with_producer(app, messages)


def _can_pipeline(channel: Any, messages: Sequence[dict[str, Any]]) -> bool:
    # Only immediate messages on kombu's Redis channel; delayed ones (countdown) need
    # Celery's ETA handling and go through the producer.
    return (
        getattr(channel.connection, "driver_type", "") == "redis"
        and hasattr(channel, "prepare_message")
        and hasattr(channel, "_inplace_augment_message")
        and not any(message.get("countdown") for message in messages)
    )


def _publish_redis_pipeline(app: Celery, channel: Any, messages: Sequence[dict[str, Any]]) -> int:
    """Celery's protocol-2 message per job, kombu's Redis envelope around it, and one
    multi-value LPUSH per queue for every PIPELINE_SIZE messages, pipelined.

    This skips Celery's per-message publish machinery (signals, the task-sent event, a
    round trip each), which is what makes bulk enqueue several times faster than a loop of
    ``.delay()``. The wire format is Celery's and kombu's own: a template message built by
    Celery per task name, and the channel's own envelope and delivery tag for every message.
    """
    encoded_by_queue: dict[str, list[str]] = {}
    for message in messages:
        template = _message_template(app, message["task"])
        body, headers, properties = template.fill(message["task_id"], message["kwargs"])
        envelope = channel.prepare_message(
            body, 0, "application/json", "utf-8", {**headers, **message["headers"]}, {**properties, "delivery_mode": 2}
        )
        # Anonymous exchange, routing key = queue: what send_task(queue=...) does.
        channel._inplace_augment_message(envelope, "", message["queue"])
        encoded_by_queue.setdefault(message["queue"], []).append(kombu_dumps(envelope))
    pipeline = _channel_client(channel).pipeline(transaction=False)
    for queue, encoded in encoded_by_queue.items():
        for start in range(0, len(encoded), PIPELINE_SIZE):
            # LPUSH q a b c leaves the list as LPUSH a, then b, then c would: first in, first out.
            pipeline.lpush(queue, *encoded[start : start + PIPELINE_SIZE])
    pipeline.execute()
    return len(messages)


# A Redis client per kombu channel: the channel's conn_or_acquire() builds a new client object (around the
# channel's connection pool) on every call, which was a visible part of a single enqueue's publish.
_channel_clients: weakref.WeakKeyDictionary[Any, redis.Redis] = weakref.WeakKeyDictionary()


def _channel_client(channel: Any) -> redis.Redis:
    client = _channel_clients.get(channel)
    if client is None:
        with channel.conn_or_acquire() as client:
            _channel_clients[channel] = client
    return client


# Celery's message template per task name, per app and process: building one costs about as much as
# sending the message, and a single enqueue used to build it every time. Keyed by pid too: the template
# names the process that built it (Celery's ``origin`` header), and gunicorn and Celery fork.
_templates: weakref.WeakKeyDictionary[Celery, dict[tuple[int, str], _TaskMessageTemplate]] = weakref.WeakKeyDictionary()


def _message_template(app: Celery, task_name: str) -> _TaskMessageTemplate:
    real_app = app._get_current_object() if hasattr(app, "_get_current_object") else app  # current_app is a proxy
    by_name = _templates.setdefault(real_app, {})
    key = (os.getpid(), task_name)
    template = by_name.get(key)
    if template is None:
        if len(by_name) > 1000:
            by_name.clear()  # names come from the job registry, so this never fills; a bound anyway
        template = by_name[key] = _TaskMessageTemplate(app, task_name)
    return template


# Stand-ins for the values that differ per job; never valid task ids or reprs themselves.
_TASK_ID_SLOT = "\x00task-id\x00"
_KWARGSREPR_SLOT = "\x00kwargsrepr\x00"


class _TaskMessageTemplate:
    """Celery's message for one task name, built once by Celery with stand-ins for the task id
    and the kwargs repr; ``fill`` puts each job's values where the stand-ins are.

    Building every message with ``as_task_v2`` cost as much as sending it. The stand-ins
    are found by value, so whichever headers Celery puts the task id in (``id``, ``root_id``,
    ``correlation_id`` today) get it.
    """

    def __init__(self, app: Celery, task_name: str):
        built = app.amqp.as_task_v2(
            _TASK_ID_SLOT, task_name, (), {}, argsrepr="()", kwargsrepr=_KWARGSREPR_SLOT,
            # None, not as_task_v2's default False: an explicit False in the message would
            # override the task's own ignore_result and store every result twice.
            ignore_result=None,
        )  # fmt: skip
        self.headers, self.properties = dict(built.headers), dict(built.properties)
        self.embed = built.body[2]
        self.task_id_headers = [key for key, value in self.headers.items() if value == _TASK_ID_SLOT]
        self.task_id_properties = [key for key, value in self.properties.items() if value == _TASK_ID_SLOT]
        self.kwargsrepr_headers = [key for key, value in self.headers.items() if value == _KWARGSREPR_SLOT]

    def fill(self, task_id: str, kwargs: dict[str, Any]) -> tuple[str, dict[str, Any], dict[str, Any]]:
        headers, properties = dict(self.headers), dict(self.properties)
        for key in self.task_id_headers:
            headers[key] = task_id
        for key in self.task_id_properties:
            properties[key] = task_id
        # A plain repr: Celery's default saferepr costs half the time of building the message.
        kwargsrepr = repr(kwargs)
        for key in self.kwargsrepr_headers:
            headers[key] = kwargsrepr
        return json.dumps([[], kwargs, self.embed]), headers, properties


def _publish_with_producer(app: Celery, messages: Sequence[dict[str, Any]]) -> int:
    count = 0
    with app.producer_or_acquire() as producer, producer.batch(max_size=PIPELINE_SIZE):
        for message in messages:
            app.send_task(
                message["task"],
                kwargs=message["kwargs"],
                queue=message["queue"],
                routing_key=message["queue"],
                task_id=message["task_id"],
                headers=message["headers"],
                countdown=message.get("countdown"),
                producer=producer,
                retry=False,
            )
            count += 1
    return count


def queue_depths(queue_names: Sequence[str]) -> dict[str, int]:
    """Messages waiting in each queue's list on the broker (Redis ``LLEN``).

    Messages a worker has taken but not acknowledged are not counted. Returns {} when the
    broker does not answer: callers treat every depth as unknown.
    """
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL, socket_connect_timeout=1, socket_timeout=2)
    try:
        pipeline = client.pipeline(transaction=False)
        for name in queue_names:
            pipeline.llen(name)
        return dict(zip(queue_names, pipeline.execute(), strict=True))
    except redis.RedisError:
        return {}
    finally:
        client.close()
