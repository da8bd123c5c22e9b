"""Queries per API request, pinned: the hot endpoints bench api measures (bench/README.md).

Each request is made once to warm per-process caches (the token's last_used_at stamp, the
type switch), then counted. A change that adds a query to a status poll shows up here.
"""

import contextlib
import json
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from jobs.models import Job, JobAttempt
from jobs.services import job_bulk_enqueue
from tests.jobs.test_api import bearer

# Who may see every job is a model permission (jobs.core.permissions, not is_staff). ModelBackend would load the
# caller's own and its groups' permissions in two queries on the first has_perm; the token's query brings them
# along instead (jobs.api.tokens.api_token_find), so a bearer request spends no query on them.
TABLE = re.compile(r'\b(?:FROM|INTO|UPDATE)\s+"?(\w+)', re.IGNORECASE)


def kinds(captured: CaptureQueriesContext) -> list[str]:
    """``SELECT jobs_job``-style labels, one per round trip, savepoints left out (the test runs in a transaction).
    A query of several statements, or several statements sent as one pipeline (``capture`` tells which), is one
    round trip, labelled ``SELECT + INSERT jobs_job``."""
    pipelined = getattr(captured, "pipelined", [False] * len(captured.captured_queries))
    labels: list[str] = []
    in_pipeline = False
    for query, was_pipelined in zip(captured.captured_queries, pipelined, strict=True):
        if "SAVEPOINT" in query["sql"]:
            in_pipeline = False
            continue
        statements = [statement.strip() for statement in _top_level(query["sql"]).split(";") if statement.strip()]
        label = " + ".join(_label(statement) for statement in statements)
        if was_pipelined and in_pipeline:
            labels[-1] += f" + {label}"
        else:
            labels.append(label)
        in_pipeline = was_pipelined
    return labels


@contextlib.contextmanager
def capture(db=connection):
    """CaptureQueriesContext that also notes, per statement, whether it was sent in pipeline mode (queued with
    the ones around it, one wait for all their results). Pipeline mode is psycopg's: on SQLite every statement
    is its own round trip."""
    pipelined: list[bool] = []

    def note(execute, sql, params, many, context):
        pipelined.append(_in_pipeline(context["connection"]))
        return execute(sql, params, many, context)

    with CaptureQueriesContext(db) as captured, db.execute_wrapper(note):
        yield captured
    captured.pipelined = pipelined


def _in_pipeline(db) -> bool:
    if db.vendor != "postgresql" or db.connection is None:
        return False
    import psycopg  # the PostgreSQL driver; the embedded default (SQLite) runs without it

    return db.connection.info.pipeline_status != psycopg.pq.PipelineStatus.OFF


def _label(statement: str) -> str:
    table = TABLE.search(statement)
    return f"{statement.split()[0]} {table.group(1)}" if table else statement.split()[0]


def _top_level(sql: str) -> str:
    """``sql`` without its parenthesised parts (subqueries in the select list name other tables first)."""
    depth, kept = 0, []
    for char in sql:
        depth += char == "("
        if depth == 0:
            kept.append(char)
        depth -= char == ")"
    return "".join(kept)


@pytest.fixture
def finished_jobs(alice):
    now = timezone.now()
    jobs = [result.job for result in job_bulk_enqueue(job_type="jobs.canary", payloads=[{}] * 30, owner=alice)]
    Job.objects.filter(id__in=[job.id for job in jobs]).update(status=Job.Status.SUCCEEDED, attempt=1)
    JobAttempt.objects.bulk_create(
        [JobAttempt(job_id=job.id, number=1, outcome=JobAttempt.Outcome.SUCCEEDED, finished_at=now) for job in jobs]
    )
    return jobs


def count(client, method: str, path: str, **extra) -> list[str]:
    getattr(client, method)(path, **extra)  # warm: token stamp, caches
    with capture() as captured:
        response = getattr(client, method)(path, **extra)
    assert response.status_code < 300, response.content
    return kinds(captured)


@pytest.mark.django_db
def test_healthz_is_one_query(client, redis_client):
    assert count(client, "get", "/healthz") == ["SELECT"]


@pytest.mark.django_db
def test_status_poll_queries(client, alice, finished_jobs, redis_client):
    queries = count(client, "get", f"/api/jobs/{finished_jobs[0].id}", **bearer(alice))

    # the token with its user and their permissions; the job (owner-scoped) with its attempts, one query
    assert queries == ["SELECT jobs_apitoken", "SELECT jobs_job"]


