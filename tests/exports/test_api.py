"""The exports API: auth like /api/jobs, the one error shape, pagination, idempotency, limits, OpenAPI."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from exports.models import Export
from jobs.api.tokens import api_token_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def client_for():
    def _client(user) -> Client:
        client = Client(enforce_csrf_checks=True)
        client.force_login(user)
        return client

    return _client


def _bearer(user) -> dict:
    _, plaintext = api_token_create(user=user, name="tests")
    return {"HTTP_AUTHORIZATION": f"Bearer {plaintext}"}


def _post(client: Client, body: dict, **headers):
    return client.post("/api/exports", body, content_type="application/json", **headers)


def test_unauthenticated_is_401_in_the_error_shape():
    response = Client().get("/api/exports")
    assert response.status_code == 401
    assert set(response.json()["error"]) == {"code", "message", "detail", "retryable"}


def test_bearer_token_create_get_list_and_idempotency(alice, redis_client):
    client, auth = Client(), _bearer(alice)
    body = {"source": "products", "format": "jsonl", "filters": {"state": "active"}, "gzip": True}
    created = _post(client, body, HTTP_IDEMPOTENCY_KEY='"req-1"', **auth)
    assert created.status_code == 202 and created["Idempotent-Replayed"] == "false"
    export = created.json()
    assert (export["status"], export["download_url"], export["filters"]) == ("queued", None, {"state": "active"})
    replayed = _post(client, body, HTTP_IDEMPOTENCY_KEY="req-1", **auth)
    assert replayed["Idempotent-Replayed"] == "true" and replayed.json()["id"] == export["id"]

    assert client.get(created["Location"], **auth).json()["id"] == export["id"]
    listed = client.get("/api/exports?page_size=1", **auth).json()
    assert (listed["count"], [e["id"] for e in listed["results"]], listed["next"]) == (1, [export["id"]], None)


def test_session_writes_need_the_csrf_token(client_for, alice, redis_client):
    client = client_for(alice)
    refused = _post(client, {"source": "products", "format": "csv"})
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "csrf_failed"
    client.get("/exports/")  # sets the csrftoken cookie, as the page does
    accepted = _post(
        client, {"source": "products", "format": "csv"}, HTTP_X_CSRFTOKEN=client.cookies["csrftoken"].value
    )
    assert accepted.status_code == 202


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [({"format": "csv"}, 422, "source"), ({"source": "products", "format": "csv", "extra": 1}, 422, "extra"),
     ({"source": "products", "format": "csv", "filters": []}, 422, "filters"),
     ({"source": "products", "format": "csv", "filters": {"state": "x"}}, 422, "filters.state"),
     ({"source": "audit", "format": "csv"}, 403, None)],
)  # fmt: skip
def test_invalid_requests_say_what_was_expected(alice, body, status, field, redis_client):
    response = _post(Client(), body, **_bearer(alice))
    assert response.status_code == status, response.json()
    if field:
        assert response.json()["error"]["detail"]["errors"][0]["field"] == field


def test_limit_is_429_with_retry_after(alice, settings, redis_client):
    settings.EXPORTS_MAX_ACTIVE_PER_USER = 1
    client, auth = Client(), _bearer(alice)
    assert _post(client, {"source": "products", "format": "csv"}, **auth).status_code == 202
    refused = _post(client, {"source": "products", "format": "csv"}, **auth)
    assert refused.status_code == 429 and refused["Retry-After"] == "30"
    assert refused.json()["error"]["code"] == "export_limit_reached" and refused.json()["error"]["retryable"]


def test_other_users_export_is_404_and_delete_cancels(alice, bob, redis_client):
    client, auth = Client(), _bearer(alice)
    export_id = _post(client, {"source": "products", "format": "csv"}, **auth).json()["id"]
    assert client.get(f"/api/exports/{export_id}", **_bearer(bob)).status_code == 404
    assert client.get("/api/exports/not-a-number", **auth).status_code == 404
    deleted = client.delete(f"/api/exports/{export_id}", **auth)
    assert deleted.status_code == 200 and deleted.json()["outcome"] == "cancelled"
    assert Export.objects.get(pk=export_id).status == "cancelled"


def test_sources_listing_hides_staff_only_sources(alice, staff):
    names = lambda user: [s["name"] for s in Client().get("/api/exports/sources", **_bearer(user)).json()["sources"]]  # noqa: E731
    assert "audit" not in names(alice) and {"products", "jobs"} <= set(names(alice))
    assert "audit" in names(staff)


def test_openapi_documents_the_exports_paths():
    document = Client().get("/api/openapi.json").json()
    assert {"/exports", "/exports/{export_id}", "/exports/sources"} <= set(document["paths"])
    assert "429" in document["paths"]["/exports"]["post"]["responses"]
    assert "Export" in document["components"]["schemas"]


def test_page_needs_login_and_renders(client_for, alice):
    assert Client().get("/exports/")["Location"].startswith("/exports/login/")
    page = client_for(alice).get("/exports/")
    assert page.status_code == 200 and b"New export" in page.content
    # Self-contained: nothing loaded from elsewhere (no CDN, no build step).
    assert not re.search(rb"""(src|href)=["']?(https?:)?//""", page.content)
