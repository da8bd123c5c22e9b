"""Enqueue: transactional, durable, idempotent (also under concurrency), bulk, switchable."""

import functools
from datetime import timedelta

import pytest
import time_machine
from django.db import transaction
from django.test import override_settings
from django.utils import timezone

from jobs.delivery.enqueue import (
    BatchRefused,
    EnqueueResult,
    WantedJob,
    job_bulk_enqueue,
    job_enqueue,
    job_enqueue_many,
)
from jobs.foundation.context import correlation_scope
from jobs.foundation.exceptions import IdempotencyKeyConflict, JobTypeDisabled, UnknownJobType
from jobs.models import Job, JobTypeSwitch
from jobs.ops.operations import job_type_set_enabled
from tests.concurrency import run_at_once


def queue_length(redis_client, queue="default") -> int:
    return redis_client.llen(queue)


@pytest.mark.django_db(transaction=True)
def test_enqueue_persists_then_publishes_after_commit(redis_client):
    with transaction.atomic():
        result = job_enqueue(job_type="tests.noop", payload={"a": 1})
        # Inside the transaction: the row exists for us, nothing is on the broker yet.
        assert queue_length(redis_client) == 0

    job = Job.objects.get(id=result.job.id)
    assert result.created is True
    assert (job.status, job.attempt, job.queue, job.max_attempts, job.payload) == ("queued", 0, "default", 1, {"a": 1})
    assert job.published_at is not None and job.enqueued_at is not None
    assert queue_length(redis_client) == 1


@pytest.mark.django_db(transaction=True)
def test_rolled_back_enqueue_leaves_no_job_and_no_message(redis_client):
    with pytest.raises(RuntimeError), transaction.atomic():
        job_id = job_enqueue(job_type="tests.noop").job.id
        raise RuntimeError("the request failed after enqueueing")

    assert not Job.objects.filter(id=job_id).exists()
    assert queue_length(redis_client) == 0


@pytest.mark.django_db
def test_enqueue_queries_are_pinned(django_assert_num_queries, django_capture_on_commit_callbacks, redis_client):
    # switch check, INSERT job, UPDATE published_at once the message is out
    with django_assert_num_queries(3), django_capture_on_commit_callbacks(execute=True):
        job_enqueue(job_type="tests.noop")


@pytest.mark.django_db
def test_enqueue_takes_the_current_correlation_id(redis_client):
    with correlation_scope("req-123"):
        job = job_enqueue(job_type="tests.noop").job
    assert job.correlation_id == "req-123"
    assert len(job_enqueue(job_type="tests.noop").job.correlation_id) == 32  # a fresh one otherwise


@pytest.mark.django_db
def test_unknown_type_is_refused_with_the_known_types():
    with pytest.raises(UnknownJobType, match="known types: .*tests.noop"):
        job_enqueue(job_type="tests.nope")


@pytest.mark.django_db
def test_same_key_returns_the_existing_job(redis_client):
    first = job_enqueue(job_type="tests.noop", payload={"x": 1}, idempotency_key="k1")
    second = job_enqueue(job_type="tests.noop", payload={"x": 1}, idempotency_key="k1")

    assert first.created and not second.created
    assert second.job.id == first.job.id
    assert Job.objects.count() == 1


@pytest.mark.django_db
def test_same_key_different_payload_is_a_conflict(redis_client):
    first = job_enqueue(job_type="tests.noop", payload={"x": 1}, idempotency_key="k1")

    with pytest.raises(IdempotencyKeyConflict, match=first.job.id):
        job_enqueue(job_type="tests.noop", payload={"x": 2}, idempotency_key="k1")


@pytest.mark.django_db
def test_key_is_scoped_by_type(redis_client):
    a = job_enqueue(job_type="tests.noop", idempotency_key="k1")
    b = job_enqueue(job_type="tests.record", idempotency_key="k1")
    assert a.job.id != b.job.id


@pytest.mark.django_db
@override_settings(JOBS_IDEMPOTENCY_WINDOW_SECONDS=60)
def test_key_is_free_again_after_the_window(redis_client):
    first = job_enqueue(job_type="tests.noop", idempotency_key="k1")
    with time_machine.travel(timezone.now() + timedelta(seconds=61)):
        second = job_enqueue(job_type="tests.noop", idempotency_key="k1")

    assert second.created and second.job.id != first.job.id
    assert Job.objects.get(id=first.job.id).idempotency_key is None


