"""The operations overview: queue depth on the real broker, backlog age, dead-letter queue, success rate, alerts."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.db import OperationalError
from django.utils import timezone

from devtools.devstack import free_port
from jobs.api.openapi import OPS_OVERVIEW
from jobs.models import Job
from jobs.ops.operations import job_type_set_enabled
from jobs.ops.selectors import jobs_overview

S = Job.Status


def make_job(status: str, *, queue: str = "default", job_type: str = "tests.record", ago: float = 0, **fields) -> Job:
    at = timezone.now() - timedelta(seconds=ago)
    job = Job.objects.create(type=job_type, queue=queue, status=status, enqueued_at=at, **fields)
    Job.objects.filter(id=job.id).update(created_at=at)
    return job


def alert_codes(overview) -> list[str]:
    return sorted(alert.code for alert in overview.alerts)


@pytest.fixture
def troubled(db, redis_client):
    """A platform with a stale queue, a dead job and a poor recent success rate."""
    make_job(S.QUEUED, ago=600)  # due and waiting ten minutes
    make_job(S.QUEUED, ago=5)
    make_job(S.RETRYING, next_retry_at=timezone.now() + timedelta(minutes=5))  # not due yet
    make_job(S.QUEUED, queue="exports", ago=30)
    make_job(S.RUNNING, started_at=timezone.now())
    make_job(S.DEAD, finished_at=timezone.now())
    now = timezone.now()
    for _ in range(19):
        make_job(S.SUCCEEDED, finished_at=now)
    for _ in range(2):
        make_job(S.FAILED, finished_at=now)
    make_job(S.CANCELLED, finished_at=now)  # says nothing about health
    make_job(S.FAILED, finished_at=now - timedelta(hours=2))  # outside the window
    for index in range(3):
        redis_client.lpush("default", f"message-{index}")


def test_counts_queues_and_alerts(troubled):
    overview = jobs_overview()

    queues = {queue.name: queue for queue in overview.queues}
    assert sorted(queues) == ["default", "emails", "exports", "housekeeping", "sync"]
    assert (queues["default"].broker_depth, queues["default"].due_jobs) == (3, 2)
    assert 599 <= queues["default"].oldest_due_seconds < 700
    assert (queues["exports"].broker_depth, queues["exports"].due_jobs) == (0, 1)
    assert queues["emails"].oldest_due_seconds is None
    assert overview.live_counts == {"queued": 3, "retrying": 1, "running": 1, "dead": 1}
    assert overview.ended_counts == {"succeeded": 19, "failed": 2, "dead": 1, "cancelled": 1}
    assert overview.success_rate == pytest.approx(19 / 22)
    # No worker runs in this test: the waiting queue is also one nobody consumes.
    assert alert_codes(overview) == ["dead_letter_queue", "queue_backlog", "queue_unconsumed", "success_rate"]
    backlog = next(alert for alert in overview.alerts if alert.code == "queue_backlog")
    assert "'default'" in backlog.message and "alert above 300 s" in backlog.message


def test_thresholds_come_from_settings_and_zero_switches_an_alert_off(troubled, settings):
    settings.JOBS_ALERT_DEAD_JOBS = 0
    settings.JOBS_ALERT_OLDEST_DUE_SECONDS = 900
    settings.JOBS_ALERT_SUCCESS_PERCENT = 80
    settings.JOBS_ALERT_UNCONSUMED_SECONDS = 0
    assert jobs_overview().alerts == []

    settings.JOBS_ALERT_SUCCESS_PERCENT = 95
    settings.JOBS_ALERT_MIN_ENDED = 50  # 22 ended jobs are too few to judge by
    assert jobs_overview().alerts == []


def test_waiting_jobs_of_a_switched_off_type_are_no_backlog(db, redis_client):
    make_job(S.QUEUED, job_type="tests.noop", ago=3600)
    assert alert_codes(jobs_overview()) == ["queue_backlog", "queue_unconsumed"]

    job_type_set_enabled(job_type="tests.noop", enabled=False, reason="paused on purpose")

    overview = jobs_overview()
    assert overview.alerts == []
    assert overview.live_counts["queued"] == 1  # still counted, just not an alert


def test_an_unreachable_broker_is_reported_not_raised(db, settings):
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{free_port()}/0"

    overview = jobs_overview()

    assert {queue.broker_depth for queue in overview.queues} == {None}
    assert alert_codes(overview) == ["broker_unreachable"]


def test_api_is_for_staff_only(client, troubled, alice, staff):
    assert client.get("/api/ops/overview").status_code == 401
    client.force_login(alice)
    refused = client.get("/api/ops/overview")
    assert (refused.status_code, refused.json()["error"]["code"]) == (403, "forbidden")

    client.force_login(staff)
    body = client.get("/api/ops/overview").json()

    assert body["status"] == "alerting"
    assert body["dead_letter_queue"] == 1
    assert {alert["code"] for alert in body["alerts"]} == {
        "dead_letter_queue", "queue_backlog", "queue_unconsumed", "success_rate"
    }  # fmt: skip
    # Each alert reads as words and links to its runbook section, beside the code probes match on.
    dead_letter = next(alert for alert in body["alerts"] if alert["code"] == "dead_letter_queue")
    assert dead_letter["title"] == "Dead-letter queue not empty"
    assert dead_letter["runbook_url"] == "/admin/jobs/job/runbook/#operator-runbook-the-dead-letter-queue"
    alert_schema = OPS_OVERVIEW["properties"]["alerts"]["items"]
    assert all(set(alert) == set(alert_schema["required"]) for alert in body["alerts"])
    assert body["last_window"]["success_rate"] == round(19 / 22, 4)
    assert next(queue for queue in body["queues"] if queue["name"] == "default")["broker_depth"] == 3
    # The answer has what the OpenAPI document promises.
    assert set(body) == set(OPS_OVERVIEW["properties"]) == set(OPS_OVERVIEW["required"])
    queue_schema = OPS_OVERVIEW["properties"]["queues"]["items"]
    assert all(set(queue) == set(queue_schema["required"]) for queue in body["queues"])
    assert set(body["last_window"]) == set(OPS_OVERVIEW["properties"]["last_window"]["properties"])


def test_admin_page_shows_the_overview_and_the_job_list_links_to_it(client, troubled):
    client.force_login(User.objects.create_superuser("operator", "op@example.com", "pw"))

    page = client.get("/admin/jobs/job/overview/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "1 in the dead-letter queue" in html and "queue_backlog" in html and "86.4 %" in html
    assert "/admin/jobs/job/overview/" in client.get("/admin/jobs/job/").content.decode()


def test_admin_page_needs_view_permission(client, troubled):
    client.force_login(User.objects.create_user("clerk", password="pw", is_staff=True))
    assert client.get("/admin/jobs/job/overview/").status_code == 403


def test_replayed_dead_jobs_no_longer_count_as_the_dead_letter_queue(db, redis_client):
    dead = make_job(S.DEAD, finished_at=timezone.now())
    make_job(S.QUEUED, replay_of=dead)

    overview = jobs_overview()

    assert (overview.live_counts["dead"], overview.dead_letter_size) == (1, 0)
    assert "dead_letter_queue" not in alert_codes(overview)


@pytest.mark.worker
def test_a_waiting_queue_with_a_worker_is_a_backlog_not_unconsumed(db, redis_client, start_worker):
    make_job(S.QUEUED, queue="exports", ago=600)
    start_worker(queues="default")
    assert alert_codes(jobs_overview()) == ["queue_backlog", "queue_unconsumed"]  # nobody consumes exports

    start_worker(queues="exports", name="exports-worker")

    assert alert_codes(jobs_overview()) == ["queue_backlog"]


def test_workers_that_cannot_reach_the_database_raise_an_alert(db, redis_client, settings):
    from jobs.foundation.dbresilience import report_database_failure

    report_database_failure(OperationalError("connection refused"), hostname="default@box")

    (alert,) = jobs_overview().alerts
    assert alert.code == "workers_database_unreachable"
    assert "default@box:" in alert.message and "OperationalError: connection refused" in alert.message
    settings.JOBS_WORKER_DB_REPORT_SECONDS = 0  # a report this old no longer counts (the process may be gone)
    assert jobs_overview().alerts == []


def test_whoever_may_view_jobs_may_open_the_dead_letter_queue_the_overview_links_to(client, troubled):
    from django.contrib.auth.models import Permission

    viewer = User.objects.create_user("viewer", password="pw", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_job"))
    client.force_login(viewer)

    overview = client.get("/admin/jobs/job/overview/").content.decode()
    assert 'href="/admin/jobs/deadjob/"' in overview
    assert client.get("/admin/jobs/deadjob/").status_code == 200


def test_running_jobs_past_their_lease_raise_an_alert(db, redis_client, settings):
    now = timezone.now()
    ten_minutes_ago = now - timedelta(minutes=10)
    make_job(S.RUNNING, started_at=ten_minutes_ago, lease_expires_at=now - timedelta(seconds=300))
    make_job(S.RUNNING, started_at=ten_minutes_ago, lease_expires_at=now - timedelta(seconds=90))
    make_job(S.RUNNING, started_at=now, lease_expires_at=now - timedelta(seconds=5))  # the reaper's next tick
    make_job(S.RUNNING, started_at=ten_minutes_ago, lease_expires_at=now + timedelta(seconds=20))  # renewed: alive
    make_job(S.SUCCEEDED, finished_at=now, lease_expires_at=now - timedelta(hours=1))  # ended: its lease is history

    (alert,) = jobs_overview().alerts

    assert alert.code == "leases_expired"
    assert alert.message.startswith("2 running job(s) are past their lease (the oldest by 30")
    assert "alert above 60 s" in alert.message and "reaper" in alert.message
    settings.JOBS_ALERT_LEASE_OVERDUE_SECONDS = 0
    assert jobs_overview().alerts == []


def test_jobs_past_their_lease_are_read_through_an_index(db):
    from django.db import connection

    from jobs.ops.selectors import jobs_past_their_lease

    if connection.vendor != "postgresql":
        pytest.skip("the index this checks is in PostgreSQL's plan; SQLite's planner and indexes differ")
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")  # a near-empty test table would be scanned anyway
    plan = jobs_past_their_lease(overdue_seconds=60).explain()

    assert "Seq Scan" not in plan and "jobs_running_idx" in plan, plan
