"""The JSON API: contract paths, auth, idempotency, errors that are always specific JSON."""

import json

import pytest
from django.test import Client

from jobs.models import ApiToken, Job
from jobs.services import job_enqueue
from jobs.tokens import api_token_create, api_token_revoke
from tests.processes import wait_for

S = Job.Status


@pytest.fixture
def alice(django_user_model):
    return django_user_model.objects.create_user("alice", password="pw")


@pytest.fixture
def staff(django_user_model):
    return django_user_model.objects.create_user("ops", password="pw", is_staff=True)


def bearer(user) -> dict:
    _, plaintext = api_token_create(user=user, name="test")
    return {"HTTP_AUTHORIZATION": f"Bearer {plaintext}"}


def post_job(client, body, **headers):
    return client.post("/api/jobs", data=json.dumps(body) if not isinstance(body, str) else body,
                       content_type="application/json", **headers)  # fmt: skip


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    error = response.json()["error"]
    assert error["code"] == code and error["message"] and isinstance(error["retryable"], bool)
    return error


@pytest.mark.django_db
def test_staff_enqueues_the_canary_and_gets_202_with_location(client, staff, redis_client):
    response = post_job(client, {"type": "jobs.canary", "payload": {"seconds": 1}}, **bearer(staff),
                        HTTP_X_REQUEST_ID="req-42")  # fmt: skip

    assert response.status_code == 202
    body = response.json()
    assert response["Location"] == f"/api/jobs/{body['id']}"
    assert response["X-Request-ID"] == "req-42"
    job = Job.objects.get(id=body["id"])
    assert (job.owner, job.correlation_id, job.payload) == (staff, "req-42", {"seconds": 1, "fail_first": 0, "message": "canary"})
    assert body["status"] == "queued" and body["progress"] == {"percent": 0, "message": ""}


@pytest.mark.django_db
def test_idempotency_key_replays_and_refuses_a_different_payload(client, staff, redis_client):
    auth = bearer(staff)
    first = post_job(client, {"type": "jobs.canary", "payload": {"seconds": 1}}, HTTP_IDEMPOTENCY_KEY="k-1", **auth)
    again = post_job(client, {"type": "jobs.canary", "payload": {"seconds": 1}}, HTTP_IDEMPOTENCY_KEY="k-1", **auth)
    other = post_job(client, {"type": "jobs.canary", "payload": {"seconds": 2}}, HTTP_IDEMPOTENCY_KEY="k-1", **auth)

    assert first.json()["id"] == again.json()["id"]
    assert (first["Idempotent-Replayed"], again["Idempotent-Replayed"]) == ("false", "true")
    assert_error(other, 422, "idempotency_key_conflict")
    assert Job.objects.count() == 1


@pytest.mark.django_db
def test_idempotency_keys_are_scoped_per_caller(client, staff, django_user_model, redis_client):
    other_staff = django_user_model.objects.create_user("ops2", password="pw", is_staff=True)
    a = post_job(client, {"type": "jobs.canary"}, HTTP_IDEMPOTENCY_KEY="same", **bearer(staff))
    b = post_job(client, {"type": "jobs.canary"}, HTTP_IDEMPOTENCY_KEY="same", **bearer(other_staff))
    assert a.json()["id"] != b.json()["id"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ("{not json", 400, "malformed_json"),
        ("[1, 2]", 422, "invalid_body"),
        ({"type": "jobs.nope"}, 422, "unknown_job_type"),
        ({"type": "tests.noop"}, 422, "unknown_job_type"),  # exists, but not enqueueable over the API
        ({"type": "jobs.canary", "payload": [1]}, 422, "invalid_payload"),
        ({"type": "jobs.canary", "payload": {"seconds": "ten"}}, 422, "invalid_payload"),
        ({"type": "jobs.canary", "payload": {"seconds": -1, "colour": "red"}}, 422, "invalid_payload"),
        ({"type": "jobs.canary", "extra": 1}, 422, "invalid_body"),
    ],
)
def test_bad_requests_get_specific_4xx_json(client, staff, body, status, code):
    error = assert_error(post_job(client, body, **bearer(staff)), status, code)
    if code == "invalid_payload" and isinstance(body["payload"], dict):
        fields = {item["field"] for item in error["detail"]["errors"]}
        assert fields == set(body["payload"]) and all(item["message"] for item in error["detail"]["errors"])


@pytest.mark.django_db
def test_wrong_content_type_is_415(client, staff):
    response = client.post("/api/jobs", data="type=jobs.canary", content_type="application/x-www-form-urlencoded", **bearer(staff))
    assert_error(response, 415, "unsupported_media_type")


@pytest.mark.django_db
def test_staff_only_type_is_refused_for_others(client, alice):
    assert_error(post_job(client, {"type": "jobs.canary"}, **bearer(alice)), 403, "forbidden")


@pytest.mark.django_db
def test_switched_off_type_is_503_and_retryable(client, staff, settings):
    settings.JOBS_DISABLED_TYPES = ["jobs.canary"]
    error = assert_error(post_job(client, {"type": "jobs.canary"}, **bearer(staff)), 503, "job_type_disabled")
    assert error["retryable"] is True


@pytest.mark.django_db
def test_users_see_only_their_own_jobs(client, alice, staff, django_user_model, redis_client):
    bob = django_user_model.objects.create_user("bob", password="pw")
    bobs = job_enqueue(job_type="tests.noop", owner=bob).job

    assert_error(client.get(f"/api/jobs/{bobs.id}", **bearer(alice)), 404, "job_not_found")
    assert client.get(f"/api/jobs/{bobs.id}", **bearer(bob)).json()["id"] == bobs.id
    assert client.get(f"/api/jobs/{bobs.id}", **bearer(staff)).status_code == 200


