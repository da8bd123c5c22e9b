"""POST /api/jobs/bulk: many jobs in one request and one transaction, a result per item in request order."""

import json
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from jobs.coordination.ratelimit import KEY_PREFIX
from jobs.models import Job, JobTypeSwitch
from tests.jobs.test_api import assert_error, bearer, post_job


def post_bulk(client, body, **headers):
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return client.post("/api/jobs/bulk", data=data, content_type="application/json", **headers)


@pytest.fixture(autouse=True)
def fresh_enqueue_limits(redis_client):
    for key in redis_client.scan_iter(f"{KEY_PREFIX}api-enqueue:*"):
        redis_client.delete(key)


@pytest.mark.django_db
def test_jobs_of_several_types_are_created_in_request_order_and_published_after_commit(
    client, staff, echo_type, redis_client, django_capture_on_commit_callbacks
):
    items = [{"type": "tests.api_echo", "payload": {"email": f"{n}@b.c"}} for n in range(3)]
    items.insert(1, {"type": "jobs.canary", "payload": {"seconds": 0}, "idempotency_key": "canary-1"})
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = post_bulk(client, {"jobs": items}, **bearer(staff), HTTP_X_REQUEST_ID="bulk-7")
        assert redis_client.llen("default") == 0  # nothing on the broker before the commit

    assert response.status_code == 200, response.content
    results = response.json()["results"]
    assert [(r["index"], r["outcome"], r["status"], r["job"]["type"]) for r in results] == [
        (0, "created", 202, "tests.api_echo"), (1, "created", 202, "jobs.canary"),
        (2, "created", 202, "tests.api_echo"), (3, "created", 202, "tests.api_echo"),
    ]  # fmt: skip
    jobs = {job.id: job for job in Job.objects.all()}
    assert [jobs[r["job"]["id"]].payload for r in results] == [
        {"email": "0@b.c", "count": 1},
        {"seconds": 0, "fail_first": 0, "message": "canary"},
        {"email": "1@b.c", "count": 1},
        {"email": "2@b.c", "count": 1},
    ]  # fmt: skip (schema defaults filled per item)
    assert {job.correlation_id for job in jobs.values()} == {"bulk-7"} and {job.owner for job in jobs.values()} == {
        staff
    }
    assert jobs[results[1]["job"]["id"]].idempotency_key == f"api:{staff.pk}:canary-1"  # scoped as the header's
    assert results[0]["job"]["url"] == f"/api/jobs/{results[0]['job']['id']}"
    publishes = [callback for callback in callbacks if callback.__qualname__.startswith("publish_on_commit")]
    assert len(publishes) == 1  # one pipelined publish for the whole request (the others count metrics)
    publishes[0]()
    assert redis_client.llen("default") == 4
    assert Job.objects.filter(published_at__isnull=True).count() == 0


@pytest.mark.django_db
def test_keys_replay_across_single_and_bulk_and_a_different_payload_is_refused_alone(client, staff):
    auth = bearer(staff)
    single = post_job(client, {"type": "jobs.canary", "payload": {"seconds": 1}}, HTTP_IDEMPOTENCY_KEY="k-1", **auth)
    response = post_bulk(client, {"jobs": [
        {"type": "jobs.canary", "payload": {"seconds": 1}, "idempotency_key": "k-1"},  # the single's request again
        {"type": "jobs.canary", "payload": {"seconds": 2}, "idempotency_key": "k-2"},
    ]}, **auth)  # fmt: skip
    again = post_bulk(client, {"jobs": [
        {"type": "jobs.canary", "payload": {"seconds": 2}, "idempotency_key": "k-2"},
        {"type": "jobs.canary", "payload": {"seconds": 3}, "idempotency_key": "k-1"},  # k-1 with another payload
        {"type": "jobs.canary", "payload": {"seconds": 4}},
    ]}, **auth)  # fmt: skip

    first, second = response.json()["results"]
    assert (first["outcome"], first["job"]["id"]) == ("replayed", single.json()["id"])
    assert second["outcome"] == "created"
    replayed, conflict, created = again.json()["results"]
    assert (replayed["outcome"], replayed["job"]["id"]) == ("replayed", second["job"]["id"])
    assert (conflict["outcome"], conflict["status"]) == ("refused", 422)
    assert conflict["error"]["code"] == "idempotency_key_conflict"
    assert conflict["error"]["detail"] == {"job_id": single.json()["id"], "idempotency_key": "k-1"}  # caller's key
    assert created["outcome"] == "created"
    assert Job.objects.count() == 3


