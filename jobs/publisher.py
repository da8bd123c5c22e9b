"""Putting job messages on the broker, many at a time over one connection."""

from __future__ import annotations

from collections.abc import Sequence

from celery import Celery

# Messages per Redis round trip when publishing a batch.
PIPELINE_SIZE = 500


def publish_batch(app: Celery, messages: Sequence[dict]) -> int:
    """Publish ``messages`` (``task``, ``queue``, ``task_id``, ``kwargs``, ``headers``, ``countdown``).

    One producer and one broker connection serve the whole batch, and with Redis the
    messages go out in pipelined round trips (kombu's ``Producer.batch``), not one each.
    Raises whatever the broker client raises when it is unreachable; the caller keeps
    the rows unpublished.
    """
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
