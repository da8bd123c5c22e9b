"""Issue 15 (and issue 14 item 7): each case the outside tester found has a regression test here.

Each answered 500, was accepted, or leaked before this change; the comment on each says which.
"""

import functools
import json
import threading
import time
from datetime import timedelta

import psycopg
import pytest
from django.contrib.auth.models import Permission
from django.db import OperationalError, connection, connections, transaction
from django.test import Client
from django.utils import timezone

from jobs.api.tokens import api_token_create
from jobs.coordination.locks import transaction_lock
from jobs.coordination.ratelimit import KEY_PREFIX
from jobs.delivery.enqueue import job_enqueue
from jobs.models import ApiToken, Job, JobAttempt, JobAuditEntry
from tests.concurrency import run_at_once
from tests.jobs.test_api import assert_error, bearer, post_job

S = Job.Status


def token_header(user, **options) -> dict:
    _, plaintext = api_token_create(user=user, name="test", **options)
    return {"HTTP_AUTHORIZATION": f"Bearer {plaintext}"}


def grant(user, *codenames: str) -> None:
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="jobs", codename__in=codenames))


@pytest.fixture(autouse=True)
def fresh_limits(redis_client):
    """Rate-limit logs are shared Redis state: start each test without another's grants."""
    for key in redis_client.scan_iter(f"{KEY_PREFIX}*"):
        redis_client.delete(key)


# ---------------------------------------------------------------------------
# Bodies: what PostgreSQL cannot store, and what JSON parsers disagree on
# ---------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    "raw, status",
    [
        # was 500 on PostgreSQL (a lone surrogate cannot be stored as text or jsonb)
        (b'{"type": "jobs.canary", "payload": {"message": "\\ud800"}}', 422),
        (b'{"type": "jobs.canary", "payload": {"\\udfff": 1}}', 422),
        # were accepted: a byte order mark, UTF-16, and duplicate keys (which one wins differs by parser)
        (b'\xef\xbb\xbf{"type": "jobs.canary"}', 400),
        ('{"type": "jobs.canary"}'.encode("utf-16"), 400),
        (b'{"type": "jobs.canary", "type": "sync.run"}', 400),
        (b'{"type": "jobs.canary", "payload": {"seconds": 1, "seconds": 2}}', 400),
    ],
)
def test_bodies_postgresql_cannot_store_or_parsers_disagree_on_are_refused(client, staff, raw, status):
    response = post_job(client, raw, **bearer(staff))
    assert_error(response, status, "invalid_body" if status == 422 else "malformed_json")
    assert not Job.objects.exists()


@pytest.mark.django_db
def test_zero_and_zero_point_zero_are_one_payload_for_idempotency(client, staff):
    # was 422 idempotency_key_conflict: 0 and 0.0 fingerprinted differently
    first = post_job(client, '{"type": "jobs.canary", "payload": {"seconds": 0}}', HTTP_IDEMPOTENCY_KEY="k0",
                     **bearer(staff))  # fmt: skip
    again = post_job(client, '{"type": "jobs.canary", "payload": {"seconds": 0.0}}', HTTP_IDEMPOTENCY_KEY="k0",
                     **bearer(staff))  # fmt: skip
    assert (first.status_code, again.status_code) == (202, 202), again.content
    assert again["Idempotent-Replayed"] == "true" and again.json()["id"] == first.json()["id"]


@pytest.mark.django_db
@pytest.mark.parametrize("header", ["key-a, key-b", "key-a,key-b", '"key-a", "key-b"', '"unterminated'])
def test_two_idempotency_keys_are_refused(client, staff, header):
    # was accepted as if no key had been sent (the server joins two headers with a comma)
    error = assert_error(post_job(client, {"type": "jobs.canary"}, HTTP_IDEMPOTENCY_KEY=header, **bearer(staff)),
                         422, "invalid_idempotency_key")  # fmt: skip
    assert "one Idempotency-Key" in error["message"]
    assert not Job.objects.exists()


