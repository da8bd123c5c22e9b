"""The OpenAPI document is the contract: schemathesis fuzzes every operation it holds, as an operator,
as an ordinary user and anonymously, then walks its links (enqueue -> get -> cancel) statefully.

Whatever the document holds when the tests run is fuzzed (other apps add paths and job types), through
the real WSGI application on the test database (PostgreSQL in CI). Bounded so ``make test`` stays fast:
FUZZ_MAX_EXAMPLES examples per operation and role, no per-example deadline, and a wall-clock budget
per test after which no more examples are checked (FUZZ_BUDGET_SECONDS). The budget never shrinks a
test silently: the run's summary says how many examples each test checked and how many the budget
skipped, and a test whose budget ran out before FUZZ_MIN_EXAMPLES were checked fails.
"""

from __future__ import annotations

import os
import time

import pytest
import schemathesis
from django.contrib.auth.models import Permission
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, Phase, settings
from schemathesis import checks

from exports.models import Export
from jobs.api.tokens import api_token_create
from jobs.coordination.ratelimit import KEY_PREFIX
from jobs.core.schema import validate
from jobs.models import Job

MAX_EXAMPLES = int(os.environ.get("FUZZ_MAX_EXAMPLES", "25"))
BUDGET_SECONDS = float(os.environ.get("FUZZ_BUDGET_SECONDS", "20"))
# A test whose budget ran out before it checked this many examples (responses, in a stateful walk) fails.
MIN_EXAMPLES = min(MAX_EXAMPLES, int(os.environ.get("FUZZ_MIN_EXAMPLES", "10")))
FUZZ_SETTINGS = settings(
    max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
    phases=[Phase.explicit, Phase.generate],  # no shrinking: a failure is reported as found, fast
    suppress_health_check=list(HealthCheck),
)  # fmt: skip

document = schemathesis.openapi.from_wsgi("/api/openapi.json", get_wsgi_application())
# /healthz lives at the site root (an operation-level server), which schemathesis' pytest integration does
# not apply (it asks /api/healthz); test_healthz_keeps_its_documented_contract checks it instead.
schema = document.exclude(path="/healthz")