@pytest.mark.django_db
def test_a_type_the_caller_may_not_enqueue_is_refused_403_in_its_result_and_the_rest_go_through(
    client, alice, echo_type
):
    response = post_bulk(client, {"jobs": [
        {"type": "tests.api_echo", "payload": {"email": "a@b.c"}},
        {"type": "jobs.canary", "payload": {}},  # staff only
        {"type": "tests.api_echo", "payload": {"email": "d@e.f"}},
    ]}, **bearer(alice))  # fmt: skip

    assert response.status_code == 200, response.content
    results = response.json()["results"]
    assert [(r["outcome"], r["status"]) for r in results] == [("created", 202), ("refused", 403), ("created", 202)]
    assert results[1]["error"]["code"] == "forbidden" and results[1]["error"]["detail"] == {"type": "jobs.canary"}
    assert Job.objects.count() == 2


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("item", "code", "field"),
    [({"type": "tests.api_echo", "payload": {"email": 5}}, "invalid_payload", "jobs[1].email"),
     ({"type": "tests.api_echo", "payload": {"email": "a@b.c"}, "idempotency_key": ""}, "invalid_idempotency_key",
      "jobs[1].idempotency_key"),
     ({"type": "tests.api_echo", "payload": {"email": "a@b.c"}, "extra": 1}, "invalid_body", "jobs[1].extra"),
     ("job", "invalid_body", "jobs[1]")],
)  # fmt: skip
def test_an_item_the_document_says_is_malformed_refuses_the_request_naming_its_position(
    client, alice, echo_type, item, code, field
):
    # The OpenAPI document holds each type's payload schema and the items' shape: a client can check those before
    # sending, so they refuse the request (as any schema-violating body), unlike what depends on the caller or state.
    body = {"jobs": [{"type": "tests.api_echo", "payload": {"email": "a@b.c"}}, item]}
    error = assert_error(post_bulk(client, body, **bearer(alice)), 422, code)
    assert error["message"].startswith("jobs[1]: ") and error["detail"]["index"] == 1
    assert error["detail"]["errors"][0]["field"] == field
    assert Job.objects.count() == 0


@pytest.mark.django_db
def test_an_unknown_type_refuses_the_request_naming_its_position(client, alice, echo_type):
    error = assert_error(post_bulk(client, {"jobs": [{"type": "nope"}]}, **bearer(alice)), 422, "unknown_job_type")
    assert error["message"].startswith("jobs[0]: ") and "tests.api_echo" in error["detail"]["allowed"]


