"""The JSON API: contract paths, idempotency, visibility, and errors that are always specific JSON."""

import json
import logging
from datetime import timedelta

import pytest
from django.utils import timezone

from jobs.api.tokens import api_token_create
from jobs.core import registry
from jobs.core.permissions import UNEXPECTED_ERROR_MESSAGE, error_code_is_unexpected
from jobs.delivery.enqueue import job_enqueue
from jobs.models import Job, JobAttempt
from tests.processes import wait_for

S = Job.Status
# Every API-enqueueable type declared in the project (other apps add theirs): what staff are offered.
API_TYPES = [spec.name for spec in registry.all_types() if spec.api_schema is not None]


def bearer(user) -> dict:
    _, plaintext = api_token_create(user=user, name="test")
    return {"HTTP_AUTHORIZATION": f"Bearer {plaintext}"}


def post_job(client, body, **headers):
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return client.post("/api/jobs", data=data, content_type="application/json", **headers)


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    error = response.json()["error"]
    assert error["code"] == code and error["message"] and isinstance(error["retryable"], bool), error
    assert isinstance(error["detail"], dict)
    return error


# ---------------------------------------------------------------------------
# POST /api/jobs
# ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_enqueue_answers_202_with_location_and_publishes_after_commit(
    client, staff, redis_client, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = post_job(client, {"type": "jobs.canary", "payload": {"seconds": 1}}, **bearer(staff),
                            HTTP_X_REQUEST_ID="req-42")  # fmt: skip

    assert response.status_code == 202
    body = response.json()
    assert response["Location"] == f"/api/jobs/{body['id']}"
    assert response["X-Request-ID"] == "req-42"
    assert "Idempotent-Replayed" not in response
    job = Job.objects.get(id=body["id"])
    assert (job.owner, job.correlation_id) == (staff, "req-42")
    assert job.payload == {"seconds": 1, "fail_first": 0, "message": "canary"}  # schema defaults filled
    assert body["status"] == "queued" and body["progress"] == {"percent": 0, "message": ""}
    assert body["attempts"] == [] and body["error"] is None and body["correlation_id"] == "req-42"
    assert job.published_at is not None and redis_client.llen("default") == 1  # the message is on the broker


@pytest.mark.django_db
def test_non_staff_enqueue_an_open_type_and_payload_defaults_apply(client, alice, echo_type):
    response = post_job(client, {"type": "tests.api_echo", "payload": {"email": "a@b.c"}}, **bearer(alice))

    assert response.status_code == 202, response.content
    assert Job.objects.get(id=response.json()["id"]).payload == {"email": "a@b.c", "count": 1}


@pytest.mark.django_db
def test_idempotency_key_replays_the_original_job_and_refuses_a_different_payload(client, staff):
    auth = bearer(staff)
    first = post_job(client, {"type": "jobs.canary", "payload": {"seconds": 1}}, HTTP_IDEMPOTENCY_KEY="k-1", **auth)
    again = post_job(client, {"type": "jobs.canary", "payload": {"seconds": 1}}, HTTP_IDEMPOTENCY_KEY="k-1", **auth)
    # The draft's structured-field spelling of the same key is the same key.
    quoted = post_job(client, {"type": "jobs.canary", "payload": {"seconds": 1}}, HTTP_IDEMPOTENCY_KEY='"k-1"', **auth)
    other = post_job(client, {"type": "jobs.canary", "payload": {"seconds": 2}}, HTTP_IDEMPOTENCY_KEY="k-1", **auth)

    assert first.status_code == again.status_code == quoted.status_code == 202
    assert first.json()["id"] == again.json()["id"] == quoted.json()["id"]
    assert again["Location"] == first["Location"]
    assert (first["Idempotent-Replayed"], again["Idempotent-Replayed"]) == ("false", "true")
    error = assert_error(other, 422, "idempotency_key_conflict")
    assert error["detail"]["job_id"] == first.json()["id"]
    assert Job.objects.count() == 1


