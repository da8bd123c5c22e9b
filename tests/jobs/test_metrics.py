"""Metrics recorded in this process and the web's /metrics endpoint (its auth, its scrape-time gauges)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from jobs.coordination.ratelimit import RateLimiter
from jobs.delivery import schedules
from jobs.delivery.enqueue import job_enqueue
from jobs.delivery.relay import job_relay_unpublished
from jobs.delivery.schedules import schedule_trigger
from jobs.foundation import metrics
from jobs.models import Job
from jobs.ops.metrics_scrape import registry_for_scrape
from jobs.tasks import ping
from tests.jobs.metrics_helpers import free_port
from tests.jobs.metrics_helpers import value as parse_value

TOKEN = "metrics-token-for-tests"


def current(name: str, **labels: str) -> float:
    """A sample of this process's service (the multiprocess directory), 0 when absent."""
    from prometheus_client import generate_latest

    text = generate_latest(registry_for_scrape(with_overview=False)).decode()
    return parse_value(text, name, **labels) or 0.0


@pytest.fixture
def token(settings):
    settings.METRICS_TOKEN = TOKEN
    return TOKEN


def test_metrics_are_refused_until_a_token_is_configured(client, db, settings):
    settings.METRICS_TOKEN = ""
    response = client.get("/metrics")
    assert response.status_code == 503
    assert b"METRICS_TOKEN" in response.content