@pytest.mark.django_db
def test_list_page_queries(client, alice, finished_jobs, redis_client):
    queries = count(client, "get", "/api/jobs?page=1", **bearer(alice))

    # the token (with the permissions), the count for pagination, one page of jobs (no query per job)
    assert queries == ["SELECT jobs_apitoken", "SELECT jobs_job", "SELECT jobs_job"]


@pytest.mark.django_db
def test_enqueue_queries(client, staff, redis_client, django_capture_on_commit_callbacks):
    headers = bearer(staff)
    body = json.dumps({"type": "jobs.canary", "payload": {"seconds": 0}})
    client.post("/api/jobs", data=body, content_type="application/json", HTTP_IDEMPOTENCY_KEY="warm", **headers)
    with capture() as captured, django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/api/jobs", data=body, content_type="application/json", HTTP_IDEMPOTENCY_KEY="measured", **headers
        )
    assert response.status_code == 202, response.content

    # the token (with the permissions); then on PostgreSQL one round trip: the key's advisory lock (so two
    # requests with one key cannot both pass the cross-type check), and the INSERT guarded by "no job of an API
    # type holds the key, the type is not switched off" (jobs.delivery.enqueue._insert_while_key_free); after commit, the
    # published stamp. SQLite (writers already run one at a time): the key's holder (another type?), the type
    # switch and the INSERT, each on its own.
    if connection.vendor == "postgresql":
        expected = ["SELECT jobs_apitoken", "SELECT + INSERT jobs_job", "UPDATE jobs_job"]
    else:
        expected = ["SELECT jobs_apitoken", "SELECT jobs_job", "SELECT jobs_jobtypeswitch", "INSERT jobs_job",
                    "UPDATE jobs_job"]  # fmt: skip
    assert kinds(captured) == expected
    # One savepoint pair: the enqueue's transaction, a savepoint only because the test runs inside one (outside
    # a transaction the one round trip carries its own BEGIN and COMMIT). The INSERT takes no savepoint of its
    # own (ON CONFLICT DO NOTHING settles a key collision without an error).
    assert sum(query["sql"].startswith(("SAVEPOINT", "RELEASE SAVEPOINT")) for query in captured.captured_queries) == 2


def test_enqueue_outside_a_transaction_is_one_round_trip_with_its_begin_and_commit(
    client, staff, redis_client, parameter_binding
):
    # As under gunicorn: no surrounding transaction, so the lock, the guarded INSERT, BEGIN and COMMIT go together:
    # one pipeline on server-side binding, one simple-protocol query of four statements on client-side binding.
    headers = bearer(staff)
    body = json.dumps({"type": "jobs.canary", "payload": {"seconds": 0}})
    client.post("/api/jobs", data=body, content_type="application/json", HTTP_IDEMPOTENCY_KEY="warm", **headers)
    with capture() as captured:
        response = client.post(
            "/api/jobs", data=body, content_type="application/json", HTTP_IDEMPOTENCY_KEY="measured", **headers
        )
    assert response.status_code == 202, response.content

    assert kinds(captured) == ["SELECT jobs_apitoken", "BEGIN + SELECT + INSERT jobs_job + COMMIT", "UPDATE jobs_job"]
    # server-side: four statements queued in one pipeline; client-side: one query string of four statements
    pipelined = [True] * 4 if parameter_binding == "server-side" else [False]
    assert captured.pipelined == [False, *pipelined, False]
    assert Job.objects.get(id=response.json()["id"]).published_at is not None  # published after the commit
    assert redis_client.llen("default") == 2


def test_a_warm_status_poll_runs_prepared_statements_on_server_side_binding(client, alice, parameter_binding):
    # PostgreSQL parses and plans a prepared statement once per connection: the token lookup and the job read are
    # most of a poll's database time (bench/README.md, api). Client-side binding prepares nothing.
    from django.conf import settings

    job = job_bulk_enqueue(job_type="jobs.canary", payloads=[{}], owner=alice)[0].job
    for _ in range(settings.PREPARED_STATEMENT_THRESHOLD + 1):
        assert client.get(f"/api/jobs/{job.id}", **bearer(alice)).status_code == 200
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        prepared = [row[0] for row in cursor.fetchall()]
    token_lookup = [statement for statement in prepared if 'FROM "jobs_apitoken"' in statement]
    job_read = [statement for statement in prepared if statement.startswith('SELECT "jobs_job"."id"')]
    expected = 1 if parameter_binding == "server-side" else 0
    assert (len(token_lookup), len(job_read)) == (expected, expected), prepared
