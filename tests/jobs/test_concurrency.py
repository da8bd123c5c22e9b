"""Global concurrency limits, without a worker: declaring them, claiming a slot, waiting for one without spending
an attempt, and the slot coming back when an attempt ends or its lease runs out."""

from datetime import timedelta

import pytest
from django.utils import timezone

from jobs.core import registry
from jobs.core.lifecycle import job_succeed
from jobs.core.registry import JobType
from jobs.delivery.enqueue import job_enqueue
from jobs.models import Job
from jobs.worker.concurrency import OverLimit, concurrency_claim, concurrency_release


def noop(ctx, payload):
    return None


@pytest.mark.parametrize(
    ("limits", "says"),
    [
        ({"concurrency": 0}, "concurrency must be a whole number >= 1"),
        ({"concurrency": -3}, "concurrency must be a whole number >= 1"),
        ({"concurrency": 1.5}, "concurrency must be a whole number >= 1"),
        ({"concurrency_per_key": 0, "concurrency_key": str}, "concurrency_per_key must be a whole number >= 1"),
        ({"concurrency_key": lambda payload: payload["user"]}, "concurrency_key needs concurrency_per_key"),
        ({"concurrency_per_key": 2}, "concurrency_per_key needs concurrency_key"),
        ({"concurrency_key": "user", "concurrency_per_key": 1}, "concurrency_key must be a function of the payload"),
    ],
)
def test_an_invalid_declaration_fails_at_import_naming_the_type(limits, says):
    from jobs.public import job_type

    with pytest.raises(ValueError, match=says) as refused:
        job_type("tests.badly_limited", **limits)(noop)
    assert "'tests.badly_limited'" in str(refused.value)
    assert not registry.is_declared("tests.badly_limited")


def claim(job: Job, attempt: int = 1):
    return concurrency_claim(
        spec=registry.get(job.type), job_id=job.id, attempt=attempt, worker="w", celery_task_id="t"
    )


@pytest.mark.django_db(transaction=True)
def test_a_job_over_the_limit_waits_unpublished_without_spending_an_attempt(redis_client):
    first, second, third = (job_enqueue(job_type="tests.capped", payload={"n": n}).job for n in range(3))

    assert isinstance(claim(first), Job) and isinstance(claim(second), Job)
    over = claim(third)

    assert over == OverLimit(job_id=third.id, key=None, running=2, limit=2)
    third.refresh_from_db()
    assert (third.status, third.attempt, third.published_at, third.concurrency_key) == ("queued", 0, None, "")
    assert third.next_retry_at > timezone.now()  # the relay looks again later, should no release come
    assert claim(third) is not None  # a second delivery of the same message is refused the same way
    assert concurrency_release(spec=registry.get("tests.capped")) == 0  # still full

    running = Job.objects.get(id=first.id)
    assert job_succeed(job=running, finished_at=timezone.now(), result=None)
    assert concurrency_release(spec=registry.get("tests.capped")) == 1
    third.refresh_from_db()
    assert third.published_at is not None and redis_client.llen("default") == 4  # three enqueued, one released
    assert isinstance(claim(third), Job)


@pytest.mark.django_db(transaction=True)
def test_a_slot_whose_lease_ran_out_is_free_again(redis_client):
    first, second, third = (job_enqueue(job_type="tests.capped", payload={"n": n}).job for n in range(3))
    claim(first), claim(second)
    assert isinstance(claim(third), OverLimit)

    # As if the worker running the first had been SIGKILLed: its heartbeat stopped, its lease ran out.
    Job.objects.filter(id=first.id).update(lease_expires_at=timezone.now() - timedelta(seconds=1))

    assert concurrency_release(spec=registry.get("tests.capped")) == 1
    assert isinstance(claim(third), Job)


@pytest.mark.django_db(transaction=True)
def test_a_per_key_limit_lets_other_keys_run(redis_client):
    alice_1, alice_2, bob = (job_enqueue(job_type="tests.per_user", payload={"user": user}).job
                             for user in ("alice", "alice", "bob"))  # fmt: skip

    assert isinstance(claim(alice_1), Job)
    assert claim(alice_2) == OverLimit(job_id=alice_2.id, key="alice", running=1, limit=1)
    assert isinstance(claim(bob), Job)
    assert Job.objects.get(id=alice_2.id).concurrency_key == "alice"

    assert job_succeed(job=Job.objects.get(id=bob.id), finished_at=timezone.now(), result=None)
    assert concurrency_release(spec=registry.get("tests.per_user")) == 0  # bob's slot does not fit alice
    assert job_succeed(job=Job.objects.get(id=alice_1.id), finished_at=timezone.now(), result=None)
    assert concurrency_release(spec=registry.get("tests.per_user")) == 1
    assert isinstance(claim(alice_2), Job)


def test_unlimited_types_are_not_limited():
    spec = JobType(name="tests.free", handler=noop)
    assert not spec.limited


@pytest.mark.django_db(transaction=True)
def test_the_overview_and_the_metrics_show_running_limit_and_waiting(redis_client, client, django_user_model):
    from prometheus_client import generate_latest

    from jobs.ops.metrics_scrape import registry_for_scrape
    from jobs.ops.selectors import concurrency_usage
    from tests.jobs.metrics_helpers import value

    jobs = [job_enqueue(job_type="tests.capped", payload={"n": n}).job for n in range(3)]
    for job in jobs:
        claim(job)

    usage = {row.job_type: row for row in concurrency_usage()}
    assert (usage["tests.capped"].running, usage["tests.capped"].limit, usage["tests.capped"].waiting) == (2, 2, 1)
    assert (usage["tests.per_user"].running, usage["tests.per_user"].per_key_limit) == (0, 1)
    assert "tests.noop" not in usage
    text = generate_latest(registry_for_scrape(with_overview=True)).decode()
    assert value(text, "jobs_concurrency_waiting", type="tests.capped") == 1
    assert value(text, "jobs_concurrency_running", type="tests.capped") == 2
    assert value(text, "jobs_concurrency_limit", type="tests.capped") == 2

    client.force_login(django_user_model.objects.create_superuser("op", "op@example.com", "pw"))
    page = client.get("/admin/jobs/job/overview/").content.decode()
    assert "Concurrency limits" in page and "tests.capped" in page and "2 / 2" in page