@pytest.mark.django_db
def test_an_idempotency_key_reused_for_another_type_is_a_conflict(client, staff, echo_type):
    auth = bearer(staff)
    first = post_job(client, {"type": "jobs.canary"}, HTTP_IDEMPOTENCY_KEY="k-2", **auth)
    echo = {"type": "tests.api_echo", "payload": {"email": "a@b.c"}}
    other = post_job(client, echo, HTTP_IDEMPOTENCY_KEY="k-2", **auth)

    assert first.status_code == 202
    assert assert_error(other, 422, "idempotency_key_conflict")["detail"]["job_id"] == first.json()["id"]


@pytest.mark.django_db
def test_idempotency_keys_are_scoped_per_caller(client, staff, django_user_model):
    other_staff = django_user_model.objects.create_user("ops2", password="pw", is_staff=True)
    other_staff.user_permissions.set(staff.user_permissions.all())
    a = post_job(client, {"type": "jobs.canary"}, HTTP_IDEMPOTENCY_KEY="same", **bearer(staff))
    b = post_job(client, {"type": "jobs.canary", "payload": {"seconds": 3}}, HTTP_IDEMPOTENCY_KEY="same",
                 **bearer(other_staff))  # fmt: skip

    assert a.status_code == b.status_code == 202
    assert a.json()["id"] != b.json()["id"]


@pytest.mark.django_db
@pytest.mark.parametrize("key", ["", "x" * 201, "caf\u00e9", "tab\there"])
def test_malformed_idempotency_key_is_422(client, staff, key):
    error = assert_error(post_job(client, {"type": "jobs.canary"}, HTTP_IDEMPOTENCY_KEY=key, **bearer(staff)), 422,
                         "invalid_idempotency_key")  # fmt: skip
    assert error["detail"]["header"] == "Idempotency-Key"
    assert not Job.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ("{not json", 400, "malformed_json"),
        ("", 400, "malformed_json"),
        (b"\xff\xfe", 400, "malformed_json"),
        ('{"type": "jobs.canary", "payload": {"seconds": NaN}}', 400, "malformed_json"),
        ('{"type": "jobs.canary", "payload": {"seconds": 1e999}}', 400, "malformed_json"),
        ("[" * 100_000, 400, "malformed_json"),
        ("[1, 2]", 422, "invalid_body"),
        ('"jobs.canary"', 422, "invalid_body"),
        ({}, 422, "unknown_job_type"),
        ({"type": "jobs.nope"}, 422, "unknown_job_type"),
        ({"type": ["jobs.canary"]}, 422, "unknown_job_type"),
        ({"type": "tests.noop"}, 422, "unknown_job_type"),  # registered, but not enqueueable over the API
        ({"type": "jobs.canary", "extra": 1}, 422, "invalid_body"),
        ({"type": "jobs.canary", "payload": {"message": "nul \u0000 byte"}}, 422, "invalid_body"),
        ({"type": "jobs.canary", "payload": [1]}, 422, "invalid_payload"),
        ({"type": "jobs.canary", "payload": None}, 422, "invalid_payload"),
        ({"type": "jobs.canary", "payload": {"seconds": "ten"}}, 422, "invalid_payload"),
        ({"type": "jobs.canary", "payload": {"seconds": True}}, 422, "invalid_payload"),
        ({"type": "jobs.canary", "payload": {"fail_first": 1.5}}, 422, "invalid_payload"),
        ({"type": "jobs.canary", "payload": {"seconds": -1, "colour": "red"}}, 422, "invalid_payload"),
        ({"type": "jobs.canary", "payload": {"seconds": 601, "message": "x" * 201}}, 422, "invalid_payload"),
    ],
)
def test_bad_requests_get_specific_4xx_json_never_500(client, staff, body, status, code):
    error = assert_error(post_job(client, body, **bearer(staff)), status, code)

    if code == "invalid_payload" and isinstance(body["payload"], dict):
        # Each offending field is named, with what was expected.
        errors = error["detail"]["errors"]
        assert {item["field"] for item in errors} == set(body["payload"])
        assert all(item["message"].startswith(("expected", "unexpected")) for item in errors)
    if code == "unknown_job_type":
        assert error["detail"]["allowed"] == API_TYPES and "tests.noop" not in error["detail"]["allowed"]
    assert not Job.objects.exists()


