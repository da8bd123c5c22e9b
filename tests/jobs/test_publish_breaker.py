"""Publishing never blocks callers on a dead broker: a circuit breaker leaves rows to the relay."""

import time

import pytest

from jobs.models import Job
from tests.processes import run_django_snippet

S = Job.Status


@pytest.mark.django_db(transaction=True)
def test_five_enqueues_in_one_transaction_commit_fast_while_redis_is_down(subprocess_env, embedded_redis_factory):
    broker = embedded_redis_factory()
    broker.stop()  # its port now refuses connections, as a crashed Redis does

    # A fresh process (its own breaker, closed): the first publish finds the broker down, the
    # other four skip publishing for the back-off window instead of waiting for it each.
    output = run_django_snippet(
        "import time\n"
        "from django.db import transaction\n"
        "from jobs.services import job_enqueue\n"
        "started = time.monotonic()\n"
        "with transaction.atomic():\n"
        "    ids = [job_enqueue(job_type='jobs.canary', payload={'message': str(i)}).job.id for i in range(5)]\n"
        "print(round(time.monotonic() - started, 3), ','.join(ids))\n",
        env={**subprocess_env, "REDIS_URL": broker.url, "CELERY_BROKER_CONNECTION_TIMEOUT": "2"},
    )
    elapsed, ids = output.strip().splitlines()[-1].split()
    print(f"5 enqueues + commit with Redis down: {elapsed} s")

    # One broker timeout at most, not one per enqueue (it took 10 s before the breaker).
    assert float(elapsed) < 3.0
    # Nothing lost: every row is there, unpublished, for the relay.
    assert Job.objects.filter(id__in=ids.split(","), status=S.QUEUED, published_at__isnull=True).count() == 5


def test_breaker_opens_on_failure_and_closes_after_the_back_off(monkeypatch):
    from jobs.core import publisher

    breaker = publisher.PublishBreaker(back_off_seconds=0.3)
    assert breaker.allows()
    breaker.record_failure(ConnectionError("refused"))
    assert not breaker.allows()
    started = time.monotonic()
    while not breaker.allows():
        assert time.monotonic() - started < 5, "the breaker never closed"
        time.sleep(0.02)
    assert time.monotonic() - started >= 0.25
    # Half-open: one more failure opens it again at once.
    breaker.record_failure(ConnectionError("still refused"))
    assert not breaker.allows()
    breaker.record_success()
    assert breaker.allows()