@pytest.mark.django_db(transaction=True)
def test_fifty_concurrent_enqueues_with_one_key_create_one_job(redis_client):
    callers = 50

    def enqueue():
        with transaction.atomic():
            return job_enqueue(job_type="tests.noop", payload={"order": 7}, idempotency_key="order-7")

    results = run_at_once(*[enqueue] * callers)
    assert len(results) == callers
    assert len({result.job.id for result in results}) == 1
    assert sum(result.created for result in results) == 1
    assert Job.objects.filter(type="tests.noop").count() == 1
    assert queue_length(redis_client) == 1


@pytest.mark.django_db(transaction=True)
def test_bulk_enqueue_inserts_publishes_and_respects_keys(redis_client):
    existing = job_enqueue(job_type="tests.record", payload={"index": 1}, idempotency_key="e-1").job
    redis_client.delete("default")

    results = job_bulk_enqueue(
        job_type="tests.record",
        payloads=[{"index": i} for i in range(5)],
        idempotency_keys=[f"e-{i}" for i in range(5)],
    )

    assert [r.created for r in results] == [True, False, True, True, True]
    assert results[1].job.id == existing.id
    assert Job.objects.filter(type="tests.record").count() == 5
    assert queue_length(redis_client) == 4
    assert Job.objects.filter(type="tests.record", published_at__isnull=True).count() == 0


@pytest.mark.django_db(transaction=True)
def test_bulk_enqueue_in_a_rolled_back_transaction_runs_nothing(redis_client):
    with pytest.raises(RuntimeError), transaction.atomic():
        job_bulk_enqueue(job_type="tests.record", payloads=[{"index": i} for i in range(10)])
        raise RuntimeError("webhook handler failed")

    assert Job.objects.count() == 0
    assert queue_length(redis_client) == 0


@pytest.mark.django_db
def test_bulk_enqueue_refuses_repeated_keys():
    with pytest.raises(ValueError, match="repeat"):
        job_bulk_enqueue(job_type="tests.record", payloads=[{}, {}], idempotency_keys=["a", "a"])


@pytest.mark.django_db(transaction=True)
def test_bulk_enqueue_returns_the_stored_jobs_and_publishes_one_message_each(redis_client):
    import base64
    import json

    from jobs.delivery.enqueue import payload_fingerprint

    with correlation_scope("webhook-9"), transaction.atomic():
        results = job_bulk_enqueue(job_type="tests.record", payloads=[{"index": i} for i in range(3)])
        assert queue_length(redis_client) == 0  # nothing leaves before the commit

    for index, result in enumerate(results):
        stored = Job.objects.get(id=result.job.id)
        assert (stored.payload, stored.payload_fingerprint) == ({"index": index}, payload_fingerprint({"index": index}))
        assert (stored.status, stored.queue, stored.correlation_id) == ("queued", "default", "webhook-9")
        assert stored.published_at is not None and stored.created_at == result.job.created_at
    messages = [json.loads(raw) for raw in redis_client.lrange("default", 0, -1)]
    by_job = {message["headers"]["job_id"]: message for message in messages}
    assert sorted(by_job) == sorted(result.job.id for result in results)
    for job_id, message in by_job.items():
        _args, kwargs, _embed = json.loads(base64.b64decode(message["body"]))
        assert kwargs == {"job_id": job_id, "attempt": 1, "schema_version": 1}
        assert (message["headers"]["id"], message["headers"]["correlation_id"]) == (f"{job_id}.1", "webhook-9")


@pytest.mark.django_db
def test_bulk_enqueue_statements_do_not_grow_with_the_batch(
    django_assert_num_queries, django_capture_on_commit_callbacks, redis_client
):
    for count in (5, 3000):
        # switch check, SAVEPOINT, one INSERT for every row, RELEASE, one UPDATE stamping published_at
        with django_assert_num_queries(5), django_capture_on_commit_callbacks(execute=True):
            job_bulk_enqueue(job_type="tests.record", payloads=[{"index": i} for i in range(count)])
    assert Job.objects.filter(published_at__isnull=False).count() == 3005
    assert queue_length(redis_client) == 3005