@pytest.mark.django_db
def test_payload_errors_name_the_field_and_what_was_expected(client, alice, echo_type):
    response = post_job(client, {"type": "tests.api_echo", "payload": {"count": 0, "tags": ["a", 2]}}, **bearer(alice))

    assert assert_error(response, 422, "invalid_payload")["detail"]["errors"] == [
        {"field": "email", "message": "this field is required"},
        {"field": "count", "message": "expected a value >= 1, got 0"},
        {"field": "tags[1]", "message": "expected string, got integer"},
    ]


@pytest.mark.django_db
def test_wrong_content_type_is_415(client, staff):
    response = client.post("/api/jobs", data="type=jobs.canary", content_type="application/x-www-form-urlencoded",
                           **bearer(staff))  # fmt: skip
    assert_error(response, 415, "unsupported_media_type")


@pytest.mark.django_db
def test_oversized_body_is_413(client, staff, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 100
    body = {"type": "jobs.canary", "payload": {"message": "x" * 200}}
    assert_error(post_job(client, body, **bearer(staff)), 413, "body_too_large")


@pytest.mark.django_db
def test_staff_only_type_is_refused_for_others_and_not_offered_to_them(client, alice, echo_type):
    assert_error(post_job(client, {"type": "jobs.canary"}, **bearer(alice)), 403, "forbidden")
    error = assert_error(post_job(client, {"type": "jobs.nope"}, **bearer(alice)), 422, "unknown_job_type")
    assert error["detail"]["allowed"] == ["tests.api_echo"]
    assert not Job.objects.exists()


@pytest.mark.django_db
def test_switched_off_type_is_503_retryable_with_retry_after(client, staff, settings):
    settings.JOBS_DISABLED_TYPES = ["jobs.canary"]
    response = post_job(client, {"type": "jobs.canary"}, **bearer(staff))

    assert assert_error(response, 503, "job_type_disabled")["retryable"] is True
    assert int(response["Retry-After"]) > 0


# ---------------------------------------------------------------------------
# GET /api/jobs/<id>
# ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_users_see_only_their_own_jobs_and_staff_see_all(client, alice, bob, staff):
    bobs = job_enqueue(job_type="tests.noop", owner=bob).job

    error = assert_error(client.get(f"/api/jobs/{bobs.id}", **bearer(alice)), 404, "job_not_found")
    assert bobs.id in error["message"]
    assert client.get(f"/api/jobs/{bobs.id}", **bearer(bob)).json()["id"] == bobs.id
    assert client.get(f"/api/jobs/{bobs.id}", **bearer(staff)).status_code == 200
    # Same answer as for an id that does not exist: nothing confirms another user's job exists.
    assert_error(client.get("/api/jobs/doesnotexist", **bearer(alice)), 404, "job_not_found")


@pytest.mark.django_db
@pytest.mark.parametrize("job_id", ["%00", "x" * 300, "a%20b", "%27%3B--"])
def test_odd_job_ids_are_404_not_500(client, alice, job_id):
    assert_error(client.get(f"/api/jobs/{job_id}", **bearer(alice)), 404, "job_not_found")


@pytest.mark.django_db
def test_job_detail_shows_attempts_error_result_link_and_tracebacks_only_to_staff(client, alice, staff):
    job = job_enqueue(job_type="tests.noop", owner=alice).job
    now = timezone.now()
    JobAttempt.objects.create(
        job=job, number=1, outcome=JobAttempt.Outcome.RETRY, started_at=now - timedelta(seconds=3),
        finished_at=now - timedelta(seconds=2), duration_ms=1000, error_code="transient_error",
        error_message="supplier timed out", error_traceback="Traceback: secret internals",
    )  # fmt: skip
    JobAttempt.objects.create(
        job=job, number=2, outcome=JobAttempt.Outcome.SUCCEEDED, started_at=now - timedelta(seconds=1),
        finished_at=now, duration_ms=900,
    )  # fmt: skip
    Job.objects.filter(id=job.id).update(status=S.SUCCEEDED, attempt=2, progress=100, finished_at=now,
                                         result={"rows": 3, "download_url": "/media/exports/x.csv"})  # fmt: skip

    mine = client.get(f"/api/jobs/{job.id}", **bearer(alice)).json()
    as_staff = client.get(f"/api/jobs/{job.id}", **bearer(staff)).json()

    assert mine["status"] == "succeeded" and mine["progress"]["percent"] == 100 and mine["error"] is None
    assert mine["result_url"] == "/media/exports/x.csv" and mine["result"]["rows"] == 3
    assert mine["finished_at"] and mine["created_at"] and mine["url"].endswith(f"/api/jobs/{job.id}")
    first, second = mine["attempts"]
    assert (first["number"], first["outcome"], first["duration_ms"]) == (1, "retry", 1000)
    assert (second["number"], second["outcome"], second["duration_ms"]) == (2, "succeeded", 900)
    assert (first["error_code"], first["error_message"]) == ("transient_error", "supplier timed out")
    assert second["error_code"] is None and "traceback" not in first
    assert "secret internals" not in json.dumps(mine)
    assert as_staff["attempts"][0]["traceback"] == "Traceback: secret internals"


@pytest.mark.django_db
def test_an_unexpected_errors_text_is_shown_only_to_operators(client, alice, staff):
    # A database error's text quotes SQL (issue 22: an export's filter leaked a PostgreSQL error through the
    # export and its job). Its owner reads the code and a fixed message; operators read the text, as in the admin.
    leaked = 'time zone displacement out of range: "9999-12-31T23:59:59-23:59" LINE 1: SELECT "sync_product"'
    job = job_enqueue(job_type="tests.noop", owner=alice).job
    now = timezone.now()
    JobAttempt.objects.create(job=job, number=1, outcome=JobAttempt.Outcome.RETRY, finished_at=now,
                              error_code="DataError", error_message=leaked)  # fmt: skip
    JobAttempt.objects.create(job=job, number=2, outcome=JobAttempt.Outcome.FAILED, finished_at=now,
                              error_code="permanent_error", error_message="the supplier refused product 7")  # fmt: skip
    Job.objects.filter(id=job.id).update(status=S.FAILED, attempt=2, finished_at=now, error_code="DataError",
                                         error_message=leaked)  # fmt: skip

    mine = client.get(f"/api/jobs/{job.id}", **bearer(alice)).json()
    listed = client.get("/api/jobs", **bearer(alice)).json()["results"][0]
    as_staff = client.get(f"/api/jobs/{job.id}", **bearer(staff)).json()

    for seen in (mine["error"], listed["error"]):
        assert seen == {"code": "DataError", "message": UNEXPECTED_ERROR_MESSAGE}
    assert [(a["error_code"], a["error_message"]) for a in mine["attempts"]] == [
        ("DataError", UNEXPECTED_ERROR_MESSAGE), ("permanent_error", "the supplier refused product 7")]  # fmt: skip
    assert "SELECT" not in json.dumps(mine) and "SELECT" not in json.dumps(listed)
    assert as_staff["error"]["message"] == leaked and as_staff["attempts"][0]["error_message"] == leaked


def test_every_declared_error_code_is_snake_case_so_unexpected_ones_are_told_apart():
    # error_code_is_unexpected reads an upper-case letter as an exception's class name: no declared code has one.
    from jobs.foundation.exceptions import JobsError

    def subclasses(cls):
        for sub in cls.__subclasses__():
            yield sub
            yield from subclasses(sub)

    declared = {sub.code for sub in subclasses(JobsError)} | {JobsError.code, "worker_lost", "time_limit_exceeded"}
    assert len(declared) > 10  # the domain apps' errors are loaded too (INSTALLED_APPS)
    assert [code for code in declared if error_code_is_unexpected(code)] == []
    assert error_code_is_unexpected("OperationalError") and error_code_is_unexpected("DataError")


@pytest.mark.django_db
def test_failed_job_shows_an_error_summary(client, alice):
    job = job_enqueue(job_type="tests.noop", owner=alice).job
    Job.objects.filter(id=job.id).update(status=S.DEAD, error_code="transient_error", error_message="gave up")

    body = client.get(f"/api/jobs/{job.id}", **bearer(alice)).json()

    assert body["status"] == "dead" and body["error"] == {"code": "transient_error", "message": "gave up"}
    assert body["result"] is None and body["result_url"] is None


# ---------------------------------------------------------------------------
# GET /api/jobs
# ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_list_is_newest_first_filtered_and_paginated(client, alice, bob):
    mine = [job_enqueue(job_type="tests.noop", owner=alice).job for _ in range(5)]
    for age, job in enumerate(reversed(mine)):  # distinct creation times: mine[-1] newest
        Job.objects.filter(id=job.id).update(created_at=timezone.now() - timedelta(minutes=age))
    Job.objects.filter(id=mine[0].id).update(status=S.FAILED)
    job_enqueue(job_type="tests.record", owner=alice)
    job_enqueue(job_type="tests.noop", owner=bob)
    auth = bearer(alice)

    page1 = client.get("/api/jobs", {"type": "tests.noop", "page_size": 2}, **auth).json()
    page2 = client.get(page1["next"], **auth).json()
    page3 = client.get(page2["next"], **auth).json()
    failed = client.get("/api/jobs", {"status": "failed"}, **auth).json()
    past_end = client.get("/api/jobs", {"page": 9}, **auth).json()

    assert page1["count"] == 5 and page1["previous"] is None and "type=tests.noop" in page1["next"]
    listed = [job["id"] for page in (page1, page2, page3) for job in page["results"]]
    assert listed == [job.id for job in reversed(mine)]
    assert page3["next"] is None and "page=2" in page3["previous"]
    assert "attempts" not in page1["results"][0]  # lists stay one query per page
    assert [job["id"] for job in failed["results"]] == [mine[0].id]
    assert past_end["results"] == [] and past_end["count"] == 6 and "page=1" in past_end["previous"]


@pytest.mark.django_db
def test_staff_list_everyone_or_one_owner_and_others_may_not(client, alice, bob, staff):
    job_enqueue(job_type="tests.noop", owner=alice)
    bobs = job_enqueue(job_type="tests.noop", owner=bob).job

    assert client.get("/api/jobs", **bearer(staff)).json()["count"] == 2
    only_bob = client.get("/api/jobs", {"owner": bob.pk}, **bearer(staff)).json()
    assert [job["id"] for job in only_bob["results"]] == [bobs.id]
    assert client.get("/api/jobs", {"owner": alice.pk}, **bearer(alice)).json()["count"] == 1
    assert_error(client.get("/api/jobs", {"owner": bob.pk}, **bearer(alice)), 403, "forbidden")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ({"status": "lost"}, "status"),
        ({"type": "nul\x00"}, "type"),
        ({"page": "x"}, "page"),
        ({"page": "0"}, "page"),
        ({"page_size": "1000"}, "page_size"),
        ({"page_size": "0"}, "page_size"),
        ({"owner": "me"}, "owner"),
    ],
)
def test_invalid_list_parameters_are_422_naming_the_parameter(client, alice, params, parameter):
    error = assert_error(client.get("/api/jobs", params, **bearer(alice)), 422, "invalid_parameter")
    assert error["detail"]["parameter"] == parameter and parameter in error["message"]
    if parameter == "status":
        assert error["detail"]["allowed"] == list(S.values)
    if parameter == "type":
        # Only the types alice may enqueue are named: internal type names stay with operators (issue 15).
        assert "jobs.canary" not in error["detail"]["allowed"] and "jobs.canary" not in error["message"]


