"""Bulk publishing: the messages are the ones Celery and kombu would build, in order, on real Redis."""

import base64
import json

from config.celery_app import app
from jobs.core.publisher import publish_batch


def job_message(index: int, *, queue: str = "default", task: str = "tests.record") -> dict:
    job_id = f"job{index}"
    return {
        "task": task, "queue": queue, "task_id": f"{job_id}.1",
        "kwargs": {"job_id": job_id, "attempt": 1, "schema_version": 1},
        "headers": {"correlation_id": "corr-7", "job_id": job_id},
    }  # fmt: skip


def celery_built_envelope(message: dict) -> dict:
    """The envelope as Celery builds one message at a time, for comparison."""
    built = app.amqp.as_task_v2(
        message["task_id"], message["task"], (), message["kwargs"], argsrepr="()",
        kwargsrepr=repr(message["kwargs"]), ignore_result=None,
    )  # fmt: skip
    with app.pool.acquire(block=True) as connection:
        channel = connection.default_channel
        envelope = channel.prepare_message(
            json.dumps(list(built.body)), 0, "application/json", "utf-8",
            {**built.headers, **message["headers"]}, {**built.properties, "delivery_mode": 2},
        )  # fmt: skip
        channel._inplace_augment_message(envelope, "", message["queue"])
    return envelope


def without_delivery_tag(envelope: dict) -> dict:
    properties = {key: value for key, value in envelope["properties"].items() if key != "delivery_tag"}
    return {**envelope, "properties": properties}


def test_each_message_is_the_one_celery_would_build(redis_client):
    messages = [job_message(index) for index in range(3)] + [job_message(9, task="tests.noop")]

    assert publish_batch(app, messages) == 4

    published = [json.loads(raw) for raw in reversed(redis_client.lrange("default", 0, -1))]
    for message, envelope in zip(messages, published, strict=True):
        assert without_delivery_tag(envelope) == without_delivery_tag(celery_built_envelope(message))
        _args, kwargs, _embed = json.loads(base64.b64decode(envelope["body"]))
        assert kwargs["job_id"] == message["headers"]["job_id"]
    assert len({envelope["properties"]["delivery_tag"] for envelope in published}) == 4


def test_messages_leave_each_queue_in_the_order_given(redis_client, monkeypatch):
    monkeypatch.setattr("jobs.core.publisher.PIPELINE_SIZE", 4)  # several LPUSH commands per queue
    messages = [job_message(index, queue="default" if index % 3 else "exports") for index in range(10)]

    publish_batch(app, messages)

    for queue in ("default", "exports"):
        # Workers take from the right end of the list (BRPOP).
        consumed = [json.loads(redis_client.rpop(queue))["headers"]["job_id"] for _ in range(redis_client.llen(queue))]
        assert consumed == [message["headers"]["job_id"] for message in messages if message["queue"] == queue]


def test_an_empty_batch_touches_nothing(redis_client):
    assert publish_batch(app, []) == 0
    assert redis_client.keys("*") == []


def test_one_at_a_time_each_message_is_still_celerys_and_the_template_is_built_once(redis_client, monkeypatch):
    # An API enqueue publishes one message per call: Celery's template for the task name is built on the first
    # call in this process and kept (it used to be built on every call).
    from jobs.core import publisher

    built: list[str] = []
    real_template = publisher._TaskMessageTemplate

    def counted(app_, task_name):
        built.append(task_name)
        return real_template(app_, task_name)

    monkeypatch.setattr(publisher, "_TaskMessageTemplate", counted)
    monkeypatch.setattr(publisher, "_templates", type(publisher._templates)())
    messages = [job_message(index) for index in range(3)]

    for message in messages:
        assert publish_batch(app, [message]) == 1

    assert built == ["tests.record"]
    published = [json.loads(raw) for raw in reversed(redis_client.lrange("default", 0, -1))]
    for message, envelope in zip(messages, published, strict=True):
        assert without_delivery_tag(envelope) == without_delivery_tag(celery_built_envelope(message))