def test_metrics_need_the_bearer_token(client, db, token):
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION=TOKEN).status_code == 401
    assert client.post("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 405


def test_scrape_reports_overview_gauges(client, db, redis_client, token):
    with_type = job_enqueue(job_type="tests.noop").job
    Job.objects.filter(id=with_type.id).update(enqueued_at=timezone.now() - timedelta(seconds=90))
    dead = job_enqueue(job_type="tests.noop").job
    Job.objects.filter(id=dead.id).update(status=Job.Status.DEAD, finished_at=timezone.now())

    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    text = response.content.decode()
    assert parse_value(text, "jobs_database_up") == 1
    assert parse_value(text, "jobs_broker_up") == 1
    assert parse_value(text, "jobs_current", status="queued") == 1
    assert parse_value(text, "jobs_current", status="dead") == 1
    assert parse_value(text, "jobs_dead_letter_queue_size") == 1
    assert parse_value(text, "jobs_queue_due", queue="default") == 1
    assert parse_value(text, "jobs_queue_oldest_due_age_seconds", queue="default") >= 90
    assert parse_value(text, "jobs_queue_due", queue="emails") == 0
    # The test's transaction never commits, so nothing was published: the list is there, empty.
    assert parse_value(text, "jobs_queue_broker_depth", queue="default") == 0
    assert parse_value(text, "jobs_metrics_overview_seconds") < 5


def test_scrape_says_the_broker_is_down_instead_of_failing(client, db, token, settings):
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{free_port()}/0"
    text = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").content.decode()
    assert parse_value(text, "jobs_broker_up") == 0
    assert parse_value(text, "jobs_database_up") == 1


def test_enqueued_counts_only_committed_jobs(transactional_db, redis_client):
    from django.db import transaction

    before = current("jobs_enqueued_total", type="tests.noop", queue="default")
    with pytest.raises(RuntimeError), transaction.atomic():
        job_enqueue(job_type="tests.noop")
        raise RuntimeError("roll back")
    assert current("jobs_enqueued_total", type="tests.noop", queue="default") == before
    job_enqueue(job_type="tests.noop")
    assert current("jobs_enqueued_total", type="tests.noop", queue="default") == before + 1


def test_metrics_switched_off_record_nothing(transactional_db, redis_client, settings):
    settings.JOBS_METRICS_ENABLED = False
    before = current("jobs_enqueued_total", type="tests.noop", queue="default")
    job_enqueue(job_type="tests.noop")
    assert current("jobs_enqueued_total", type="tests.noop", queue="default") == before


def test_api_requests_are_counted_by_route_pattern_not_path(client, db):
    route = "/api/jobs/<str:job_id>"
    before = current("jobs_http_requests_total", route=route, method="GET", status="401")
    timed = current("jobs_http_request_duration_seconds_count", route=route, method="GET")
    client.get("/api/jobs/abc")
    client.get("/api/jobs/def")
    client.get("/healthz")
    assert current("jobs_http_requests_total", route=route, method="GET", status="401") == before + 2
    assert current("jobs_http_request_duration_seconds_count", route=route, method="GET") == timed + 2
    assert current("jobs_http_requests_total", route="/healthz", method="GET", status="200") == 0


def test_schedule_window_claims_and_skips(db, redis_client):
    claimed = current("jobs_schedule_window_claims_total", schedule="jobs.canary", result="claimed")
    skipped = current("jobs_schedule_window_claims_total", schedule="jobs.canary", result="already_fired")
    schedule_trigger(name="jobs.canary")
    schedule_trigger(name="jobs.canary")
    assert current("jobs_schedule_window_claims_total", schedule="jobs.canary", result="claimed") == claimed + 1
    assert current("jobs_schedule_window_claims_total", schedule="jobs.canary", result="already_fired") == skipped + 1


def test_a_task_beat_sent_marks_its_schedule_alive():
    ping.apply(headers={"periodic_task_name": "jobs.relay_unpublished"})
    fired = current("jobs_schedule_last_fired_timestamp_seconds", schedule="jobs.relay_unpublished")
    assert fired == pytest.approx(timezone.now().timestamp(), abs=5)


def test_canary_schedule_is_declared_and_switchable():
    canary = schedules.declared()["jobs.canary"]
    assert canary.job_type == "jobs.canary"
    assert canary.when == 300.0


def test_rate_limiter_waits_refusals_and_pauses(redis_client):
    # One slot a second: the second acquire waits for it however long this process is descheduled in between
    # (up to the second).
    limiter = RateLimiter(name="metrics-test", limit=1, period=1)
    waits = current("jobs_rate_limiter_waits_total", limiter="metrics-test")
    limited = current("jobs_rate_limiter_limited_total", limiter="metrics-test")
    pauses = current("jobs_rate_limiter_pauses_total", limiter="metrics-test")
    waited = current("jobs_rate_limiter_wait_seconds_total", limiter="metrics-test")
    limiter.acquire(max_wait=2)
    limiter.acquire(max_wait=2)  # sleeps for the second slot
    with pytest.raises(Exception, match="no free slot"):
        limiter.acquire(max_wait=0)
    limiter.pause_for(0.1)
    assert current("jobs_rate_limiter_waits_total", limiter="metrics-test") == waits + 1
    # The one wait: until the first slot ages out of the 1 s window, so more than nothing and at most 1 s.
    assert 0 < current("jobs_rate_limiter_wait_seconds_total", limiter="metrics-test") - waited <= 1
    assert current("jobs_rate_limiter_limited_total", limiter="metrics-test") == limited + 1
    assert current("jobs_rate_limiter_pauses_total", limiter="metrics-test") == pauses + 1


def test_relay_counts_what_it_published(transactional_db, redis_client):
    before = current("jobs_relay_published_total", kind="unpublished")
    job = job_enqueue(job_type="tests.noop").job
    Job.objects.filter(id=job.id).update(published_at=None, updated_at=timezone.now() - timedelta(minutes=5))
    assert job_relay_unpublished() == 1
    assert current("jobs_relay_published_total", kind="unpublished") == before + 1


def test_attempt_outcomes_are_exported_with_issue_names(db):
    job = Job(type="tests.metrics", queue="default", started_at=timezone.now() - timedelta(seconds=2))
    finished_at = job.started_at + timedelta(seconds=2)  # each attempt ran exactly 2 s
    retried = current("job_attempts_total", type="tests.metrics", outcome="retried")
    skips = current("jobs_singleton_skips_total", type="tests.metrics")
    within = {le: current("job_run_seconds_bucket", type="tests.metrics", le=le) for le in ("1.0", "2.5")}
    metrics.attempt_finished(job=job, outcome="retry", finished_at=finished_at)
    metrics.attempt_finished(job=job, outcome="skipped", finished_at=finished_at)
    assert current("job_attempts_total", type="tests.metrics", outcome="retried") == retried + 1
    assert current("jobs_singleton_skips_total", type="tests.metrics") == skips + 1
    assert current("job_run_seconds_bucket", type="tests.metrics", le="2.5") == within["2.5"] + 2
    assert current("job_run_seconds_bucket", type="tests.metrics", le="1.0") == within["1.0"]


@pytest.mark.parametrize("scheme", ["bearer", "BEARER", "Bearer", "bEaReR"])
def test_metrics_read_the_bearer_scheme_in_any_case_as_the_api_does(client, db, token, scheme):
    # RFC 9110: the auth scheme is case-insensitive; the API took "bearer", /metrics answered 401.
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"{scheme} {TOKEN}").status_code == 200
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"{scheme}  {TOKEN} ").status_code == 200
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"{scheme} {TOKEN}x").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Basic {TOKEN}").status_code == 401
