"""API authentication: bearer tokens (stored hashed, revocable) and browser sessions (with CSRF)."""

import hashlib
import json
from datetime import timedelta

import pytest
import time_machine
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone

from jobs.api.tokens import api_token_create, api_token_revoke, api_token_user
from jobs.models import ApiToken

CANARY = json.dumps({"type": "jobs.canary"})


def error_code(response) -> str:
    assert response["Content-Type"] == "application/json"
    return response.json()["error"]["code"]


# ---------------------------------------------------------------------------
# Bearer tokens
# ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_token_is_stored_only_as_its_hash_with_a_display_prefix(alice):
    token, plaintext = api_token_create(user=alice, name="storefront backend")

    stored = ApiToken.objects.get(pk=token.pk)
    assert stored.token_hash == hashlib.sha256(plaintext.encode()).hexdigest()
    assert plaintext.startswith(stored.prefix) and len(stored.prefix) < len(plaintext) // 4
    assert plaintext not in {str(getattr(stored, field.attname)) for field in ApiToken._meta.concrete_fields}
    assert api_token_create(user=alice, name="another")[1] != plaintext


@pytest.mark.django_db
def test_a_token_needs_a_name(alice):
    with pytest.raises(ValueError, match="name"):
        api_token_create(user=alice, name="  ")


@pytest.mark.django_db
def test_a_valid_bearer_token_authenticates_reads_and_writes_without_csrf(staff, redis_client):
    _, plaintext = api_token_create(user=staff, name="backend")
    server = Client(enforce_csrf_checks=True)  # a server-side caller has no cookie and no CSRF token
    auth = {"HTTP_AUTHORIZATION": f"Bearer {plaintext}"}

    assert server.get("/api/jobs", **auth).status_code == 200
    created = server.post("/api/jobs", data=CANARY, content_type="application/json", **auth)
    assert created.status_code == 202, created.content
    assert created.json()["id"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("header", "code"),
    [
        (None, "unauthenticated"),
        ("Basic YWxpY2U6cHc=", "unauthenticated"),
        ("Bearer", "unauthenticated"),
        ("Bearer ", "unauthenticated"),
        ("Bearer nope", "invalid_token"),
        ("Bearer jpt_not-a-real-token", "invalid_token"),
    ],
)
def test_missing_or_wrong_credentials_are_401_with_a_challenge(client, header, code):
    headers = {"HTTP_AUTHORIZATION": header} if header is not None else {}
    posted = client.post("/api/jobs", data=CANARY, content_type="application/json", **headers)
    for response in (client.get("/api/jobs", **headers), posted):
        assert response.status_code == 401
        assert error_code(response) == code
        assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.django_db
def test_a_revoked_token_is_refused(client, alice):
    token, plaintext = api_token_create(user=alice, name="backend")
    auth = {"HTTP_AUTHORIZATION": f"Bearer {plaintext}"}
    assert client.get("/api/jobs", **auth).status_code == 200

    assert api_token_revoke(token=token) is True
    assert api_token_revoke(token=token) is False  # already revoked: nothing changes

    response = client.get("/api/jobs", **auth)
    assert response.status_code == 401 and error_code(response) == "invalid_token"
    assert 'error="invalid_token"' in response["WWW-Authenticate"]


@pytest.mark.django_db
def test_a_deactivated_users_token_is_refused(client, alice):
    _, plaintext = api_token_create(user=alice, name="backend")
    alice.is_active = False
    alice.save()

    response = client.get("/api/jobs", HTTP_AUTHORIZATION=f"Bearer {plaintext}")
    assert response.status_code == 401 and error_code(response) == "invalid_token"


@pytest.mark.django_db
def test_bearer_scheme_is_case_insensitive(client, alice):
    _, plaintext = api_token_create(user=alice, name="backend")
    assert client.get("/api/jobs", HTTP_AUTHORIZATION=f"bearer {plaintext}").status_code == 200