@pytest.mark.django_db
def test_list_filters_and_paginates(client, alice, redis_client):
    mine = [job_enqueue(job_type="tests.noop", owner=alice).job for _ in range(5)]
    Job.objects.filter(id=mine[0].id).update(status=S.FAILED)
    job_enqueue(job_type="tests.noop")  # someone else's
    auth = bearer(alice)

    page1 = client.get("/api/jobs", {"page_size": 2}, **auth).json()
    page3 = client.get("/api/jobs", {"page_size": 2, "page": 3}, **auth).json()
    failed = client.get("/api/jobs", {"status": "failed"}, **auth).json()

    assert page1["count"] == 5 and len(page1["results"]) == 2 and "page=2" in page1["next"] and page1["previous"] is None
    assert len(page3["results"]) == 1 and page3["next"] is None
    assert [job["id"] for job in failed["results"]] == [mine[0].id]
    error = assert_error(client.get("/api/jobs", {"status": "lost"}, **auth), 422, "invalid_parameter")
    assert "queued" in error["detail"]["allowed"]
    assert_error(client.get("/api/jobs", {"page_size": 1000}, **auth), 422, "invalid_parameter")
    assert_error(client.get("/api/jobs", {"page": "x"}, **auth), 422, "invalid_parameter")


@pytest.mark.django_db
def test_cancel_queued_job_and_refuse_finished_one(client, alice, redis_client):
    queued = job_enqueue(job_type="tests.noop", owner=alice).job
    finished = job_enqueue(job_type="tests.noop", owner=alice).job
    Job.objects.filter(id=finished.id).update(status=S.SUCCEEDED)
    auth = bearer(alice)

    response = client.post(f"/api/jobs/{queued.id}/cancel", **auth)
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    assert_error(client.post(f"/api/jobs/{finished.id}/cancel", **auth), 409, "illegal_transition")
    assert_error(client.get(f"/api/jobs/{queued.id}/cancel", **auth), 405, "method_not_allowed")


@pytest.mark.django_db
def test_authentication_is_required_and_tokens_can_be_revoked(client, alice):
    assert_error(client.get("/api/jobs"), 401, "unauthenticated")
    assert_error(client.get("/api/jobs", HTTP_AUTHORIZATION="Bearer nope"), 401, "invalid_token")
    assert_error(client.get("/api/jobs", HTTP_AUTHORIZATION="Basic abc"), 401, "unauthenticated")
    token, plaintext = api_token_create(user=alice, name="backend")
    assert client.get("/api/jobs", HTTP_AUTHORIZATION=f"Bearer {plaintext}").status_code == 200
    assert ApiToken.objects.get(pk=token.pk).last_used_at is not None
    assert plaintext not in ApiToken.objects.filter(pk=token.pk).values_list("token_hash", flat=True)[0]

    api_token_revoke(token=token)

    assert_error(client.get("/api/jobs", HTTP_AUTHORIZATION=f"Bearer {plaintext}"), 401, "invalid_token")


@pytest.mark.django_db
def test_session_callers_need_the_csrf_token_for_posts(staff, redis_client):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(staff)
    body = json.dumps({"type": "jobs.canary"})

    refused = browser.post("/api/jobs", data=body, content_type="application/json")
    browser.get("/api/docs")  # sets the csrftoken cookie
    accepted = browser.post("/api/jobs", data=body, content_type="application/json",
                            HTTP_X_CSRFTOKEN=browser.cookies["csrftoken"].value)  # fmt: skip

    assert_error(refused, 403, "csrf_failed")
    assert accepted.status_code == 202
    assert browser.get("/api/jobs").status_code == 200  # reads need no token


@pytest.mark.django_db
def test_openapi_documents_the_contract(client):
    document = client.get("/api/openapi.json").json()

    assert document["openapi"].startswith("3.1")
    assert {"/jobs", "/jobs/{job_id}", "/jobs/{job_id}/cancel", "/cron/{name}"} <= set(document["paths"])
    variants = document["paths"]["/jobs"]["post"]["requestBody"]["content"]["application/json"]["schema"]["oneOf"]
    canary = next(v for v in variants if v["title"] == "jobs.canary")
    assert canary["properties"]["payload"]["properties"]["seconds"]["maximum"] == 600
    assert "tests.noop" not in {v["title"] for v in variants}
    assert client.get("/api/docs").status_code == 200


@pytest.mark.worker
def test_frontend_polls_a_job_to_success(client, staff, start_worker):
    start_worker(queues="default")
    auth = bearer(staff)
    location = post_job(client, {"type": "jobs.canary", "payload": {"seconds": 0.5, "fail_first": 1}}, **auth)["Location"]

    done = wait_for(lambda: (body := client.get(location, **auth).json())["status"] == "succeeded" and body,
                    timeout=60, interval=0.2, message="the canary to succeed")  # fmt: skip

    assert done["progress"]["percent"] == 100 and done["result"] == {"message": "canary", "attempts": 2}
    assert [a["outcome"] for a in done["attempts"]] == ["retry", "succeeded"]
    assert done["attempts"][0]["error"]["code"] == "transient_error"


@pytest.mark.django_db
def test_create_api_token_command_prints_a_working_token(client, alice, capsys):
    from django.core.management import call_command

    call_command("create_api_token", "alice", "--name", "storefront backend")
    plaintext = capsys.readouterr().out.strip()

    assert plaintext.startswith("jpt_")
    assert client.get("/api/jobs", HTTP_AUTHORIZATION=f"Bearer {plaintext}").status_code == 200
    assert ApiToken.objects.get(user=alice).name == "storefront backend"