@pytest.fixture
def wsgi_keeps_the_test_connection():
    """The WSGI handler closes database connections when a request ends; inside a test that would close
    the test's transaction. Django's own test client disconnects the same signal handlers."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def callers(db, django_user_model, redis_client, settings, wsgi_keeps_the_test_connection) -> dict[str, dict[str, str]]:
    """Authorization headers per role; limits raised so fuzzing measures the contract, not the limiter."""
    settings.JOBS_API_ENQUEUE_RATE_LIMIT = 0
    settings.CRON_SECRET = "fuzz-cron-secret"
    settings.SUPPLIER_WEBHOOK_SECRET = "fuzz-webhook-secret"
    for key in redis_client.scan_iter(f"{KEY_PREFIX}*"):
        redis_client.delete(key)
    operator = django_user_model.objects.create_user("fuzz-operator", password="pw", is_staff=True)
    operator.user_permissions.add(*Permission.objects.filter(content_type__app_label="jobs", content_type__model="job"))
    user = django_user_model.objects.create_user("fuzz-user", password="pw")
    tokens = {
        "operator": api_token_create(user=operator, name="fuzz", scopes=["read", "enqueue", "ops"])[1],
        "user": api_token_create(user=user, name="fuzz", scopes=["read", "enqueue", "ops"])[1],
    }
    return {role: {"Authorization": f"Bearer {token}"} for role, token in tokens.items()} | {"anonymous": {}}


class Budget:
    """One test's wall-clock budget, and how many examples it let through (checked) or not (skipped)."""

    def __init__(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds
        self.checked = self.skipped = 0

    def exhausted(self) -> bool:
        """Whether the budget is spent, for one more example: then it is skipped, else checked (counted either way)."""
        if time.monotonic() > self.deadline:
            self.skipped += 1
            return True
        self.checked += 1
        return False

    def verdict(self, nodeid: str) -> str | None:
        """Says what the test checked in the run's summary; the failure message when the budget shrank it too far."""
        line = f"{self.checked} examples checked, {self.skipped} skipped by the {BUDGET_SECONDS:g} s budget: {nodeid}"
        FuzzReport.line(line)
        if self.skipped and self.checked < MIN_EXAMPLES:
            return (f"the fuzzing budget ran out after {self.checked} examples (floor {MIN_EXAMPLES}): this machine "
                    f"is too slow for FUZZ_BUDGET_SECONDS={BUDGET_SECONDS:g}; raise it")  # fmt: skip
        return None


class FuzzReport:
    """A section of the run's terminal summary (shown with -q too): the examples each fuzz test checked."""

    lines: list[str] = []

    @classmethod
    def line(cls, text: str) -> None:
        cls.lines.append(text)

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if self.lines:
            terminalreporter.section("fuzzing: examples checked per test")
            for text in self.lines:
                terminalreporter.write_line(text)


@pytest.fixture
def budget(request: pytest.FixtureRequest):
    """The test's budget (one for all its examples); its count goes to the summary, and under the floor it fails."""
    if not request.config.pluginmanager.has_plugin("fuzz-report"):
        request.config.pluginmanager.register(FuzzReport(), "fuzz-report")
    spent = Budget(BUDGET_SECONDS)
    yield spent
    failure = spent.verdict(request.node.nodeid)
    if failure:
        pytest.fail(failure)


def _excused_checks(case, response) -> list:
    """Checks that do not apply to this answer, each for a reason the schema cannot express."""
    excused = []
    if response.status_code == 422 and b"idempotency_key_conflict" in response.content:
        # The fuzzer reuses generated keys across examples: a schema-valid request reusing a key for another
        # payload is rightly refused (IETF idempotency draft), which "valid data accepted" cannot know.
        excused.append(checks.positive_data_acceptance)
    if response.status_code == 422 and (
        b"duplicate_idempotency_key" in response.content or b"batch_refused" in response.content
    ):
        # A bulk enqueue whose items repeat a key, or an atomic one with an item the caller may not enqueue: the
        # schema cannot say "unique keys across items" or "types this caller may use", the API refuses both.
        excused.append(checks.positive_data_acceptance)
    if response.status_code == 413 and b"too_many_items" in response.content:
        # More items than the bulk enqueue's maxItems: 413 naming the limit (issue 30), a status schemathesis does
        # not list among its expected refusals of schema-violating data.
        excused.append(checks.negative_data_rejection)
    if response.status_code == 422 and b"invalid_body" in response.content and b"are not accepted" in response.content:
        # A string holding NUL or a lone surrogate escape: valid JSON Schema strings that PostgreSQL text cannot store
        # (jobs.api.http.find_unstorable). No pattern in the document excludes them; the fuzzer reaches them once the
        # enqueue body's fields (run_at, delay_seconds) change which examples it derives.
        excused.append(checks.positive_data_acceptance)
    if response.status_code == 422 and b"invalid_schedule" in response.content:
        # A run_at beyond the horizon (now + JOBS_SCHEDULE_HORIZON_DAYS: it moves with the clock), a leap second or
        # a time before year 1 in UTC is a valid date-time the server cannot use; a date-time schema cannot say so.
        excused.append(checks.positive_data_acceptance)
    if case.operation.path.startswith("/exports/"):
        # DELETE on an export cancels it or deletes its file, as its operation documents: the export stays
        # readable as a record of what happened (status cancelled, file gone), so "deleted resource still
        # available" does not apply. The stateful walk reaches that sequence whenever its seed leads there.
        excused.append(checks.use_after_free)
    return excused


def _call(case, headers: dict[str, str]) -> None:
    # Every check schemathesis has: no 5xx, status codes, headers, content types and bodies as documented,
    # schema-violating requests refused and schema-valid ones not refused, 405 for undeclared methods, ...
    sent = {**(case.headers or {}), **headers}
    response = case.call(headers=sent)
    case.validate_response(response, headers=sent, excluded_checks=_excused_checks(case, response))


@pytest.mark.parametrize("role", ["operator", "user", "anonymous"])
@schema.parametrize()
@FUZZ_SETTINGS
def test_every_documented_operation_keeps_the_contract(case, role, callers, budget):
    if budget.exhausted():
        return
    _call(case, callers[role])


# One walk per resource: over the whole document the derandomized walk spends its few steps on whichever
# operations come first (more each time an app adds paths), and one resource's links may go unvisited.
WALKS = {
    # enqueue -> get, enqueue -> cancel, get -> cancel
    "jobs": ("^/jobs", ("POST /jobs", (202,)), ("GET /jobs/{job_id}", (200,)),
             ("POST /jobs/{job_id}/cancel", (200, 202, 409))),
    # request -> get, request -> delete (cancel or delete the file)
    "exports": ("^/exports", ("POST /exports", (202,)), ("GET /exports/{export_id}", (200,)),
                ("DELETE /exports/{export_id}", (200, 202))),
}  # fmt: skip


@pytest.mark.parametrize("resource", list(WALKS))
def test_stateful_links_keep_the_contract(resource, callers, budget):
    """Walks the document's links between one resource's operations (create -> get -> cancel) as the operator."""
    path_regex, *expected = WALKS[resource]

    answered: list[tuple[str, int]] = []

    class Workflow(schema.include(path_regex=path_regex).as_state_machine()):
        def teardown(self):
            # Each scenario starts from the same database: hypothesis replays choices and expects the same
            # answers (leftover jobs would turn an earlier 202 into an idempotency conflict, leftover queued
            # exports into the per-user limit's 429).
            Export.objects.all().delete()
            Job.objects.all().delete()

        def call(self, case, **kwargs):
            response = super().call(case, **kwargs)
            answered.append((case.operation.label, response.status_code))
            return response

        def get_call_kwargs(self, case):
            return {"headers": {**(case.headers or {}), **callers["operator"]}}

        def validate_response(self, response, case, additional_checks=None, **kwargs):
            if budget.exhausted():
                return
            # The token is ours, not one schemathesis generated, so its "auth ignored?" probe would misread
            # every success; the parametrized test above covers auth (anonymous calls must be refused).
            excluded = [checks.ignored_auth, *_excused_checks(case, response)]
            case.validate_response(response, additional_checks=additional_checks, excluded_checks=excluded,
                                   transport_kwargs=kwargs or None, recorder=self.recorder)  # fmt: skip

    Workflow.run(settings=settings(FUZZ_SETTINGS, max_examples=max(5, MAX_EXAMPLES // 2), stateful_step_count=6))
    # The links were followed: a resource was created, then fetched and cancelled by the id it came back with.
    for label, statuses in expected:
        assert any(seen == label and status in statuses for seen, status in answered), (label, answered)


def test_the_fuzzer_sees_every_documented_operation():
    """Guards the test above against fuzzing nothing (e.g. a document that failed to load)."""
    operations = {f"{op.method.upper()} {op.path}" for op in (result.ok() for result in schema.get_all_operations())}
    assert {"POST /jobs", "POST /jobs/bulk", "GET /jobs", "GET /jobs/{job_id}", "POST /jobs/{job_id}/cancel",
            "POST /webhooks/supplier"} <= operations  # fmt: skip


@pytest.mark.django_db
def test_healthz_keeps_its_documented_contract(client, redis_client):
    operation = client.get("/api/openapi.json").json()["paths"]["/healthz"]["get"]
    response = client.get("/healthz")
    documented = operation["responses"][str(response.status_code)]["content"]["application/json"]["schema"]
    assert response.status_code == 200 and validate(response.json(), documented) == []
    assert [client.generic(method, "/healthz").status_code for method in ("POST", "TRACE", "QUERY")] == [405] * 3
