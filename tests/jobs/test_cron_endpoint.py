"""POST /api/cron/<name>: secret checked in constant time, rate limited, same window lock as beat."""

import pytest

from jobs.delivery import schedules
from jobs.delivery.schedules import declare
from jobs.models import Job

SECRET = "s3cret-cron-token"


@pytest.fixture
def cron_schedule(monkeypatch, settings, redis_client):
    settings.CRON_SECRET = SECRET
    monkeypatch.setattr(schedules, "_declared", {})
    declare("reports.hourly", 3600.0, job_type="tests.noop", payload={"report": "hourly"})
    declare("housekeeping", 30.0, task="jobs.ping")


def call(client, name="reports.hourly", secret=SECRET):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {secret}"} if secret is not None else {}
    return client.post(f"/api/cron/{name}", **headers)


@pytest.mark.django_db
@pytest.mark.parametrize("secret", [None, "wrong", "", SECRET + "x"])
def test_missing_or_wrong_secret_is_401(client, cron_schedule, secret):
    response = call(client, secret=secret)
    assert response.status_code == 401 and response.json()["error"]["code"] == "unauthenticated"
    assert not Job.objects.exists()


@pytest.mark.django_db
def test_right_secret_enqueues_once_per_window(client, cron_schedule):
    first = call(client)
    second = call(client)

    assert first.status_code == 202
    job = Job.objects.get(id=first.json()["enqueued"])
    assert (job.type, job.payload) == ("tests.noop", {"report": "hourly"})
    assert second.status_code == 200 and second.json() == {
        "schedule": "reports.hourly",
        "skipped": "already fired in this window",
    }
    assert Job.objects.count() == 1


@pytest.mark.django_db
def test_unknown_or_non_job_schedule_is_404(client, cron_schedule):
    for name in ("nope", "housekeeping"):
        response = call(client, name=name)
        assert response.status_code == 404 and response.json()["error"]["detail"]["schedules"] == ["reports.hourly"]


@pytest.mark.django_db
def test_endpoint_is_rate_limited(client, cron_schedule, settings):
    settings.JOBS_RATE_LIMITS = {**settings.JOBS_RATE_LIMITS, "cron-endpoint": {"limit": 2, "period": 60}}
    statuses = [call(client, name="nope").status_code for _ in range(3)]
    limited = call(client)

    assert statuses == [404, 404, 429]
    assert limited.status_code == 429 and int(limited["Retry-After"]) >= 1
    assert limited.json()["error"]["retryable"] is True


@pytest.mark.django_db
def test_endpoint_is_off_without_a_secret(client, cron_schedule, settings):
    settings.CRON_SECRET = ""
    assert call(client, secret="").status_code == 503


@pytest.mark.django_db
def test_a_schedule_paused_in_the_admin_is_not_fired_by_the_endpoint(client, cron_schedule):
    from django_celery_beat.models import PeriodicTask

    from jobs.delivery.schedules import schedules_sync

    schedules_sync()
    PeriodicTask.objects.filter(name="reports.hourly").update(enabled=False)

    response = call(client)

    assert response.status_code == 200 and response.json() == {"schedule": "reports.hourly",
                                                                "skipped": "paused in the admin"}  # fmt: skip
    assert not Job.objects.exists()


@pytest.mark.django_db
def test_window_follows_the_frequency_an_operator_set_in_the_admin(client, cron_schedule, redis_client):
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    from jobs.delivery.schedules import schedules_sync

    schedules_sync()  # declared hourly: a 30-minute window
    every_minute, _ = IntervalSchedule.objects.get_or_create(every=60, period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.filter(name="reports.hourly").update(interval=every_minute)

    assert call(client).status_code == 202
    # The window lock is half the new gap, not the 30 minutes baked into the row's arguments.
    ttl_ms = max(redis_client.pttl(key) for key in redis_client.scan_iter("*schedule:reports.hourly*"))
    assert 0 < ttl_ms <= 30_000