# ---------------------------------------------------------------------------
# POST /api/jobs/<id>/cancel
# ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_cancel_a_queued_job_at_once(client, alice):
    queued = job_enqueue(job_type="tests.noop", owner=alice).job

    response = client.post(f"/api/jobs/{queued.id}/cancel", **bearer(alice))

    assert response.status_code == 200
    assert response.json()["status"] == "cancelled" and response.json()["finished_at"]
    assert Job.objects.get(id=queued.id).status == S.CANCELLED


@pytest.mark.django_db
def test_cancel_a_running_job_asks_it_to_stop(client, alice):
    running = job_enqueue(job_type="tests.noop", owner=alice).job
    Job.objects.filter(id=running.id).update(status=S.RUNNING, attempt=1, started_at=timezone.now())

    response = client.post(f"/api/jobs/{running.id}/cancel", **bearer(alice))

    assert response.status_code == 202
    assert (response.json()["status"], response.json()["cancel_requested"]) == ("running", True)


@pytest.mark.django_db
def test_cancel_refuses_finished_others_and_wrong_methods(client, alice, bob, staff):
    finished = job_enqueue(job_type="tests.noop", owner=alice).job
    Job.objects.filter(id=finished.id).update(status=S.SUCCEEDED)
    bobs = job_enqueue(job_type="tests.noop", owner=bob).job

    error = assert_error(client.post(f"/api/jobs/{finished.id}/cancel", **bearer(alice)), 409, "illegal_transition")
    assert error["detail"]["status"] == "succeeded"
    assert_error(client.post(f"/api/jobs/{bobs.id}/cancel", **bearer(alice)), 404, "job_not_found")
    response = client.get(f"/api/jobs/{finished.id}/cancel", **bearer(alice))
    assert_error(response, 405, "method_not_allowed")
    assert response["Allow"] == "POST"
    assert Job.objects.get(id=bobs.id).status == S.QUEUED
    assert client.post(f"/api/jobs/{bobs.id}/cancel", **bearer(staff)).status_code == 200


