"""Putting job messages on the broker, many at a time, and reading how many wait there."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Sequence

import redis
from celery import Celery
from django.conf import settings
from kombu.utils.json import dumps as kombu_dumps

logger = logging.getLogger("jobs.publisher")

# Messages per Redis round trip when publishing a batch.
PIPELINE_SIZE = 500


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


def publish_batch(app: Celery, messages: Sequence[dict]) -> int:
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


def _publish(app: Celery, messages: Sequence[dict]) -> int:
    with app.pool.acquire(block=True) as connection:
        channel = connection.default_channel
        if _can_pipeline(channel, messages):
            return _publish_redis_pipeline(app, channel, messages)
    return _publish_with_producer(app, messages)


def _can_pipeline(channel, messages: Sequence[dict]) -> bool:
    # Only immediate messages on kombu's Redis channel; delayed ones (countdown) need
    # Celery's ETA handling and go through the producer.
    return (
        getattr(channel.connection, "driver_type", "") == "redis"
        and hasattr(channel, "prepare_message")
        and hasattr(channel, "_inplace_augment_message")
        and not any(message.get("countdown") for message in messages)
    )


def _publish_redis_pipeline(app: Celery, channel, messages: Sequence[dict]) -> int:
    """Celery's protocol-2 message per job, kombu's Redis envelope around it, and one
    multi-value LPUSH per queue for every PIPELINE_SIZE messages, pipelined.

    This skips Celery's per-message publish machinery (signals, the task-sent event, a
    round trip each), which is what makes bulk enqueue several times faster than a loop of
    ``.delay()``. The wire format is Celery's and kombu's own: a template message built by
    Celery per task name, and the channel's own envelope and delivery tag for every message.
    """
    templates: dict[str, _TaskMessageTemplate] = {}
    encoded_by_queue: dict[str, list[str]] = {}
    for message in messages:
        template = templates.get(message["task"])
        if template is None:
            template = templates[message["task"]] = _TaskMessageTemplate(app, message["task"])
        body, headers, properties = template.fill(message["task_id"], message["kwargs"])
        envelope = channel.prepare_message(
            body, 0, "application/json", "utf-8", {**headers, **message["headers"]}, {**properties, "delivery_mode": 2}
        )
        # Anonymous exchange, routing key = queue: what send_task(queue=...) does.
        channel._inplace_augment_message(envelope, "", message["queue"])
        encoded_by_queue.setdefault(message["queue"], []).append(kombu_dumps(envelope))
    with channel.conn_or_acquire() as client:
        pipeline = client.pipeline(transaction=False)
        for queue, encoded in encoded_by_queue.items():
            for start in range(0, len(encoded), PIPELINE_SIZE):
                # LPUSH q a b c leaves the list as LPUSH a, then b, then c would: first in, first out.
                pipeline.lpush(queue, *encoded[start : start + PIPELINE_SIZE])
        pipeline.execute()
    return len(messages)


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

    def fill(self, task_id: str, kwargs: dict) -> tuple[str, dict, dict]:
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


def _publish_with_producer(app: Celery, messages: Sequence[dict]) -> int:
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