@pytest.mark.django_db
def test_last_used_at_is_written_at_most_once_a_minute(alice, django_assert_num_queries):
    token, plaintext = api_token_create(user=alice, name="backend")
    start = timezone.now()

    with time_machine.travel(start, tick=False):
        assert api_token_user(plaintext=plaintext) == alice
    assert ApiToken.objects.get(pk=token.pk).last_used_at == start

    with time_machine.travel(start + timedelta(seconds=30), tick=False), django_assert_num_queries(1):
        api_token_user(plaintext=plaintext)  # the lookup only, no write
    assert ApiToken.objects.get(pk=token.pk).last_used_at == start

    with time_machine.travel(start + timedelta(seconds=61), tick=False):
        api_token_user(plaintext=plaintext)
    assert ApiToken.objects.get(pk=token.pk).last_used_at == start + timedelta(seconds=61)


@pytest.mark.django_db
def test_a_bearer_token_wins_over_a_session(staff, alice):
    _, plaintext = api_token_create(user=alice, name="backend")
    browser = Client()
    browser.force_login(staff)

    response = browser.post("/api/jobs", data=CANARY, content_type="application/json",
                            HTTP_AUTHORIZATION=f"Bearer {plaintext}")  # fmt: skip
    assert response.status_code == 403 and error_code(response) == "forbidden"  # alice, not staff


# ---------------------------------------------------------------------------
# Browser sessions
# ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_session_callers_need_the_csrf_token_for_posts(staff, redis_client):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(staff)

    refused = browser.post("/api/jobs", data=CANARY, content_type="application/json")
    browser.get("/api/docs")  # the docs page sets the csrftoken cookie
    wrong = browser.post("/api/jobs", data=CANARY, content_type="application/json", HTTP_X_CSRFTOKEN="x" * 32)
    accepted = browser.post("/api/jobs", data=CANARY, content_type="application/json",
                            HTTP_X_CSRFTOKEN=browser.cookies["csrftoken"].value)  # fmt: skip

    for response in (refused, wrong):
        assert response.status_code == 403 and error_code(response) == "csrf_failed"
        assert "X-CSRFToken" in response.json()["error"]["detail"]["hint"]
    assert accepted.status_code == 202, accepted.content
    assert browser.get("/api/jobs").status_code == 200  # reads need no token


@pytest.mark.django_db
def test_session_cancel_needs_the_csrf_token_too(alice, redis_client):
    from jobs.delivery.enqueue import job_enqueue

    job = job_enqueue(job_type="tests.noop", owner=alice).job
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(alice)

    response = browser.post(f"/api/jobs/{job.id}/cancel")
    assert response.status_code == 403 and error_code(response) == "csrf_failed"
    browser.get("/api/docs")
    token = browser.cookies["csrftoken"].value
    assert browser.post(f"/api/jobs/{job.id}/cancel", HTTP_X_CSRFTOKEN=token).status_code == 200


@pytest.mark.django_db
def test_logged_out_browser_is_401(client):
    response = client.get("/api/jobs")
    assert response.status_code == 401 and error_code(response) == "unauthenticated"


# ---------------------------------------------------------------------------
# manage.py create_api_token
# ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_create_api_token_command_prints_a_working_token_once(client, alice, capsys):
    call_command("create_api_token", "alice", "--name", "storefront backend")
    captured = capsys.readouterr()
    plaintext = captured.out.strip()

    assert plaintext.startswith("jpt_") and "\n" not in plaintext
    assert plaintext not in captured.err and "storefront backend" in captured.err
    assert client.get("/api/jobs", HTTP_AUTHORIZATION=f"Bearer {plaintext}").status_code == 200
    assert ApiToken.objects.get(user=alice).name == "storefront backend"


@pytest.mark.django_db
def test_create_api_token_command_refuses_unknown_or_inactive_users(django_user_model):
    with pytest.raises(CommandError, match="no user named 'ghost'"):
        call_command("create_api_token", "ghost", "--name", "x")
    django_user_model.objects.create_user("gone", is_active=False)
    with pytest.raises(CommandError, match="inactive"):
        call_command("create_api_token", "gone", "--name", "x")
    assert not ApiToken.objects.exists()