# ---------------------------------------------------------------------------
# Whatever happens, the answer is JSON
# ---------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/api/jobs/", "/api/jobs/abc/", "/api/jobs/abc/retry"])
def test_unknown_paths_under_jobs_are_json_404(client, alice, path):
    response = client.get(path, **bearer(alice))
    assert "trailing slash" in assert_error(response, 404, "not_found")["message"]
    assert response["X-Request-ID"]


@pytest.mark.django_db
def test_an_unexpected_failure_is_a_logged_json_500(client, alice, monkeypatch, caplog):
    def broken(**kwargs):
        raise RuntimeError("database on fire")

    monkeypatch.setattr("jobs.api.views.job_get_with_attempts_for", broken)
    with caplog.at_level(logging.ERROR, logger="jobs.api"):
        response = client.get("/api/jobs/abc", **bearer(alice))

    error = assert_error(response, 500, "internal_error")
    assert "on fire" not in error["message"] and error["retryable"] is True
    assert "database on fire" in caplog.text


@pytest.mark.worker
def test_frontend_polls_a_job_to_success(client, staff, start_worker):
    start_worker(queues="default")
    auth = bearer(staff)
    enqueued = post_job(client, {"type": "jobs.canary", "payload": {"seconds": 0.5, "fail_first": 1}}, **auth)
    assert enqueued.status_code == 202

    done = wait_for(lambda: (body := client.get(enqueued["Location"], **auth).json())["status"] == "succeeded" and body,
                    timeout=60, interval=0.2, message="the canary to succeed")  # fmt: skip

    assert done["progress"]["percent"] == 100 and done["result"] == {"message": "canary", "attempts": 2}
    assert [a["outcome"] for a in done["attempts"]] == ["retry", "succeeded"]
    assert done["attempts"][0]["error_code"] == "transient_error" and done["error"] is None
    assert done["started_at"] and done["finished_at"] and done["attempt"] == 2


@pytest.mark.django_db
def test_unknown_api_paths_answer_json_and_other_paths_html(client):
    api = client.get("/api/nope")
    page = client.get("/nope")

    assert api.status_code == 404 and api.json()["error"]["code"] == "not_found"
    assert page.status_code == 404 and "application/json" not in page["Content-Type"]