@pytest.mark.django_db
def test_a_quoted_key_may_hold_a_comma(client, staff):
    response = post_job(client, {"type": "jobs.canary"}, HTTP_IDEMPOTENCY_KEY='"order-1,line-2"', **bearer(staff))
    assert response.status_code == 202 and response["Idempotent-Replayed"] == "false"


@pytest.mark.django_db
@pytest.mark.parametrize("owner", ["12626381982783803392", "9" * 30, "-9223372036854775809"])
def test_an_owner_beyond_64_bits_is_422_not_500(client, staff, owner):
    # was 500 on SQLite (OverflowError binding the parameter)
    error = assert_error(client.get("/api/jobs", {"owner": owner}, **bearer(staff)), 422, "invalid_parameter")
    assert error["detail"]["parameter"] == "owner"


@pytest.mark.django_db
def test_an_idempotency_conflict_names_the_callers_key_not_the_internal_one(client, staff):
    # the message used to show the stored key, api:<user pk>:<key>
    post_job(client, {"type": "jobs.canary", "payload": {"seconds": 1}}, HTTP_IDEMPOTENCY_KEY="k1", **bearer(staff))
    same_type = post_job(client, {"type": "jobs.canary", "payload": {"seconds": 2}}, HTTP_IDEMPOTENCY_KEY="k1",
                         **bearer(staff))  # fmt: skip
    error = assert_error(same_type, 422, "idempotency_key_conflict")
    assert f"api:{staff.pk}:" not in json.dumps(error) and error["detail"]["idempotency_key"] == "k1"


# ---------------------------------------------------------------------------
# Permissions the admin uses, not is_staff (issue 14 item 7)
# ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_is_staff_alone_grants_no_api_powers(client, alice, django_user_model):
    # before: any is_staff user read every job and traceback, cancelled any job and read the overview
    staff_only = django_user_model.objects.create_user("bare-staff", password="pw", is_staff=True)
    job = Job.objects.create(type="jobs.canary", owner=alice, status=S.QUEUED)
    headers = bearer(staff_only)
    headers_ops = token_header(staff_only, scopes=["read", "enqueue", "ops"])

    assert client.get("/api/jobs", **headers).json()["count"] == 0
    assert_error(client.get(f"/api/jobs/{job.id}", **headers), 404, "job_not_found")
    assert_error(client.get("/api/ops/overview", **headers_ops), 403, "forbidden")
    assert_error(post_job(client, {"type": "jobs.canary"}, **headers), 403, "forbidden")


@pytest.mark.django_db
def test_viewing_every_job_does_not_allow_cancelling_them(client, alice, bob):
    grant(bob, "view_job")
    job = Job.objects.create(type="jobs.canary", owner=alice, status=S.QUEUED)
    JobAttempt.objects.create(job=job, number=1, outcome="failed", error_traceback="Traceback: secret",
                              started_at=timezone.now(), finished_at=timezone.now())  # fmt: skip

    seen = client.get(f"/api/jobs/{job.id}", **bearer(bob))
    assert seen.status_code == 200 and seen.json()["attempts"][0]["traceback"] == "Traceback: secret"
    assert_error(client.post(f"/api/jobs/{job.id}/cancel", **bearer(bob)), 403, "forbidden")
    assert Job.objects.get(id=job.id).status == S.QUEUED

    grant(bob, "cancel_job")
    bob = type(bob).objects.get(pk=bob.pk)  # permissions are cached per user object
    assert client.post(f"/api/jobs/{job.id}/cancel", **bearer(bob)).status_code == 200


