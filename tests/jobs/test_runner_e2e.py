"""Jobs through real worker processes and real Redis: retries, dead letters, cancel, crashes, outages."""

import signal

import pytest
from django.db import transaction
from django.test import override_settings
from django_celery_beat.models import IntervalSchedule, PeriodicTask
from django_celery_results.models import TaskResult

from jobs.core.lifecycle import job_cancel
from jobs.core.retry import Backoff
from jobs.delivery.enqueue import job_enqueue
from jobs.delivery.schedules import schedules_sync
from jobs.models import Job, JobAttempt
from jobs.ops.operations import job_type_set_enabled
from jobs.tasks import canary
from jobs.worker.maintenance import job_rescue_orphans
from tests.processes import run_django_snippet, wait_for

pytestmark = pytest.mark.worker
S = Job.Status
FINAL = [S.SUCCEEDED, S.FAILED, S.DEAD, S.CANCELLED]


def wait_final(job_id: str, timeout: float = 60) -> Job:
    return wait_for(
        lambda: Job.objects.filter(id=job_id, status__in=FINAL).first(),
        timeout=timeout,
        message=f"job {job_id} to finish",
    )


def test_transient_failures_retry_with_backoff_then_succeed(start_worker):
    start_worker(queues="default", concurrency=2)
    job = job_enqueue(job_type="jobs.canary", payload={"seconds": 0.1, "fail_first": 2}).job

    done = wait_final(job.id)

    assert done.status == S.SUCCEEDED
    assert done.result == {"message": "canary", "attempts": 3}
    attempts = list(done.attempts.order_by("number"))
    assert [(a.number, a.outcome) for a in attempts] == [(1, "retry"), (2, "retry"), (3, "succeeded")]
    backoff: Backoff = canary.job_type.retry.backoff
    for earlier, later in zip(attempts, attempts[1:], strict=False):
        planned = earlier.retry_delay_ms / 1000
        assert 0 < planned <= backoff.ceiling(earlier.number)
        # The next attempt did not start before its backoff delay was over.
        assert (later.started_at - earlier.finished_at).total_seconds() >= planned - 0.05
    assert attempts[0].error_code == "transient_error"
    # Each attempt links to its Celery result row.
    assert TaskResult.objects.filter(task_id__in=[a.celery_task_id for a in attempts]).count() == 3


def test_always_failing_job_ends_dead_after_max_attempts(start_worker):
    start_worker(queues="default")
    job = job_enqueue(job_type="tests.always_fails").job

    done = wait_final(job.id)

    assert done.status == S.DEAD
    assert done.attempt == done.max_attempts == 3
    assert list(done.attempts.values_list("outcome", flat=True)) == ["retry", "retry", "dead"]
    assert "always fails (attempt 3)" in done.error_message
    assert "TransientJobError" in done.error_traceback


def test_bug_fails_at_once_without_retrying(start_worker):
    start_worker(queues="default")
    job = job_enqueue(job_type="tests.bug").job

    done = wait_final(job.id)

    assert (done.status, done.attempt, done.error_code) == (S.FAILED, 1, "ValueError")
    assert done.attempts.get().outcome == JobAttempt.Outcome.FAILED


def test_running_job_stops_when_cancelled(start_worker):
    start_worker(queues="default")
    job = job_enqueue(job_type="tests.until_cancelled").job
    wait_for(lambda: Job.objects.filter(id=job.id, status=S.RUNNING, progress__gte=2).exists(), timeout=30)

    assert job_cancel(job=job) == S.RUNNING  # asked to stop; it stops at its next check

    done = wait_final(job.id)
    assert done.status == S.CANCELLED
    assert done.attempts.get().outcome == JobAttempt.Outcome.CANCELLED


def test_correlation_id_flows_to_jobs_a_job_enqueues(start_worker):
    start_worker(queues="default", concurrency=2)
    parent = job_enqueue(job_type="tests.fan_out", payload={"n": 3}, correlation_id="req-abc").job

    done = wait_final(parent.id)
    children = [wait_final(child_id) for child_id in done.result["children"]]

    assert {child.correlation_id for child in children} == {"req-abc"}
    assert {child.result["correlation_id"] for child in children} == {"req-abc"}
    assert done.log_lines.filter(message="enqueued 3 children").exists()


def test_job_log_is_kept_and_bounded(start_worker):
    with override_settings():
        start_worker(queues="default", extra_env={"JOBS_LOG_MAX_LINES": "5"})
    job = job_enqueue(job_type="tests.chatty", payload={"lines": 12}).job

    done = wait_final(job.id)

    lines = list(done.log_lines.values_list("message", flat=True))
    assert lines[:5] == [f"line {i}" for i in range(5)]
    assert lines[5] == "7 more log line(s) of this attempt were not kept (limit 5)"


def test_unknown_message_version_fails_the_job(start_worker):
    from config.celery_app import app

    start_worker(queues="default")
    job = job_enqueue(job_type="tests.noop").job
    wait_final(job.id)
    newer = Job.objects.create(type="tests.noop", queue="default", max_attempts=1)

    app.send_task(
        "tests.noop", kwargs={"job_id": newer.id, "attempt": 1, "schema_version": 99, "new_field": 1}, queue="default"
    )

    done = wait_final(newer.id)
    assert (done.status, done.error_code) == (S.FAILED, "unsupported_message_version")
    assert "99" in done.error_message


