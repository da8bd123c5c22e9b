"""POST /api/jobs with run_at / delay_seconds, and the due time in what GET /api/jobs shows and filters."""

from datetime import UTC, timedelta
from datetime import timezone as dt_timezone

import pytest
from django.utils import timezone

from jobs.models import Job
from tests.jobs.test_api import assert_error, bearer, post_job

ECHO = {"type": "tests.api_echo", "payload": {"email": "a@b.c"}}


@pytest.mark.django_db
def test_run_at_in_rfc_3339_stores_the_due_time_and_publishes_nothing(
    client, alice, echo_type, redis_client, django_capture_on_commit_callbacks
):
    due = (timezone.now() + timedelta(days=30)).replace(microsecond=0)
    sent = due.astimezone(dt_timezone(timedelta(hours=2))).isoformat()  # e.g. 2027-01-06T09:00:00+02:00
    with django_capture_on_commit_callbacks(execute=True):
        response = post_job(client, {**ECHO, "run_at": sent}, **bearer(alice))

    assert response.status_code == 202, response.content
    body = response.json()
    assert body["status"] == "queued" and body["run_at"] == due.astimezone(UTC).isoformat()
    job = Job.objects.get(id=body["id"])
    assert job.run_at == due and job.published_at is None
    assert redis_client.llen("default") == 0


@pytest.mark.django_db
def test_delay_seconds_counts_from_now(client, alice, echo_type):
    before = timezone.now()
    response = post_job(client, {**ECHO, "delay_seconds": 90.5}, **bearer(alice))

    assert response.status_code == 202, response.content
    run_at = Job.objects.get(id=response.json()["id"]).run_at
    assert before + timedelta(seconds=90.5) <= run_at <= timezone.now() + timedelta(seconds=90.5)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("extra", "field", "says"),
    [
        ({"run_at": "2030-01-31T09:00:00"}, "run_at", "with an offset"),
        ({"run_at": "tomorrow"}, "run_at", "RFC 3339"),
        ({"run_at": 1893456000}, "run_at", "RFC 3339"),
        ({"run_at": "2030-06-30T23:59:60Z"}, "run_at", "RFC 3339"),  # a leap second: no datetime holds it
        ({"delay_seconds": -1}, "delay_seconds", ">= 0"),
        ({"delay_seconds": "60"}, "delay_seconds", ">= 0"),
        ({"delay_seconds": True}, "delay_seconds", ">= 0"),
        ({"delay_seconds": None}, "delay_seconds", ">= 0"),
        ({"run_at": None}, "run_at", "RFC 3339"),
        ({"run_at": "2030-01-31T09:00:00Z", "delay_seconds": 5}, "run_at", "not both"),
        ({"delay_seconds": 400 * 86400}, "run_at", "more than 365 days ahead"),
    ],
)
def test_bad_due_times_are_refused_with_a_field_error(client, alice, echo_type, extra, field, says):
    error = assert_error(post_job(client, {**ECHO, **extra}, **bearer(alice)), 422, "invalid_schedule")

    assert error["detail"]["errors"][0]["field"] == field and says in error["message"], error
    assert not Job.objects.exists()


@pytest.mark.django_db
def test_run_at_beyond_the_horizon_is_refused(client, alice, echo_type, settings):
    settings.JOBS_SCHEDULE_HORIZON_DAYS = 7
    far = (timezone.now() + timedelta(days=8)).isoformat()
    error = assert_error(post_job(client, {**ECHO, "run_at": far}, **bearer(alice)), 422, "invalid_schedule")

    assert "more than 7 days ahead" in error["message"] and error["detail"]["horizon_days"] == 7


@pytest.mark.django_db
def test_the_job_list_shows_and_filters_the_due_time(client, alice, echo_type):
    later = post_job(client, {**ECHO, "delay_seconds": 600}, **bearer(alice)).json()
    past = post_job(client, {**ECHO, "run_at": "2020-01-01T00:00:00Z"}, **bearer(alice)).json()
    now = post_job(client, ECHO, **bearer(alice)).json()
    headers = bearer(alice)

    def ids(query: str) -> list[str]:
        response = client.get(f"/api/jobs?{query}", **headers)
        assert response.status_code == 200, response.content
        return [job["id"] for job in response.json()["results"]]

    assert ids("due=later") == [later["id"]]
    assert set(ids("due=scheduled")) == {later["id"], past["id"]}
    assert set(ids("")) == {later["id"], past["id"], now["id"]}
    assert now["run_at"] is None and past["run_at"] == "2020-01-01T00:00:00+00:00"
    assert_error(client.get("/api/jobs?due=soon", **headers), 422, "invalid_parameter")