# ---------------------------------------------------------------------------
# Tokens: scopes, expiry, last use
# ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_token_scopes_limit_what_it_may_do(client, staff):
    read_only = token_header(staff, scopes=["read"])
    enqueue_only = token_header(staff, scopes=["enqueue"])

    assert client.get("/api/jobs", **read_only).status_code == 200
    error = assert_error(post_job(client, {"type": "jobs.canary"}, **read_only), 403, "insufficient_scope")
    assert error["detail"]["required_scope"] == "enqueue"
    assert post_job(client, {"type": "jobs.canary"}, **enqueue_only).status_code == 202
    assert_error(client.get("/api/jobs", **enqueue_only), 403, "insufficient_scope")
    assert_error(client.get("/api/ops/overview", **read_only), 403, "insufficient_scope")
    assert client.get("/api/ops/overview", **token_header(staff, scopes=["ops"])).status_code == 200


@pytest.mark.django_db
def test_an_expired_token_is_refused_and_says_so(client, alice, settings):
    settings.JOBS_API_TOKEN_TTL_DAYS = 30
    token, plaintext = api_token_create(user=alice, name="expiring")
    assert timedelta(days=29) < token.expires_at - timezone.now() <= timedelta(days=30)
    ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - timedelta(seconds=1))

    error = assert_error(client.get("/api/jobs", HTTP_AUTHORIZATION=f"Bearer {plaintext}"), 401, "invalid_token")
    assert "expired" in error["message"]


@pytest.mark.django_db
def test_last_use_is_recorded(client, alice):
    token, plaintext = api_token_create(user=alice, name="used")
    assert token.last_used_at is None
    client.get("/api/jobs", HTTP_AUTHORIZATION=f"Bearer {plaintext}")
    assert ApiToken.objects.get(pk=token.pk).last_used_at is not None


# ---------------------------------------------------------------------------
# Abuse limits
# ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_each_token_has_its_own_enqueue_limit_answered_with_429_and_retry_after(client, staff, settings):
    # before: one token enqueued 2,000 jobs in 14 s
    settings.JOBS_API_ENQUEUE_RATE_LIMIT, settings.JOBS_API_ENQUEUE_RATE_PERIOD = 3, 60
    first, second = bearer(staff), bearer(staff)
    answers = [post_job(client, {"type": "jobs.canary"}, **first).status_code for _ in range(4)]
    assert answers == [202, 202, 202, 429]
    refused = post_job(client, {"type": "jobs.canary"}, **first)
    error = assert_error(refused, 429, "rate_limited")
    assert 1 <= int(refused["Retry-After"]) <= 60 and error["retryable"] is True
    assert post_job(client, {"type": "jobs.canary"}, **second).status_code == 202  # another token is not affected
    assert Job.objects.count() == 4


@pytest.mark.django_db
def test_cron_guesses_are_throttled_before_the_secret_is_checked(client, settings):
    # before: the limit applied only after a correct secret, so guesses were unthrottled
    settings.CRON_SECRET = "right"
    settings.JOBS_RATE_LIMITS = {**settings.JOBS_RATE_LIMITS, "cron-endpoint": {"limit": 3, "period": 60}}
    statuses = [client.post("/api/cron/x", HTTP_AUTHORIZATION="Bearer wrong").status_code for _ in range(4)]
    assert statuses == [401, 401, 401, 429]
    # Throttled even with the right secret from this address; another address still gets through.
    assert client.post("/api/cron/x", HTTP_AUTHORIZATION="Bearer right").status_code == 429
    other = client.post("/api/cron/x", HTTP_AUTHORIZATION="Bearer right", REMOTE_ADDR="10.0.0.9")
    assert other.status_code == 404  # past the limit and the secret: no schedule named x