@pytest.mark.django_db
def test_atomic_refuses_the_whole_request_when_one_item_is_refused(client, staff, alice, echo_type):
    auth = bearer(staff)
    post_job(client, {"type": "jobs.canary", "payload": {"seconds": 1}}, HTTP_IDEMPOTENCY_KEY="held", **auth)
    at_validation = post_bulk(
        client,
        {
            "atomic": True,
            "jobs": [
                {"type": "tests.api_echo", "payload": {"email": "a@b.c"}},
                {"type": "jobs.canary", "payload": {}},
            ],
        },
        **bearer(alice),
    )  # fmt: skip (the canary is staff only)
    at_the_database = post_bulk(client, {"atomic": True, "jobs": [
        {"type": "tests.api_echo", "payload": {"email": "a@b.c"}},
        {"type": "jobs.canary", "payload": {"seconds": 9}, "idempotency_key": "held"},
    ]}, **auth)  # fmt: skip

    error = assert_error(at_validation, 422, "batch_refused")
    assert [(r["index"], r["status"], r["error"]["code"]) for r in error["detail"]["refused"]] == [
        (1, 403, "forbidden")
    ]
    error = assert_error(at_the_database, 422, "batch_refused")
    assert [(r["index"], r["error"]["code"]) for r in error["detail"]["refused"]] == [(1, "idempotency_key_conflict")]
    assert error["detail"]["refused"][0]["error"]["detail"]["idempotency_key"] == "held"
    assert Job.objects.count() == 1  # only the single enqueue's job: the echo items were rolled back


@pytest.mark.django_db
def test_a_switched_off_type_refuses_its_items_with_503(client, staff, echo_type):
    JobTypeSwitch.objects.create(type="tests.api_echo", enabled=False)
    response = post_bulk(client, {"jobs": [
        {"type": "tests.api_echo", "payload": {"email": "a@b.c"}}, {"type": "jobs.canary", "payload": {}},
    ]}, **bearer(staff))  # fmt: skip

    echo, canary = response.json()["results"]
    assert (echo["outcome"], echo["status"], echo["error"]["code"]) == ("refused", 503, "job_type_disabled")
    assert echo["error"]["retryable"] is True and canary["outcome"] == "created"


@pytest.mark.django_db
def test_more_than_1000_items_or_a_body_over_the_limit_is_413_naming_the_limit(client, staff, settings):
    auth = bearer(staff)
    response = post_bulk(client, {"jobs": [{"type": "jobs.canary"}] * 1001}, **auth)
    error = assert_error(response, 413, "too_many_items")
    assert error["detail"] == {"max_items": 1000, "items": 1001} and "at most 1000" in error["message"]

    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    response = post_bulk(client, {"jobs": [{"type": "jobs.canary", "payload": {"message": "x" * 2000}}]}, **auth)
    error = assert_error(response, 413, "body_too_large")
    assert error["detail"] == {"limit_bytes": 1000} and "1000 bytes" in error["message"]
    assert Job.objects.count() == 0


@pytest.mark.django_db
def test_duplicate_idempotency_keys_in_one_request_are_422_naming_both_positions(client, staff):
    response = post_bulk(client, {"jobs": [
        {"type": "jobs.canary", "idempotency_key": "a"}, {"type": "jobs.canary", "idempotency_key": "b"},
        {"type": "jobs.canary"}, {"type": "jobs.canary", "idempotency_key": "a"},
    ]}, **bearer(staff))  # fmt: skip

    error = assert_error(response, 422, "duplicate_idempotency_key")
    assert error["detail"] == {"idempotency_key": "a", "positions": [0, 3]}
    assert "positions 0 and 3" in error["message"]
    assert Job.objects.count() == 0


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "field"),
    [({"jobs": []}, "jobs"), ({"jobs": {}}, "jobs"), ({}, "jobs"), ({"jobs": [{"type": "jobs.canary"}], "atomic": 1},
     "atomic"), ({"jobs": [{"type": "jobs.canary"}], "extra": 1}, "extra")],
)  # fmt: skip
def test_a_malformed_bulk_body_is_422_naming_the_field(client, staff, body, field):
    error = assert_error(post_bulk(client, body, **bearer(staff)), 422, "invalid_body")
    assert error["detail"]["errors"][0]["field"] == field


