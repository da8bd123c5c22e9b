"""Issue 22, security items 1 and 2: every way in is throttled, in one place, and the audit log stays small.

The throttle used to live in a middleware that watched POSTs to /admin/login/ only, so /exports/login/
signed the same accounts in with no limit (40 wrong passwords, then the right one opened /admin/), even
while the admin login answered 429. It now lives in the authentication backend, which every login path
(any view that calls django.contrib.auth.authenticate) goes through. And each throttled attempt wrote
an audit row with a username the attacker chose; they are now one row per address and window, counted.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth import authenticate

from jobs.models import JobAuditEntry

pytestmark = pytest.mark.django_db

ADMIN_LOGIN, EXPORTS_LOGIN = "/admin/login/", "/exports/login/"
LOGIN_PATHS = [ADMIN_LOGIN, EXPORTS_LOGIN]
THROTTLED = JobAuditEntry.Action.ADMIN_LOGIN_THROTTLED


@pytest.fixture
def operator(django_user_model, settings, redis_client):
    # redis_client empties the test Redis: no attempts left over from another test.
    settings.ADMIN_LOGIN_MAX_ATTEMPTS_PER_USER, settings.ADMIN_LOGIN_MAX_ATTEMPTS_PER_ADDRESS = 3, 50
    return django_user_model.objects.create_superuser("operator", password="right-password")


def login(client, path: str, username: str, password: str, address: str = "10.1.1.1"):
    return client.post(path, {"username": username, "password": password}, REMOTE_ADDR=address)


def signed_in(client) -> bool:
    return client.get("/admin/").status_code == 200


@pytest.mark.parametrize("path", LOGIN_PATHS)
def test_the_right_password_still_signs_in_on_every_login_path(client, operator, path):
    assert login(client, path, "operator", "right-password").status_code == 302
    assert signed_in(client)


@pytest.mark.parametrize("path", LOGIN_PATHS)
def test_every_login_path_is_throttled_per_username(client, operator, path):
    # before (/exports/login/): 200 for every wrong password, then 302 and a session that opened /admin/
    assert [login(client, path, "operator", "wrong").status_code for _ in range(3)] == [200, 200, 200]
    refused = login(client, path, "operator", "right-password")
    assert refused.status_code == 429 and int(refused["Retry-After"]) > 0
    assert "Too many login attempts for this username" in refused.content.decode()
    assert not signed_in(client)
    # Per username, whatever the address.
    assert login(client, path, "operator", "right-password", address="10.2.2.2").status_code == 429


@pytest.mark.parametrize("path", LOGIN_PATHS)
def test_every_login_path_is_throttled_per_address(client, operator, settings, path):
    settings.ADMIN_LOGIN_MAX_ATTEMPTS_PER_ADDRESS = 4
    statuses = [login(client, path, f"guess{n}", "x", address="10.3.3.3").status_code for n in range(4)]
    refused = login(client, path, "operator", "right-password", address="10.3.3.3")
    assert (statuses, refused.status_code) == ([200] * 4, 429)
    assert "Too many login attempts from your address" in refused.content.decode()
    assert not signed_in(client)


@pytest.mark.parametrize("throttled_on, then_on", [(ADMIN_LOGIN, EXPORTS_LOGIN), (EXPORTS_LOGIN, ADMIN_LOGIN)])
def test_an_account_throttled_on_one_login_path_is_refused_on_the_other(client, operator, throttled_on, then_on):
    # before: while /admin/login/ answered 429, /exports/login/ signed the account in and /admin/ opened
    for _ in range(3):
        login(client, throttled_on, "operator", "wrong")
    assert login(client, throttled_on, "operator", "right-password").status_code == 429
    assert login(client, then_on, "operator", "right-password", address="10.9.9.9").status_code == 429
    assert not signed_in(client)


def test_attempts_on_both_login_paths_count_together(client, operator):
    assert login(client, ADMIN_LOGIN, "operator", "wrong").status_code == 200
    assert login(client, EXPORTS_LOGIN, "Operator", "wrong").status_code == 200  # usernames count case-blind
    assert login(client, ADMIN_LOGIN, "operator", "wrong").status_code == 200
    assert login(client, EXPORTS_LOGIN, "operator", "right-password").status_code == 429


def test_any_caller_of_authenticate_is_throttled_by_the_backend(operator, rf):
    # A login view added later calls authenticate() like these do: the backend refuses it, not a view.
    from jobs.api.auth_backends import LoginThrottled

    request = rf.post("/some/future/login/", REMOTE_ADDR="10.4.4.4")
    assert [authenticate(request, username="operator", password="wrong") for _ in range(3)] == [None] * 3
    with pytest.raises(LoginThrottled) as refused:
        authenticate(request, username="operator", password="right-password")
    assert refused.value.scope == "user" and refused.value.retry_after > 0


def test_throttled_attempts_from_one_address_in_one_window_are_one_audit_row_with_their_count(client, operator,
                                                                                             settings):  # fmt: skip
    # before: one row per throttled attempt, each with a username the attacker chose (113 rows in 8.8 s)
    settings.ADMIN_LOGIN_MAX_ATTEMPTS_PER_ADDRESS = 2
    throttled_attempts = 7
    statuses = [login(client, LOGIN_PATHS[n % 2], f"spray{n}", "x", address="10.5.5.5").status_code
                for n in range(2 + throttled_attempts)]  # fmt: skip
    assert statuses == [200, 200] + [429] * throttled_attempts
    rows = JobAuditEntry.objects.filter(action=THROTTLED)
    assert rows.count() == 1
    row = rows.get()
    assert row.occurrences == throttled_attempts and row.detail["address"] == "10.5.5.5"
    assert row.actor_label == "spray2" and row.last_seen_at >= row.created_at  # the first one throttled
    # Another address is another row.
    assert login(client, ADMIN_LOGIN, "spray", "x", address="10.6.6.6").status_code == 200
    login(client, ADMIN_LOGIN, "spray", "x", address="10.6.6.6")
    assert login(client, ADMIN_LOGIN, "spray", "x", address="10.6.6.6").status_code == 429
    assert sorted(JobAuditEntry.objects.filter(action=THROTTLED).values_list("occurrences", flat=True)) == [1, 7]


def test_the_next_window_starts_a_new_audit_row(operator):
    from jobs.core.audit import audit_record_counted

    start = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)
    for minutes in (0, 5, 14, 15, 16):  # a 15-minute window: 10:00-10:15, then 10:15-10:30
        audit_record_counted(action=THROTTLED, actor_label="x", address="10.7.7.7", window_seconds=900,
                             detail={"scope": "address"}, now=start + timedelta(minutes=minutes))  # fmt: skip
    rows = JobAuditEntry.objects.filter(action=THROTTLED).order_by("pk")
    assert [row.occurrences for row in rows] == [3, 2]


def test_the_audit_admin_shows_how_many_attempts_a_row_stands_for(client, operator, admin_client, settings):
    settings.ADMIN_LOGIN_MAX_ATTEMPTS_PER_ADDRESS = 1
    for n in range(6):
        login(client, EXPORTS_LOGIN, f"spray{n}", "x", address="10.8.8.8")
    page = admin_client.get("/admin/jobs/jobauditentry/").content.decode()
    assert '<td class="field-occurrences">5</td>' in page
    row = JobAuditEntry.objects.get(action=THROTTLED)
    detail = admin_client.get(f"/admin/jobs/jobauditentry/{row.pk}/change/").content.decode()
    assert "10.8.8.8" in detail and "Occurrences" in detail


def test_async_callers_of_authenticate_are_throttled_too(operator, rf):
    # ModelBackend has its own async password check; aauthenticate() must not be a way around the throttle.
    from asgiref.sync import async_to_sync
    from django.contrib.auth import aauthenticate

    from jobs.api.auth_backends import LoginThrottled

    request = rf.post("/some/async/login/", REMOTE_ADDR="10.4.4.5")
    check = async_to_sync(aauthenticate)
    assert [check(request, username="operator", password="wrong") for _ in range(3)] == [None] * 3
    with pytest.raises(LoginThrottled):
        check(request, username="operator", password="right-password")
