"""Jobs that run later: stored with a due time, published by the scheduler's tick once due, never before."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from jobs.core.lifecycle import job_cancel
from jobs.delivery.enqueue import job_bulk_enqueue, job_enqueue
from jobs.delivery.relay import job_relay_unpublished
from jobs.delivery.scheduled import TICK_LOCK, job_publish_due
from jobs.foundation.exceptions import ScheduleInvalid
from jobs.models import Job
from jobs.ops.operations import job_bulk_replay, job_type_set_enabled
from jobs.ops.selectors import jobs_overview


def queued_messages(redis_client, queue: str = "default") -> int:
    return redis_client.llen(queue)


def default_queue():
    return next(queue for queue in jobs_overview().queues if queue.name == "default")


@pytest.mark.django_db(transaction=True)
def test_a_job_with_a_delay_waits_unpublished_until_the_tick_finds_it_due(redis_client):
    job = job_enqueue(job_type="tests.noop", delay=timedelta(minutes=5)).job

    job.refresh_from_db()
    assert (job.status, job.published_at) == ("queued", None)
    assert abs(job.run_at - (job.enqueued_at + timedelta(minutes=5))) < timedelta(seconds=1)
    assert queued_messages(redis_client) == 0
    assert job_publish_due(window_seconds=0) == 0
    assert job_relay_unpublished(grace_seconds=0) == 0  # the relay does not publish it early either

    with time_machine.travel(job.run_at - timedelta(milliseconds=1)):
        assert job_publish_due(window_seconds=0) == 0
    with time_machine.travel(job.run_at):
        assert job_publish_due(window_seconds=0) == 1
    job.refresh_from_db()
    assert job.published_at is not None and job.run_at <= job.published_at
    assert queued_messages(redis_client) == 1
    assert job_publish_due(window_seconds=0) == 0  # published once: it left the index


@pytest.mark.django_db(transaction=True)
def test_run_at_in_the_past_runs_now_and_keeps_its_due_time(redis_client):
    past = timezone.now() - timedelta(hours=1)
    job = job_enqueue(job_type="tests.noop", run_at=past).job

    job.refresh_from_db()
    assert job.run_at == past and job.published_at is not None
    assert queued_messages(redis_client) == 1


@pytest.mark.django_db
def test_bad_due_times_are_refused_naming_the_field(settings):
    settings.JOBS_SCHEDULE_HORIZON_DAYS = 30
    with pytest.raises(ScheduleInvalid, match="has no time zone") as naive:
        job_enqueue(job_type="tests.noop", run_at=datetime(2030, 1, 1, 9, 0))  # noqa: DTZ001 - the case under test
    with pytest.raises(ScheduleInvalid, match="more than 30 days ahead") as far:
        job_enqueue(job_type="tests.noop", run_at=timezone.now() + timedelta(days=31))
    with pytest.raises(ScheduleInvalid, match="not both"):
        job_enqueue(job_type="tests.noop", run_at=timezone.now(), delay=timedelta(seconds=1))
    with pytest.raises(ScheduleInvalid, match="more than 30 days ahead") as bulk:
        job_bulk_enqueue(job_type="tests.noop", payloads=[{}], delay=timedelta(days=31))
    assert (naive.value.detail["field"], far.value.detail["field"], bulk.value.detail["field"]) == (
        "run_at", "run_at", "delay",
    )  # fmt: skip
    assert not Job.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_bulk_enqueue_with_a_due_time_publishes_nothing_until_due(redis_client):
    run_at = timezone.now() + timedelta(seconds=30)
    results = job_bulk_enqueue(job_type="tests.record", payloads=[{"n": n} for n in range(5)], run_at=run_at)

    assert set(Job.objects.values_list("run_at", flat=True)) == {run_at}
    assert queued_messages(redis_client) == 0
    with time_machine.travel(run_at + timedelta(milliseconds=5)):
        assert job_publish_due(window_seconds=0) == 5
    assert queued_messages(redis_client) == 5
    assert {result.job.id for result in results} == set(
        Job.objects.filter(published_at__isnull=False).values_list("id", flat=True)
    )


@pytest.mark.django_db(transaction=True)
def test_the_tick_publishes_in_due_order_in_batches(redis_client):
    now = timezone.now()
    for offset in (3, 1, 2):
        job_enqueue(job_type="tests.record", payload={"n": offset}, run_at=now - timedelta(seconds=offset))
    job_enqueue(job_type="tests.record", payload={"n": 0}, run_at=now + timedelta(hours=1))
    Job.objects.update(published_at=None)  # as if they had been enqueued long ago, before they were due

    assert job_publish_due(window_seconds=0, limit=2) == 3  # a full batch is followed by the next at once
    assert Job.objects.filter(published_at__isnull=True).get().payload == {"n": 0}


@pytest.mark.django_db(transaction=True)
def test_a_tick_waits_within_its_window_for_a_job_due_before_the_next_tick(redis_client):
    job = job_enqueue(job_type="tests.noop", delay=timedelta(seconds=0.4)).job

    published = job_publish_due(window_seconds=1.0)

    job.refresh_from_db()
    assert published == 1
    assert job.run_at <= job.published_at < job.run_at + timedelta(seconds=0.3)


@pytest.mark.django_db(transaction=True)
def test_only_one_tick_publishes_at_a_time(redis_client):
    from jobs.coordination.locks import RedisLock

    job_enqueue(job_type="tests.noop", run_at=timezone.now() + timedelta(seconds=1))
    other = RedisLock(name=TICK_LOCK, ttl=30)
    assert other.acquire()
    with time_machine.travel(timezone.now() + timedelta(seconds=2)):
        assert job_publish_due(window_seconds=0) == 0
        other.release()
        assert job_publish_due(window_seconds=0) == 1


@pytest.mark.django_db(transaction=True)
def test_a_switched_off_type_holds_its_due_jobs_and_switching_on_publishes_them(redis_client):
    job = job_enqueue(job_type="tests.noop", delay=timedelta(seconds=10)).job
    job_type_set_enabled(job_type="tests.noop", enabled=False)

    with time_machine.travel(job.run_at + timedelta(seconds=1)):
        assert job_publish_due(window_seconds=0) == 0
        assert default_queue().due_jobs == 0  # held, not a backlog
        job_type_set_enabled(job_type="tests.noop", enabled=True)  # publishes those due on commit

    job.refresh_from_db()
    assert job.published_at is not None
    assert queued_messages(redis_client) == 1


@pytest.mark.django_db(transaction=True)
def test_switching_on_does_not_publish_jobs_not_due_yet(redis_client):
    job = job_enqueue(job_type="tests.noop", delay=timedelta(minutes=10)).job
    job_type_set_enabled(job_type="tests.noop", enabled=False)
    job_type_set_enabled(job_type="tests.noop", enabled=True)

    job.refresh_from_db()
    assert job.published_at is None and queued_messages(redis_client) == 0


@pytest.mark.django_db(transaction=True)
def test_a_job_cancelled_before_it_is_due_is_never_published(redis_client):
    job = job_enqueue(job_type="tests.noop", delay=timedelta(seconds=5)).job

    assert job_cancel(job=job) == "cancelled"
    with time_machine.travel(job.run_at + timedelta(seconds=1)):
        assert job_publish_due(window_seconds=0) == 0
        assert job_relay_unpublished(grace_seconds=0) == 0
    assert queued_messages(redis_client) == 0


@pytest.mark.django_db(transaction=True)
def test_the_same_idempotency_key_returns_the_scheduled_job(redis_client):
    run_at = timezone.now() + timedelta(minutes=1)
    first = job_enqueue(job_type="tests.noop", payload={"a": 1}, idempotency_key="k1", run_at=run_at)
    again = job_enqueue(job_type="tests.noop", payload={"a": 1}, idempotency_key="k1", run_at=run_at)

    assert (first.created, again.created, again.job.id) == (True, False, first.job.id)
    assert Job.objects.count() == 1 and queued_messages(redis_client) == 0


@pytest.mark.django_db(transaction=True)
def test_a_replay_of_a_scheduled_job_runs_now(redis_client):
    original = job_enqueue(job_type="tests.noop", run_at=timezone.now() - timedelta(minutes=1)).job
    Job.objects.filter(id=original.id).update(status="succeeded", finished_at=timezone.now())
    redis_client.delete("default")

    [replay] = job_bulk_replay(jobs=[Job.objects.get(id=original.id)])

    replay.refresh_from_db()
    assert replay.run_at is None and replay.published_at is not None
    assert queued_messages(redis_client) == 1


@pytest.mark.django_db
def test_the_overview_counts_a_scheduled_job_only_from_its_due_time():
    start = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
    with time_machine.travel(start, tick=False):
        job_enqueue(job_type="tests.noop", run_at=start + timedelta(minutes=10))
    with time_machine.travel(start + timedelta(minutes=9), tick=False):
        assert default_queue().due_jobs == 0
    with time_machine.travel(start + timedelta(minutes=12), tick=False):
        queue = default_queue()
        # Waiting two minutes since it was due, not twelve since it was enqueued.
        assert (queue.due_jobs, queue.oldest_due_seconds) == (1, 120.0)


@pytest.mark.django_db
def test_the_tick_reads_due_jobs_through_the_due_index(redis_client):
    if connection.vendor != "postgresql":
        pytest.skip("the query plan is PostgreSQL's; SQLite's planner is not what production runs")
    job_enqueue(job_type="tests.noop", delay=timedelta(hours=1))
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")  # on a near-empty table the planner would scan anyway
        with CaptureQueriesContext(connection) as queries:
            job_publish_due(window_seconds=0)
        select = next(sql for sql in (query["sql"] for query in queries.captured_queries)
                      if sql.startswith("SELECT") and '"jobs_job"' in sql and "run_at" in sql)  # fmt: skip
        cursor.execute(f"EXPLAIN {select}")
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "jobs_due_idx" in plan, plan