@pytest.mark.django_db
def test_admin_login_is_throttled_per_user_and_per_address_with_an_audit_entry(client, settings, django_user_model):
    # before: 20 wrong passwords, then the right one, were all checked
    settings.ADMIN_LOGIN_MAX_ATTEMPTS_PER_USER, settings.ADMIN_LOGIN_MAX_ATTEMPTS_PER_ADDRESS = 3, 5
    django_user_model.objects.create_superuser("root", password="right-password")

    def login(username: str, password: str, address: str = "10.1.1.1"):
        return client.post("/admin/login/", {"username": username, "password": password}, REMOTE_ADDR=address)

    assert [login("root", "wrong").status_code for _ in range(3)] == [200, 200, 200]  # the form again, with an error
    throttled = login("root", "right-password")
    assert throttled.status_code == 429 and int(throttled["Retry-After"]) > 0
    assert "Too many login attempts for this username" in throttled.content.decode()
    assert login("root", "right-password", address="10.2.2.2").status_code == 429  # per user, whatever the address
    entry = JobAuditEntry.objects.filter(action="admin_login_throttled").first()
    assert entry.actor_label == "root" and entry.detail["scope"] == "user"

    # Per address: many usernames from one address.
    statuses = [login(f"guess{n}", "x", address="10.3.3.3").status_code for n in range(6)]
    assert statuses == [200] * 5 + [429]
    assert JobAuditEntry.objects.filter(action="admin_login_throttled", detail__scope="address").exists()


# ---------------------------------------------------------------------------
# The cross-type idempotency check, under real concurrency
# ---------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_concurrent_requests_with_one_key_and_different_types_create_one_job(staff, echo_type, settings):
    # before: both passed the "is this key held by another type?" check, then both inserted
    settings.JOBS_API_ENQUEUE_RATE_LIMIT = 0
    headers = {**bearer(staff), "HTTP_IDEMPOTENCY_KEY": "race-1"}
    bodies = [
        {"type": "jobs.canary", "payload": {"seconds": 1}},
        {"type": "tests.api_echo", "payload": {"email": "a@b.c"}},
    ]
    rounds = 5
    for round_number in range(rounds):
        headers["HTTP_IDEMPOTENCY_KEY"] = f"race-{round_number}"
        sends = [
            functools.partial(lambda body: post_job(Client(), body, **headers).status_code, body) for body in bodies
        ]
        statuses = run_at_once(*sends)
        assert sorted(statuses) == [202, 422], statuses
        assert Job.objects.filter(idempotency_key=f"api:{staff.pk}:race-{round_number}").count() == 1


def waiting_advisory_locks() -> int:
    with connections["default"].cursor() as cursor:  # asked from this thread's own connection
        cursor.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
        return cursor.fetchone()[0]


def hold_key_lock(name: str, held: threading.Event, release: threading.Event, work=lambda: None) -> threading.Thread:
    """A thread holding the advisory lock ``name`` in its own transaction (doing ``work`` in it) until ``release``."""

    def run() -> None:
        try:
            with transaction.atomic():
                transaction_lock(name)
                work()
                held.set()
                assert release.wait(timeout=30)
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    assert held.wait(timeout=10)
    return thread


def test_a_holder_committed_while_an_enqueue_waits_for_the_key_lock_is_seen(
    staff, echo_type, settings, parameter_binding
):
    # The enqueue's lock and its guarded INSERT travel in one round trip, as two statements: the INSERT's snapshot
    # is taken after the lock is granted. Folded into one statement, its snapshot would predate the wait and it
    # would miss this holder (two jobs, two types, one key).
    settings.JOBS_API_ENQUEUE_RATE_LIMIT = 0
    scoped = f"api:{staff.pk}:held-key"
    held, release = threading.Event(), threading.Event()

    def insert_holder() -> None:
        Job.objects.create(type="tests.api_echo", queue="default", owner=staff, idempotency_key=scoped,
                           idempotency_expires_at=timezone.now() + timedelta(hours=1))  # fmt: skip

    holder = hold_key_lock(f"api-idempotency:{scoped}", held, release, insert_holder)
    statuses: list[int] = []

    def enqueue() -> None:
        try:
            body = {"type": "jobs.canary", "payload": {"seconds": 1}}
            statuses.append(post_job(Client(), body, HTTP_IDEMPOTENCY_KEY="held-key", **bearer(staff)).status_code)
        finally:
            connection.close()

    request = threading.Thread(target=enqueue)
    request.start()
    deadline = time.monotonic() + 10
    while waiting_advisory_locks() == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert waiting_advisory_locks() == 1  # the request waits for the key's lock
    release.set()  # the holder commits, then the request gets the lock
    holder.join(timeout=30)
    request.join(timeout=30)

    assert statuses == [422]
    assert list(Job.objects.filter(idempotency_key=scoped).values_list("type", flat=True)) == ["tests.api_echo"]