def test_switched_off_type_waits_and_runs_once_switched_on(start_worker):
    # The type is switched off in the transaction that enqueues the job, so its message (published at
    # commit) is already on its way when the switch is off. No worker runs yet: none can run the job
    # before the switch, and the publisher's published_at stamp is in before any worker resets it.
    with transaction.atomic():
        job = job_enqueue(job_type="tests.noop").job
        job_type_set_enabled(job_type="tests.noop", enabled=False)
    assert Job.objects.filter(id=job.id, published_at__isnull=False).exists(), "the message was published"
    start_worker(queues="default")
    # The worker must leave the job waiting, unpublished, for the relay.
    wait_for(lambda: Job.objects.filter(id=job.id, published_at__isnull=True).exists() or None, timeout=20,
             message="the worker to put the job back to waiting")  # fmt: skip
    assert Job.objects.get(id=job.id).status == S.QUEUED

    job_type_set_enabled(job_type="tests.noop", enabled=True)

    assert wait_final(job.id, timeout=30).status == S.SUCCEEDED


def test_worker_killed_mid_job_is_rescued_and_the_job_completes(start_worker):
    doomed = start_worker(queues="default", name="doomed", extra_env={"JOBS_LEASE_SECONDS": "3"})
    job = job_enqueue(job_type="jobs.canary", payload={"seconds": 3}).job
    wait_for(lambda: Job.objects.filter(id=job.id, status=S.RUNNING).exists(), timeout=30, message="job to start")

    doomed.kill_group(signal.SIGKILL)
    doomed.process.wait(timeout=10)
    start_worker(queues="default", name="survivor")
    # RescueReport is a dataclass (always truthy): wait until a report names the job.
    report = wait_for(lambda: (found := job_rescue_orphans()).requeued and found, timeout=30, interval=0.5,
                      message="the reaper to rescue the job")  # fmt: skip
    assert job.id in report.requeued

    done = wait_final(job.id)
    assert done.status == S.SUCCEEDED
    assert list(done.attempts.values_list("outcome", flat=True)) == ["lost", "succeeded"]
    assert not Job.objects.filter(status=S.RUNNING).exists()


def test_enqueue_while_broker_is_down_is_delivered_after_it_returns(
    subprocess_env, embedded_redis_factory, start_worker
):
    broker = embedded_redis_factory()
    broker_env = {
        **subprocess_env,
        "REDIS_URL": broker.url,
        "JOBS_RELAY_GRACE_SECONDS": "0",
        "JOBS_RELAY_INTERVAL_SECONDS": "1",
    }
    broker.stop()

    # A web process enqueues five jobs while Redis is unreachable: the request still succeeds.
    output = run_django_snippet(
        "from django.db import transaction\n"
        "from jobs.delivery.enqueue import job_enqueue\n"
        "with transaction.atomic():\n"
        "    ids = [job_enqueue(job_type='jobs.canary', payload={'message': str(i)}).job.id for i in range(5)]\n"
        "print(','.join(ids))\n",
        env=broker_env,
    )
    job_ids = output.strip().splitlines()[-1].split(",")
    assert Job.objects.filter(id__in=job_ids, status=S.QUEUED, published_at__isnull=True).count() == 5

    broker.start()  # same port: Redis is back, empty
    start_worker(queues="default", extra_env={"REDIS_URL": broker.url})
    published = run_django_snippet(
        "from jobs.delivery.relay import job_relay_unpublished\nprint(job_relay_unpublished())", env=broker_env
    )

    assert published.strip().splitlines()[-1] == "5"
    for job_id in job_ids:
        assert wait_final(job_id).status == S.SUCCEEDED


def test_beat_runs_the_relay(subprocess_env, embedded_redis_factory, start_worker, start_beat):
    schedules_sync()
    every_second, _ = IntervalSchedule.objects.get_or_create(every=1, period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.filter(name="jobs.relay_unpublished").update(interval=every_second)
    job = job_enqueue(job_type="tests.noop").job
    # As if the broker had been down at commit time.
    Job.objects.filter(id=job.id).update(published_at=None)
    start_worker(queues="default,housekeeping")
    start_beat(extra_env={"JOBS_RELAY_GRACE_SECONDS": "0", "JOBS_RELAY_INTERVAL_SECONDS": "1"})

    assert wait_final(job.id, timeout=60).status == S.SUCCEEDED


def test_dead_job_replayed_from_the_admin_runs_again(start_worker, client, django_user_model):
    from django.urls import reverse

    from jobs.models import JobAuditEntry

    operator = django_user_model.objects.create_superuser("operator", "op@example.com", "pw")
    start_worker(queues="default")
    job = job_enqueue(job_type="tests.always_fails").job
    assert wait_final(job.id).status == S.DEAD
    client.force_login(operator)

    response = client.post(
        reverse("admin:jobs_deadjob_changelist") + "?type=tests.always_fails",
        {"action": "replay_jobs", "_selected_action": [job.id], "confirm": "yes"},
        follow=True,
    )

    assert "Replayed 1 job " in response.content.decode()
    replay = Job.objects.get(replay_of=job)
    done = wait_final(replay.id)
    # It ran again (and, still broken, went through all its attempts again).
    assert (done.status, done.attempt, done.payload) == (S.DEAD, 3, job.payload)
    entry = JobAuditEntry.objects.get(action="replay")
    assert entry.actor == operator and entry.job_ids == [job.id] and entry.detail["new_job_ids"] == [replay.id]
