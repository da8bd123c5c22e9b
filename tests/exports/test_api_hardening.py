"""The exports API against issue 22's probe: instants the database cannot compare, dates that are not dates,
raw exception text in a failed export, concurrent creates with one Idempotency-Key, and ids in other scripts.

Each of these answered 500, leaked database text or returned another path's export before.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from django.test import Client

from exports import tasks as export_tasks
from exports.models import Export
from exports.services import ExportRequest, export_build, export_create
from jobs.api.tokens import api_token_create
from jobs.models import Job
from jobs.worker.runner import execute
from tests.concurrency import run_at_once
from tests.exports.conftest import make_products

# What the forced failure below raises: text a user must never see, an operator must.
DATABASE_TEXT = 'column "password_hash" does not exist LINE 1: SELECT "secret_table"."password_hash" FROM ...'


def bearer(user) -> dict:
    _, plaintext = api_token_create(user=user, name="tests")
    return {"HTTP_AUTHORIZATION": f"Bearer {plaintext}"}


def post_export(body: dict, **headers):
    return Client().post("/api/exports", body, content_type="application/json", **headers)


def assert_refused_naming(response, field: str) -> None:
    assert response.status_code == 422, response.content
    error = response.json()["error"]
    assert set(error) == {"code", "message", "detail", "retryable"}
    assert error["code"] == "invalid_export"
    assert [e["field"] for e in error["detail"]["errors"]] == [field]


# ---------------------------------------------------------------------------
# A: instants the database cannot represent are refused at the API
# ---------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    "instant",
    ["9999-12-31T23:59:59-23:59",  # the probe's: past year 9999 once in UTC
     "9999-12-31T23:00:00-01:00", "0001-01-01T00:00:00+00:01", "0001-01-01T00:00:00+23:59"],
)  # fmt: skip
def test_an_instant_out_of_range_once_in_utc_is_422_not_a_failed_export(alice, redis_client, instant):
    response = post_export({"source": "products", "format": "csv", "filters": {"updated_since": instant}},
                           **bearer(alice))  # fmt: skip
    assert_refused_naming(response, "filters.updated_since")
    assert not Export.objects.exists()


@pytest.mark.django_db
def test_an_offset_postgresql_would_refuse_is_compared_as_its_utc_instant(alice, media_root, redis_client):
    # PostgreSQL accepts offsets up to 15:59 only; -23:59 is valid ISO 8601 and a real instant.
    make_products(2)
    filters = {"updated_since": "2000-01-01T00:00:00-23:59"}
    created = post_export({"source": "products", "format": "csv", "filters": filters}, **bearer(alice))
    assert created.status_code == 202, created.content
    export_build(export_id=created.json()["id"], job_id=created.json()["job_id"], progress=lambda *a, **k: None)
    export = Export.objects.get(pk=created.json()["id"])
    assert (export.status, export.row_count, export.filters) == (Export.Status.SUCCEEDED, 2, filters)


# ---------------------------------------------------------------------------
# A: a failed export shows a stable code and message, never the exception's text
# ---------------------------------------------------------------------------


def run_build_job(export: Export) -> None:
    """One delivery of the export's exports.build job, as a worker runs it (minus the worker)."""
    job = Job.objects.get(id=export.job_id)
    task = SimpleNamespace(request=SimpleNamespace(id=f"{job.id}.{job.attempt + 1}", hostname="test@host"))
    execute(task=task, spec=export_tasks.build.job_type, job_id=job.id, attempt=job.attempt + 1, schema_version=1)


@pytest.mark.django_db
@pytest.mark.parametrize(("raised", "status"), [(RuntimeError, "failed"), (OSError, "queued")])
def test_a_failed_export_shows_a_stable_error_and_keeps_the_text_for_operators(
    alice, media_root, redis_client, monkeypatch, caplog, raised, status
):
    from sync.export_sources import ProductsExport

    def broken(*, user, filters):
        raise raised(DATABASE_TEXT)

    monkeypatch.setattr(ProductsExport, "rows", staticmethod(broken))
    auth = bearer(alice)
    created = post_export({"source": "products", "format": "jsonl"}, **auth).json()
    run_build_job(Export.objects.get(pk=created["id"]))  # RuntimeError: fails at once; OSError: will be retried

    shown = Client().get(f"/api/exports/{created['id']}", **auth)
    listed = Client().get("/api/exports", **auth).json()["results"][0]
    for representation in (shown.json(), listed):
        assert representation["status"] == status
        assert representation["error"] == {
            "code": "export_failed",
            "message": "the export could not be built; it was logged, and a new export may succeed",
        }
    assert "password_hash" not in shown.content.decode() and "RuntimeError" not in shown.content.decode()
    # Operators keep the details: the export's record (the admin), the job's attempt, the log.
    export = Export.objects.get(pk=created["id"])
    assert DATABASE_TEXT in export.error_message
    assert DATABASE_TEXT in Job.objects.get(id=export.job_id).attempts.get().error_message
    assert DATABASE_TEXT in caplog.text