def test_a_failed_one_round_trip_enqueue_leaves_the_connection_usable(staff, echo_type, parameter_binding):
    # Outside a transaction the round trip carries its own BEGIN; a statement failing inside it (here the key
    # lock's wait running out) would leave the connection in an aborted transaction if nothing rolled it back.
    # In a pipeline the error surfaces when the pipeline syncs, not in execute(): it must still be Django's.
    scoped = f"api:{staff.pk}:timed-out"
    held, release = threading.Event(), threading.Event()
    holder = hold_key_lock(f"api-idempotency:{scoped}", held, release)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '50ms'")
        with pytest.raises(OperationalError):
            job_enqueue(job_type="jobs.canary", payload={"seconds": 1}, owner=staff, idempotency_key=scoped,
                        key_exclusive_among=["jobs.canary", "tests.api_echo"])  # fmt: skip
        assert connection.connection.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        assert Job.objects.filter(idempotency_key=scoped).count() == 0  # and the connection answers
    finally:
        release.set()
        holder.join(timeout=30)
        connection.close()  # drops the session's lock_timeout


def test_an_enqueue_with_a_key_finds_its_earlier_job_on_either_binding(staff, echo_type, parameter_binding):
    # Several times over, so that on server-side binding the lock and the guarded INSERT run prepared too.
    scoped = f"api:{staff.pk}:binding"
    results = [
        job_enqueue(job_type="tests.api_echo", payload={"email": "a@b.c"}, owner=staff, idempotency_key=scoped,
                    key_exclusive_among=["jobs.canary", "tests.api_echo"])
        for _ in range(8)
    ]  # fmt: skip
    server_side = not issubclass(connection.connection.cursor_factory, psycopg.ClientCursor)
    assert server_side == (parameter_binding == "server-side")
    assert [result.created for result in results] == [True] + [False] * 7
    assert {result.job.id for result in results} == {results[0].job.id}
    assert Job.objects.filter(idempotency_key=scoped).count() == 1


# ---------------------------------------------------------------------------
# Browsers: CORS for configured origins only, security headers
# ---------------------------------------------------------------------------

FRONTEND = "http://localhost:3000"


@pytest.mark.django_db
def test_a_configured_origin_gets_its_preflight_answered_and_may_poll_a_job(client, alice, settings):
    # before: OPTIONS answered 405 and no Access-Control-* header was sent
    settings.CORS_ALLOWED_ORIGINS = [FRONTEND]
    preflight = client.options("/api/jobs/abc", HTTP_ORIGIN=FRONTEND, HTTP_ACCESS_CONTROL_REQUEST_METHOD="GET",
                               HTTP_ACCESS_CONTROL_REQUEST_HEADERS="authorization")  # fmt: skip
    assert preflight.status_code == 200
    assert preflight["Access-Control-Allow-Origin"] == FRONTEND
    assert "authorization" in preflight["Access-Control-Allow-Headers"]
    assert "Access-Control-Allow-Credentials" not in preflight  # bearer tokens need no cookies

    job = Job.objects.create(type="jobs.canary", owner=alice)
    polled = client.get(f"/api/jobs/{job.id}", HTTP_ORIGIN=FRONTEND, **bearer(alice))
    assert polled.status_code == 200 and polled["Access-Control-Allow-Origin"] == FRONTEND
    assert "Retry-After" in polled["Access-Control-Expose-Headers"]