@pytest.mark.django_db
@override_settings(JOBS_IDEMPOTENCY_WINDOW_SECONDS=60)
def test_bulk_enqueue_reuses_a_key_once_its_window_has_passed(redis_client):
    first = job_bulk_enqueue(job_type="tests.record", payloads=[{}], idempotency_keys=["k1"])[0]
    with time_machine.travel(timezone.now() + timedelta(seconds=61)):
        again = job_bulk_enqueue(job_type="tests.record", payloads=[{}, {}], idempotency_keys=["k1", None])

    assert [result.created for result in again] == [True, True]
    assert again[0].job.id != first.job.id and again[0].job.idempotency_key == "k1"
    assert Job.objects.get(id=first.job.id).idempotency_key is None


@pytest.mark.django_db(transaction=True)
def test_concurrent_bulk_enqueues_with_overlapping_keys_create_each_job_once(redis_client):
    callers, keys = 4, [f"event-{i}" for i in range(2000)]

    def enqueue(offset: int):
        # Each caller sends the same keys in a different order, so their inserts interleave.
        order = keys[offset:] + keys[:offset]
        with transaction.atomic():
            batch = job_bulk_enqueue(
                job_type="tests.record", payloads=[{"event": key} for key in order], idempotency_keys=order
            )
        return list(zip(order, batch, strict=True))

    batches = run_at_once(*[functools.partial(enqueue, offset * 500) for offset in range(callers)])
    results = [pair for batch in batches for pair in batch]
    assert len(results) == callers * len(keys)
    job_for_key: dict[str, set[str]] = {}
    for key, result in results:
        job_for_key.setdefault(key, set()).add(result.job.id)
        assert result.job.idempotency_key == key
    assert all(len(job_ids) == 1 for job_ids in job_for_key.values())
    assert sum(result.created for _key, result in results) == len(keys)
    assert Job.objects.filter(type="tests.record").count() == len(keys)
    assert queue_length(redis_client) == len(keys)


@pytest.mark.django_db
def test_switched_off_type_refuses_enqueue():
    job_type_set_enabled(job_type="tests.noop", enabled=False, reason="incident 42")

    with pytest.raises(JobTypeDisabled, match="switched off") as caught:
        job_enqueue(job_type="tests.noop")
    assert caught.value.retryable is True
    assert JobTypeSwitch.objects.get(type="tests.noop").reason == "incident 42"


@pytest.mark.django_db
@override_settings(JOBS_DISABLED_TYPES=["tests.noop"])
def test_type_switched_off_by_settings_refuses_enqueue():
    with pytest.raises(JobTypeDisabled):
        job_enqueue(job_type="tests.noop")


@pytest.mark.django_db
def test_replay_of_an_existing_key_still_answers_after_the_type_is_switched_off(redis_client):
    first = job_enqueue(job_type="tests.noop", payload={"x": 1}, idempotency_key="k-off")
    job_type_set_enabled(job_type="tests.noop", enabled=False)

    again = job_enqueue(job_type="tests.noop", payload={"x": 1}, idempotency_key="k-off")

    assert (again.created, again.job.id) == (False, first.job.id)
    with pytest.raises(JobTypeDisabled):
        job_enqueue(job_type="tests.noop", payload={"x": 1}, idempotency_key="k-new")


@pytest.mark.django_db(transaction=True)
def test_published_message_leaves_ignore_result_to_the_task(redis_client):
    import base64
    import json

    job_enqueue(job_type="tests.noop")

    message = json.loads(redis_client.lpop("default"))
    # An explicit False here would override the task's ignore_result and store every result twice.
    assert message["headers"]["ignore_result"] is None
    assert message["headers"]["task"] == "tests.noop"
    args, kwargs, _ = json.loads(base64.b64decode(message["body"]))
    assert args == [] and kwargs["schema_version"] == 1


