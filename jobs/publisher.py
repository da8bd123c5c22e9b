"""Putting job messages on the broker, many at a time."""

from __future__ import annotations

import json
from collections.abc import Sequence

from celery import Celery
from kombu.utils.json import dumps as kombu_dumps

# Messages per Redis round trip when publishing a batch.
PIPELINE_SIZE = 500


def publish_batch(app: Celery, messages: Sequence[dict]) -> int:
    """Publish ``messages`` (``task``, ``queue``, ``task_id``, ``kwargs``, ``headers``, ``countdown``).

    Raises whatever the broker client raises when it is unreachable; the caller keeps
    the rows unpublished and the relay tries again.
    """
    if not messages:
        return 0
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
    """Celery builds each task message (protocol 2); kombu's Redis channel wraps it; one
    LPUSH per message goes out in pipelined round trips of PIPELINE_SIZE.

    This skips Celery's per-message publish machinery (signals, the task-sent event, one
    round trip each), which is what makes bulk enqueue several times faster than a loop
    of ``.delay()``. The wire format is kombu's own: the channel prepares the envelope.
    """
    count = 0
    with channel.conn_or_acquire() as client:
        pipeline = client.pipeline(transaction=False)
        for message in messages:
            # A plain repr: Celery's default saferepr costs half the time of building the message.
            task_message = app.amqp.as_task_v2(
                message["task_id"], message["task"], (), message["kwargs"], argsrepr="()",
                kwargsrepr=repr(message["kwargs"]),
                # None, not as_task_v2's default False: an explicit False in the message would
                # override the task's own ignore_result and store every result twice.
                ignore_result=None,
            )  # fmt: skip
            envelope = channel.prepare_message(
                json.dumps(list(task_message.body)), 0, "application/json", "utf-8",
                {**task_message.headers, **message["headers"]}, {**task_message.properties, "delivery_mode": 2},
            )  # fmt: skip
            # Anonymous exchange, routing key = queue: what send_task(queue=...) does.
            channel._inplace_augment_message(envelope, "", message["queue"])
            pipeline.lpush(message["queue"], kombu_dumps(envelope))
            count += 1
            if count % PIPELINE_SIZE == 0:
                pipeline.execute()
        pipeline.execute()
    return count


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