@pytest.mark.django_db
def test_other_origins_and_non_api_paths_get_no_cors_headers(client, settings):
    settings.CORS_ALLOWED_ORIGINS = [FRONTEND]
    other = client.options("/api/jobs", HTTP_ORIGIN="https://evil.example", HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST")
    assert "Access-Control-Allow-Origin" not in other
    admin = client.get("/admin/login/", HTTP_ORIGIN=FRONTEND)
    assert "Access-Control-Allow-Origin" not in admin


@pytest.mark.django_db
def test_credentials_are_allowed_only_when_configured(client, settings):
    settings.CORS_ALLOWED_ORIGINS, settings.CORS_ALLOW_CREDENTIALS = [FRONTEND], True
    preflight = client.options("/api/jobs", HTTP_ORIGIN=FRONTEND, HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST")
    assert preflight["Access-Control-Allow-Credentials"] == "true"


@pytest.mark.django_db
def test_security_headers_on_pages_and_api(client, settings):
    for path in ("/admin/login/", "/api/jobs", "/api/docs"):
        response = client.get(path)
        assert "script-src 'self'" in response["Content-Security-Policy"], path
        assert "frame-ancestors 'none'" in response["Content-Security-Policy"]
        assert "camera=()" in response["Permissions-Policy"]
        assert response["X-Content-Type-Options"] == "nosniff"


@pytest.mark.django_db
def test_hsts_is_sent_on_https_and_x_forwarded_proto_is_not_believed_by_default(client, settings):
    settings.SECURE_HSTS_SECONDS = 31536000
    assert settings.SECURE_PROXY_SSL_HEADER is None  # TRUST_PROXY_HEADERS is off in tests, as in compose
    claimed = client.get("/healthz", HTTP_X_FORWARDED_PROTO="https")
    assert "Strict-Transport-Security" not in claimed  # a client cannot claim HTTPS
    secure = client.get("/healthz", secure=True)
    assert secure["Strict-Transport-Security"].startswith("max-age=31536000")


# ---------------------------------------------------------------------------
# The token query brings the user's permissions along (bench api: two queries fewer per request)
# ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_token_lookup_loads_the_same_permissions_model_backend_would(alice, django_user_model):
    from django.contrib.auth.models import Group

    from jobs.api.tokens import api_token_find

    grant(alice, "view_job")
    operators = Group.objects.create(name="operators")
    operators.permissions.add(*Permission.objects.filter(content_type__app_label="jobs", codename__in=["cancel_job"]))
    alice.groups.add(operators)
    _, plaintext = api_token_create(user=alice, name="test")

    token = api_token_find(plaintext=plaintext)

    expected = django_user_model.objects.get(pk=alice.pk).get_all_permissions()  # ModelBackend's own two queries
    assert expected == {"jobs.view_job", "jobs.cancel_job"}
    assert token.user._perm_cache == expected
    _, bobs = api_token_create(user=django_user_model.objects.create_user("nobody", password="pw"), name="test")
    assert api_token_find(plaintext=bobs).user._perm_cache == set()


@pytest.mark.django_db
def test_permissions_granted_or_taken_away_act_on_the_next_request(client, alice, bob):
    from django.contrib.auth.models import Group

    job = Job.objects.create(type="jobs.canary", owner=alice, status=S.QUEUED)
    headers = bearer(bob)
    assert_error(client.get(f"/api/jobs/{job.id}", **headers), 404, "job_not_found")

    viewers = Group.objects.create(name="viewers")
    viewers.permissions.add(Permission.objects.get(content_type__app_label="jobs", codename="view_job"))
    bob.groups.add(viewers)
    assert client.get(f"/api/jobs/{job.id}", **headers).status_code == 200  # through the group, at once

    bob.groups.remove(viewers)
    assert_error(client.get(f"/api/jobs/{job.id}", **headers), 404, "job_not_found")  # nothing kept across requests


@pytest.mark.django_db
def test_a_superusers_token_is_not_limited_to_its_listed_permissions(client, alice, django_user_model):
    root = django_user_model.objects.create_superuser("root", password="pw")
    job = Job.objects.create(type="jobs.canary", owner=alice, status=S.QUEUED)

    assert client.get(f"/api/jobs/{job.id}", **bearer(root)).status_code == 200


@pytest.mark.django_db
def test_other_authentication_backends_get_their_say(client, alice, bob, settings):
    # Only ModelBackend's cache is filled; with other backends configured, has_perm asks them as usual.
    settings.AUTHENTICATION_BACKENDS = [
        "django.contrib.auth.backends.ModelBackend",
        "tests.jobs.test_api_hardening.ViewAll",
    ]
    job = Job.objects.create(type="jobs.canary", owner=alice, status=S.QUEUED)

    assert client.get(f"/api/jobs/{job.id}", **bearer(bob)).status_code == 200


class ViewAll:
    """An authentication backend granting everyone jobs.view_job."""

    def authenticate(self, request, **credentials):
        return None

    def has_perm(self, user_obj, perm, obj=None):
        return perm == "jobs.view_job"


# ---------------------------------------------------------------------------
# Paths (issue 22): ids are ASCII digits, and every /api/ miss is the API's JSON in every mode
# ---------------------------------------------------------------------------


def url_patterns(resolver=None, prefix: str = ""):
    """Every (route text, pattern) in the project's URLconf, includes flattened."""
    from django.urls import URLResolver, get_resolver

    for entry in (resolver or get_resolver()).url_patterns:
        route = prefix + str(entry.pattern)
        if isinstance(entry, URLResolver):
            yield from url_patterns(entry, route)
        else:
            yield route, entry.pattern


def test_no_url_pattern_takes_digits_of_every_script_as_an_id():
    # Python's \d matches "١" and "１", and int() reads both as 1: /api/exports/١ was export 1.
    from django.urls.converters import get_converters

    digit_classes = [route for route, pattern in url_patterns() if "\\d" in pattern.regex.pattern]
    assert digit_classes == []
    id_routes = [route for route, _ in url_patterns() if "<id:" in route]
    assert "api/exports/<id:export_id>" in id_routes
    assert get_converters()["id"].regex == "[0-9]+"


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/api/exports/\u0661", "/api/exports/\uff11", "/api/exports/9223372036854775808",
                                  "/api/exports/" + "1" * 40])  # fmt: skip