@pytest.mark.django_db(transaction=True)
def test_relay_republishes_a_job_whose_message_went_missing(redis_client, settings):
    from datetime import timedelta

    from django.utils import timezone

    from jobs.delivery.relay import job_relay_unpublished

    settings.JOBS_REPUBLISH_AFTER_SECONDS = 60
    waiting = job_enqueue(job_type="tests.noop").job
    fresh = job_enqueue(job_type="tests.noop").job
    redis_client.delete("default")  # as if a killed worker held the messages, or Redis lost them
    Job.objects.filter(id=waiting.id).update(published_at=timezone.now() - timedelta(seconds=61))

    assert job_relay_unpublished() == 1
    assert queue_length(redis_client) == 1
    assert Job.objects.get(id=waiting.id).published_at > timezone.now() - timedelta(seconds=5)
    assert job_relay_unpublished() == 0  # not again until another interval has passed
    assert Job.objects.get(id=fresh.id).published_at is not None


@pytest.mark.django_db(transaction=True)
def test_relay_does_not_republish_a_long_wait_while_its_queue_still_has_a_backlog(redis_client, settings):
    from jobs.delivery.relay import job_relay_unpublished

    settings.JOBS_REPUBLISH_AFTER_SECONDS = 60
    waiting = job_bulk_enqueue(job_type="tests.record", payloads=[{"n": n} for n in range(3)])
    Job.objects.filter(id__in=[result.job.id for result in waiting]).update(
        published_at=timezone.now() - timedelta(seconds=61)
    )

    # Their messages are still in the list: workers are behind, nothing was lost.
    assert job_relay_unpublished() == 0
    assert queue_length(redis_client) == 3

    redis_client.delete("default")  # the list is empty, yet the jobs still wait: their messages are gone
    assert job_relay_unpublished() == 3
    assert queue_length(redis_client) == 3


@pytest.mark.django_db(transaction=True)
def test_concurrent_enqueue_many_and_single_enqueues_sharing_keys_create_each_job_once(redis_client):
    # As the API's bulk and single enqueues do: one key space across types (key_exclusive_among), the keys'
    # locks taken by job_enqueue_many all at once in key order and by job_enqueue one at a time.
    keys, types = [f"req-{i}" for i in range(300)], ["tests.record", "tests.noop"]

    def many(offset: int):
        order = keys[offset:] + keys[:offset]
        wanted = [WantedJob(job_type="tests.record", payload={"key": key}, idempotency_key=key) for key in order]
        return list(zip(order, job_enqueue_many(wanted=wanted, key_exclusive_among=types), strict=True))

    def single(key: str):
        return [(key, job_enqueue(job_type="tests.record", payload={"key": key}, idempotency_key=key,
                                  key_exclusive_among=types))]  # fmt: skip

    batches = run_at_once(functools.partial(many, 0), functools.partial(many, 150), functools.partial(single, "req-7"),
                          functools.partial(single, "req-200"))  # fmt: skip
    job_for_key: dict[str, set[str]] = {}
    for key, result in (pair for batch in batches for pair in batch):
        assert isinstance(result, EnqueueResult), result
        job_for_key.setdefault(key, set()).add(result.job.id)
    assert len(job_for_key) == len(keys) and all(len(ids) == 1 for ids in job_for_key.values())
    assert Job.objects.filter(type="tests.record").count() == len(keys)
    assert queue_length(redis_client) == len(keys)


@pytest.mark.django_db
def test_enqueue_many_refuses_a_key_held_by_another_type_and_all_or_nothing_writes_nothing():
    types = ["tests.record", "tests.noop"]
    held = job_enqueue(job_type="tests.noop", idempotency_key="k", key_exclusive_among=types).job
    wanted = [WantedJob(job_type="tests.record", payload={}), WantedJob(job_type="tests.record", payload={},
                                                                         idempotency_key="k")]  # fmt: skip

    created, refused = job_enqueue_many(wanted=wanted, key_exclusive_among=types)
    assert isinstance(created, EnqueueResult) and created.created
    assert isinstance(refused, IdempotencyKeyConflict) and refused.detail["job_id"] == held.id
    with pytest.raises(BatchRefused) as caught:
        job_enqueue_many(wanted=wanted, key_exclusive_among=types, all_or_nothing=True)
    assert list(caught.value.refused) == [1]
    assert Job.objects.filter(type="tests.record").count() == 1