@pytest.mark.django_db
def test_errors_meant_for_users_keep_their_own_code_and_message(alice, redis_client):
    export, _ = export_create(owner=alice, wanted=ExportRequest(source="products", format="csv", filters={}))
    Export.objects.filter(pk=export.pk).update(status=Export.Status.CANCELLED, error_code="cancelled",
                                               error_message="cancelled on request")  # fmt: skip
    shown = Client().get(f"/api/exports/{export.pk}", **bearer(alice)).json()
    assert shown["error"] == {"code": "cancelled", "message": "cancelled on request"}


# ---------------------------------------------------------------------------
# B: concurrent creates with one Idempotency-Key: one 202, the others replays of it
# ---------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_concurrent_creates_with_one_key_answer_one_export_and_replays(alice, redis_client, settings):
    # Runs on both databases: the requests race between "no export holds this key" and the INSERT on SQLite
    # too (IMMEDIATE transactions serialize the writes, not the read before them).
    settings.EXPORTS_MAX_ACTIVE_PER_USER = 100
    auth = bearer(alice)
    senders, rounds = 10, 3
    for round_number in range(rounds):
        key = f"export-race-{round_number}"

        def send(key: str = key) -> tuple[int, str | None, dict]:
            response = post_export({"source": "products", "format": "csv"}, HTTP_IDEMPOTENCY_KEY=key, **auth)
            return response.status_code, response.get("Idempotent-Replayed"), response.json()

        answers = run_at_once(*[send] * senders)
        assert sorted((status, replayed) for status, replayed, _ in answers) == [(202, "false")] + [(202, "true")] * (
            senders - 1
        ), [body for status, _, body in answers if status != 202][:1]
        assert all(body == answers[0][2] for _, _, body in answers)  # the replays are the original's body
        assert Export.objects.filter(idempotency_key=key).count() == 1


# ---------------------------------------------------------------------------
# C: date filters that parse but are not dates
# ---------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("source", "field"),
    [("products", "updated_since"), ("jobs", "created_since"), ("audit", "since"), ("audit", "until")],
)
@pytest.mark.parametrize(
    "value", ["2026-13-01T00:00:00Z", "2026-02-30T00:00:00Z", "0000-01-01T00:00:00Z", "2026-01-01T25:00:00Z"]
)
def test_a_date_that_is_not_a_date_is_422_naming_the_field(staff, redis_client, source, field, value):
    response = post_export({"source": source, "format": "csv", "filters": {field: value}}, **bearer(staff))
    assert_refused_naming(response, f"filters.{field}")


# ---------------------------------------------------------------------------
# D: ids in other scripts' digits are not ids
# ---------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("digits", ["\u0661", "\uff11", "\u0967", "1\u0660"])  # Arabic-Indic, fullwidth, Devanagari
def test_an_id_in_non_ascii_digits_is_the_apis_404(alice, redis_client, digits):
    auth = bearer(alice)
    created = post_export({"source": "products", "format": "csv"}, **auth).json()
    Export.objects.filter(pk=created["id"]).update(id=int(digits))
    assert Client().get(f"/api/exports/{int(digits)}", **auth).status_code == 200

    for method in ("get", "delete"):
        response = getattr(Client(), method)(f"/api/exports/{digits}", **auth)
        assert response.status_code == 404, response.content
        assert response["Content-Type"] == "application/json"
        assert response.json()["error"]["code"] == "not_found"
    assert Export.objects.get(pk=int(digits)).status == Export.Status.QUEUED


# ---------------------------------------------------------------------------
# The OpenAPI document says what the API now takes and answers
# ---------------------------------------------------------------------------


def test_the_openapi_document_says_which_ids_instants_and_errors_to_expect():
    document = Client().get("/api/openapi.json").json()
    export_id = document["paths"]["/exports/{export_id}"]["get"]["parameters"][0]
    assert export_id["schema"] == {"type": "integer", "minimum": 1, "maximum": 2**63 - 1}
    assert "ASCII digits" in export_id["description"]
    variants = document["paths"]["/exports"]["post"]["requestBody"]["content"]["application/json"]["schema"]["oneOf"]
    products = next(v for v in variants if v["properties"]["source"]["const"] == "products")
    assert "years 1 to 9999 in UTC" in products["properties"]["filters"]["properties"]["updated_since"]["description"]
    assert "export_failed" in document["components"]["schemas"]["Export"]["properties"]["error"]["description"]