def test_an_export_id_not_in_ascii_digits_or_beyond_a_bigint_is_the_apis_404(client, alice, path):
    assert_error(client.get(path, **bearer(alice)), 404, "not_found")


API_MISSES = ["/api/", "/api/nope", "/api/exports/", "/api/exports/1/extra", "/api/webhooks/", "/api/webhooks/other",
              "/api/jobs/", "/api/jobs/abc/cancel/", "/api/ops", "/api/openapi.json/"]  # fmt: skip


@pytest.mark.django_db
@pytest.mark.parametrize("debug", [False, True])
@pytest.mark.parametrize("path", API_MISSES)
def test_every_path_under_api_that_names_no_endpoint_is_the_apis_json_404(client, settings, debug, path):
    # before: with DEBUG on, Django's HTML page listing every URL pattern (outside /api/jobs/)
    settings.DEBUG = debug
    for method in ("get", "post", "delete"):
        error = assert_error(getattr(client, method)(path), 404, "not_found")
        assert path in error["message"]


@pytest.mark.django_db
@pytest.mark.parametrize("debug", [False, True])
def test_a_method_an_api_path_does_not_take_is_the_apis_json_405(client, settings, debug):
    settings.DEBUG = debug
    for path, method in (("/api/docs", "post"), ("/api/openapi.json", "delete"), ("/api/exports/sources", "put")):
        response = getattr(client, method)(path)
        assert_error(response, 405, "method_not_allowed")
        assert response["Allow"]