@pytest.mark.django_db
def test_quotas_count_jobs_not_requests(client, staff, settings):
    settings.JOBS_API_ENQUEUE_RATE_LIMIT = 5
    auth = bearer(staff)
    three = {"jobs": [{"type": "jobs.canary"}] * 3}

    assert post_bulk(client, three, **auth).status_code == 200
    refused = assert_error(post_bulk(client, three, **auth), 429, "rate_limited")  # 3 + 3 > 5: none of the three
    assert refused["retryable"] is True and refused["detail"]["jobs"] == 3
    assert post_bulk(client, {"jobs": [{"type": "jobs.canary"}] * 2}, **auth).status_code == 200  # 3 + 2 = 5
    too_many = assert_error(post_bulk(client, {"jobs": [{"type": "jobs.canary"}] * 6}, **auth), 429, "rate_limited")
    assert too_many["retryable"] is False and "at most 5 per request" in too_many["message"]
    assert Job.objects.count() == 5


@pytest.mark.django_db
def test_a_bulk_enqueue_takes_the_same_queries_for_2_and_for_200_jobs(
    client, staff, settings, django_capture_on_commit_callbacks
):
    settings.JOBS_API_ENQUEUE_RATE_LIMIT = 1000
    auth = bearer(staff)
    post_bulk(client, {"jobs": [{"type": "jobs.canary", "idempotency_key": "warm"}] * 1}, **auth)

    def queries(count: int, prefix: str) -> int:
        body = {"jobs": [{"type": "jobs.canary", "idempotency_key": f"{prefix}-{n}"} for n in range(count)]}
        with CaptureQueriesContext(connection) as captured, django_capture_on_commit_callbacks(execute=True):
            assert post_bulk(client, body, **auth).status_code == 200
        # (not the savepoint pair: the test's transaction makes the enqueue's atomic block a savepoint)
        return sum(
            not query["sql"].startswith(("SAVEPOINT", "RELEASE SAVEPOINT")) for query in captured.captured_queries
        )

    # the token; the switch per type; the keys' locks (PostgreSQL) and holders; one INSERT; the stamp after commit
    assert queries(2, "two") == queries(200, "many") == (6 if connection.vendor == "postgresql" else 5)
    assert Job.objects.filter(published_at__isnull=False).count() == 202  # both measured requests' (not the warm one)


@pytest.mark.django_db
def test_items_may_run_later_each_with_its_own_due_time_and_only_the_due_ones_are_published(
    client, staff, echo_type, redis_client, django_capture_on_commit_callbacks
):
    items = [
        {"type": "tests.api_echo", "payload": {"email": "now@b.c"}},
        {"type": "tests.api_echo", "payload": {"email": "later@b.c"}, "run_at": "2099-01-01T00:00:00Z"},
        {"type": "tests.api_echo", "payload": {"email": "soon@b.c"}, "delay_seconds": 600},
        {"type": "tests.api_echo", "payload": {"email": "past@b.c"}, "run_at": "2001-01-01T00:00:00+02:00"},
    ]
    with django_capture_on_commit_callbacks(execute=True):
        response = post_bulk(client, {"jobs": items}, **bearer(staff), HTTP_X_REQUEST_ID="bulk-later")
    assert response.status_code == 422, response.content  # 2099 is beyond the one-year horizon: the whole request
    assert_error(response, 422, "invalid_schedule")
    assert response.json()["error"]["detail"]["errors"][0]["field"] == "jobs[1].run_at"
    assert not Job.objects.exists()

    due = (timezone.now() + timedelta(days=30)).replace(microsecond=0)
    items[1]["run_at"] = due.isoformat()
    with django_capture_on_commit_callbacks(execute=True):
        response = post_bulk(client, {"jobs": items}, **bearer(staff))
    assert response.status_code == 200, response.content
    jobs = [Job.objects.get(id=result["job"]["id"]) for result in response.json()["results"]]
    assert [job.run_at is None for job in jobs] == [True, False, False, False]
    assert jobs[1].run_at == due
    assert [job.published_at is not None for job in jobs] == [True, False, False, True]  # the past one runs now
    assert redis_client.llen("default") == 2
