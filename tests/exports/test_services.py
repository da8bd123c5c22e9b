"""Sources, filters, permissions, the build service, links, cancel, expiry and cleanup (no worker needed)."""

from __future__ import annotations

import csv
import gzip
import io
import json
from datetime import UTC, datetime, timedelta

import pytest
from django.core import signing
from django.utils import timezone

from exports.exceptions import (
    DownloadLinkExpired,
    DownloadLinkInvalid,
    ExportGone,
    ExportIdempotencyKeyConflict,
    ExportLimitReached,
    ExportNotFound,
    ExportRequestInvalid,
    ExportSourceForbidden,
)
from exports.models import Export
from exports.services import (
    ExportRequest,
    download_link_issue,
    download_link_open,
    export_build,
    export_cancel_or_delete,
    export_create,
    exports_cleanup,
    exports_storage,
)
from exports.sources import source_check
from jobs.public import audit_entry_list, job_enqueue
from tests.exports.conftest import make_products

pytestmark = pytest.mark.django_db


def _build(export: Export) -> Export:
    reports: list[tuple] = []
    export_build(export_id=export.pk, job_id=export.job_id, progress=lambda *a, **k: reports.append(a))
    export.refresh_from_db()
    return export


def _read(export: Export) -> bytes:
    with exports_storage().open(export.storage_key) as handle:
        data = handle.read()
    return gzip.decompress(data) if export.gzip else data


def test_products_source_filters_active_inactive_and_updated_since(alice, media_root, redis_client):
    make_products(10, inactive_every=3)  # 0, 3, 6, 9 inactive
    export, created = export_create(owner=alice, wanted=ExportRequest(source="products", format="csv",
                                                                      filters={"state": "inactive"}))  # fmt: skip
    assert created and export.job_id
    export = _build(export)
    rows = list(csv.reader(io.StringIO(_read(export).decode(), newline="")))
    assert [row[0] for row in rows[1:]] == ["P0000000", "P0000003", "P0000006", "P0000009"]
    assert export.status == Export.Status.SUCCEEDED and export.row_count == 4 and export.progress == 100
    assert len(export.sha256) == 64 and export.byte_size == len(_read(export))
    assert rows[1][7] == "2026-03-01T12:00:00+00:00"  # RFC 3339 with the offset, no fraction when it is zero

    future = (timezone.now() + timedelta(days=1)).isoformat()
    source = source_check(name="products", user=alice, filters={"updated_since": future})
    assert source.count(user=alice, filters={"updated_since": future}) == 0


@pytest.mark.parametrize(
    ("filters", "field"),
    [({"state": "gone"}, "filters.state"), ({"updated_since": "yesterday"}, "filters.updated_since"),
     ({"colour": "red"}, "filters.colour"), ({"updated_since": 5}, "filters.updated_since")],
)  # fmt: skip
def test_filter_validation_names_the_field(alice, filters, field):
    with pytest.raises(ExportRequestInvalid) as raised:
        source_check(name="products", user=alice, filters=filters)
    assert raised.value.status == 422
    assert field in raised.value.message


def test_unknown_source_format_and_options_are_422(alice):
    for wanted, field in [
        (ExportRequest(source="nope", format="csv", filters={}), "source"),
        (ExportRequest(source="products", format="pdf", filters={}), "format"),
        (ExportRequest(source="products", format="xlsx", filters={}, gzip=True), "gzip"),
        (ExportRequest(source="products", format="jsonl", filters={}, bom=True), "bom"),
    ]:
        with pytest.raises(ExportRequestInvalid) as raised:
            export_create(owner=alice, wanted=wanted)
        assert raised.value.detail["errors"][0]["field"] == field


def test_ordinary_user_cannot_export_audit_or_everyones_jobs(alice, staff, django_user_model):
    with pytest.raises(ExportSourceForbidden):
        source_check(name="audit", user=alice, filters={})
    with pytest.raises(ExportSourceForbidden):
        source_check(name="jobs", user=alice, filters={"all_users": True})
    # Every user's jobs follow the permission model (jobs.view_job), not is_staff.
    staff_only = django_user_model.objects.create_user("staff-no-perm", password="pw", is_staff=True)
    with pytest.raises(ExportSourceForbidden, match="jobs.view_job"):
        source_check(name="jobs", user=staff_only, filters={"all_users": True})
    assert source_check(name="audit", user=staff, filters={}).name == "audit"
    assert source_check(name="jobs", user=staff, filters={"all_users": True}).name == "jobs"


def test_jobs_source_exports_only_the_callers_jobs(alice, bob, staff, media_root, redis_client):
    mine = job_enqueue(job_type="exports.cleanup", owner=alice).job
    job_enqueue(job_type="exports.cleanup", owner=bob)
    export, _ = export_create(owner=alice, wanted=ExportRequest(source="jobs", format="jsonl", filters={}))
    lines = _read(_build(export)).decode().splitlines()
    ids = [line.split('"id":"')[1].split('"')[0] for line in lines]
    # Alice's own cleanup job, and the build job of this very export: never Bob's.
    assert mine.id in ids and all(job_id in (mine.id, export.job_id) for job_id in ids)

    everyone, _ = export_create(owner=staff, wanted=ExportRequest(source="jobs", format="csv",
                                                                  filters={"all_users": True}))  # fmt: skip
    assert _build(everyone).row_count >= 4


def test_jobs_source_shows_an_unexpected_errors_text_only_to_operators(alice, staff, media_root, redis_client):
    from jobs.core.permissions import UNEXPECTED_ERROR_MESSAGE
    from jobs.models import Job

    leaked = 'relation "sync_product" LINE 1: SELECT secret'
    failed = job_enqueue(job_type="exports.cleanup", owner=alice).job
    declared = job_enqueue(job_type="exports.cleanup", owner=alice).job
    Job.objects.filter(id=failed.id).update(status="failed", error_code="ProgrammingError", error_message=leaked)
    Job.objects.filter(id=declared.id).update(status="failed", error_code="permanent_error", error_message="no rows")

    def messages(owner, filters):
        export, _ = export_create(owner=owner, wanted=ExportRequest(source="jobs", format="jsonl", filters=filters))
        rows = [json.loads(line) for line in _read(_build(export)).decode().splitlines()]
        return {row["id"]: row["error_message"] for row in rows if row["id"] in (failed.id, declared.id)}

    assert messages(alice, {}) == {failed.id: UNEXPECTED_ERROR_MESSAGE, declared.id: "no rows"}
    assert messages(staff, {"all_users": True}) == {failed.id: leaked, declared.id: "no rows"}


def test_audit_source_for_staff(staff, alice, media_root, redis_client):
    job = job_enqueue(job_type="exports.cleanup", owner=alice).job
    from jobs.public import job_cancel

    job_cancel(job=job, actor=staff)
    assert audit_entry_list().count() == 1
    export, _ = export_create(owner=staff, wanted=ExportRequest(source="audit", format="xlsx", filters={}))
    assert _build(export).row_count == 1


def test_gzip_jsonl_and_formula_names_in_csv(alice, media_root, redis_client):
    make_products(3, names=["=cmd|' /C calc'!A0", "+1", "@SUM(A1)"])
    export, _ = export_create(owner=alice, wanted=ExportRequest(source="products", format="csv", filters={},
                                                                gzip=True, bom=True))  # fmt: skip
    export = _build(export)
    assert export.file_name.endswith(".csv.gz")
    data = _read(export)
    assert data.startswith(b"\xef\xbb\xbf")
    names = [row[2] for row in csv.reader(io.StringIO(data.decode("utf-8-sig"), newline=""))][1:]
    assert names == ["'=cmd|' /C calc'!A0", "'+1", "'@SUM(A1)"]


def test_per_user_limit_answers_429_with_retry_after(alice, bob, settings, redis_client):
    settings.EXPORTS_MAX_ACTIVE_PER_USER = 2
    wanted = ExportRequest(source="products", format="csv", filters={})
    export_create(owner=alice, wanted=wanted)
    export_create(owner=alice, wanted=wanted)
    with pytest.raises(ExportLimitReached) as raised:
        export_create(owner=alice, wanted=wanted)
    assert raised.value.status == 429 and raised.value.headers["Retry-After"] == "30"
    export_create(owner=bob, wanted=wanted)  # the limit is per user


def test_idempotency_key_answers_the_same_export(alice, redis_client):
    wanted = ExportRequest(source="products", format="csv", filters={})
    first, created = export_create(owner=alice, wanted=wanted, idempotency_key="k1")
    again, created_again = export_create(owner=alice, wanted=wanted, idempotency_key="k1")
    assert (created, created_again, again.pk) == (True, False, first.pk)
    with pytest.raises(ExportIdempotencyKeyConflict) as raised:  # the code /api/jobs answers for the same mistake
        export_create(owner=alice, wanted=ExportRequest(source="products", format="xlsx", filters={}),
                      idempotency_key="k1")  # fmt: skip
    assert (raised.value.status, raised.value.code) == (422, "idempotency_key_conflict")


def test_links_refuse_tampered_expired_other_user_and_deleted(alice, bob, media_root, redis_client, settings):
    make_products(2)
    export, _ = export_create(owner=alice, wanted=ExportRequest(source="products", format="csv", filters={}))
    export = _build(export)
    token = download_link_issue(export=export).path.rsplit("/", 1)[1]
    assert download_link_open(token=token, user=alice).pk == export.pk

    with pytest.raises(DownloadLinkInvalid):
        download_link_open(token=token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1], user=alice)
    with pytest.raises(DownloadLinkInvalid):
        download_link_open(token=token, user=bob)
    forged = signing.dumps({"e": export.pk, "u": bob.pk, "h": export.sha256[:16]}, salt="wrong-salt")
    with pytest.raises(DownloadLinkInvalid):
        download_link_open(token=forged, user=bob)
    settings.EXPORTS_LINK_MAX_AGE_SECONDS = -1
    with pytest.raises(DownloadLinkExpired):
        download_link_open(token=token, user=alice)
    settings.EXPORTS_LINK_MAX_AGE_SECONDS = 900

    assert export_cancel_or_delete(export=export, actor=alice) == "deleted"
    assert not exports_storage().exists(export.storage_key)
    with pytest.raises(ExportGone):
        download_link_open(token=token, user=alice)
    Export.objects.filter(pk=export.pk).delete()
    with pytest.raises(ExportNotFound):
        download_link_open(token=token, user=alice)


def test_cleanup_deletes_files_past_retention_only(alice, media_root, redis_client):
    make_products(2)
    old, _ = export_create(owner=alice, wanted=ExportRequest(source="products", format="csv", filters={}))
    new, _ = export_create(owner=alice, wanted=ExportRequest(source="products", format="jsonl", filters={}))
    old, new = _build(old), _build(new)
    Export.objects.filter(pk=old.pk).update(expires_at=timezone.now() - timedelta(seconds=1))

    assert exports_cleanup() == 1
    old.refresh_from_db()
    new.refresh_from_db()
    assert old.status == Export.Status.EXPIRED and not exports_storage().exists(old.storage_key)
    assert new.status == Export.Status.SUCCEEDED and exports_storage().exists(new.storage_key)


def test_cancel_a_queued_export(alice, redis_client):
    export, _ = export_create(owner=alice, wanted=ExportRequest(source="products", format="csv", filters={}))
    assert export_cancel_or_delete(export=export, actor=alice) == "cancelled"
    export.refresh_from_db()
    assert export.status == Export.Status.CANCELLED
    # The job, delivered anyway, does nothing.
    assert export_build(export_id=export.pk, job_id=export.job_id, progress=lambda *a, **k: None)["skipped"]


def test_ready_email_enqueued_by_name_only_when_declared(alice, media_root, redis_client, monkeypatch):
    from jobs.core import registry
    from jobs.models import Job
    from jobs.public import job_type

    make_products(1)
    quiet, _ = export_create(owner=alice, wanted=ExportRequest(source="products", format="csv", filters={}))
    if not registry.is_declared("emails.export_ready"):
        _build(quiet)
        assert not Job.objects.filter(type="emails.export_ready").exists()
        # The emails app is built separately: a stand-in with the agreed contract, removed after the test.
        monkeypatch.setattr(registry, "_registry", dict(registry._registry))
        job_type("emails.export_ready", queue="emails")(lambda ctx, payload: None)
    export, _ = export_create(owner=alice, wanted=ExportRequest(source="products", format="csv", filters={}))
    _build(export)

    ready = Job.objects.get(type="emails.export_ready", idempotency_key=f"exports:export:{export.pk}:ready")
    # What is ready, for the email to name (the id means nothing to its owner).
    assert ready.payload == {"export_id": export.pk, "user_id": alice.pk, "what": "Products (synced catalog)",
                             "format": "CSV", "rows": 1}  # fmt: skip


def test_copy_csv_is_byte_identical_to_the_python_writer(alice, media_root, redis_client):
    """On PostgreSQL, products CSV is written by COPY; it must be the very file the Python writer makes."""
    from django.db import connection

    from exports.formats import write_csv
    from exports.services import _copy_statement
    from exports.sources import sources_all
    from sync.models import Product

    if connection.vendor != "postgresql":
        pytest.skip("COPY is PostgreSQL's; on SQLite every CSV is written by the Python writer")
    tricky = [
        'comma, "quotes"',
        "line\nbreak",
        "cr\rhere",
        "=1+2",
        "-5",
        "\t tab",
        "ünï ✓",
        "",
        " lead",
        "a\r\nb",
        # every trigger, and first characters either side of the SQL's "above 64 is safe" shortcut
        "+1",
        "@SUM(A1)",
        "\rfirst",
        "?q",
        "Aa",
        "9 lives",
        "~x",
    ]
    make_products(len(tricky), names=tricky)
    Product.objects.filter(supplier_id="P0000001").update(supplier_updated_at=None, sku="")
    # Instants with 0 to 6 fraction digits (PostgreSQL drops trailing zeros, so must the Python writer), a 3-digit year.
    for index, microsecond in enumerate((0, 100000, 120000, 123000, 123400, 123450, 123456, 5, 10), start=2):
        instant = datetime(2026, 11, 29, 8, 9, 43, microsecond, tzinfo=UTC)
        Product.objects.filter(supplier_id=f"P{index:07d}").update(last_changed_at=instant)
    Product.objects.filter(supplier_id="P0000011").update(
        supplier_updated_at=datetime(999, 12, 31, 23, 59, 59, tzinfo=UTC)
    )
    with connection.cursor() as cursor:  # the session's own zone and date style must not matter
        cursor.execute("SET LOCAL TimeZone = 'America/St_Johns'")
        cursor.execute("SET LOCAL DateStyle = 'ISO, DMY'")
    export, _ = export_create(owner=alice, wanted=ExportRequest(source="products", format="csv", filters={}))
    source = sources_all()["products"]
    assert _copy_statement(queryset=source.queryset(user=alice, filters={}), source=source) is not None
    copied = _read(_build(export))

    with connection.cursor() as cursor:  # the COPY set its settings for itself only: the session's are back
        cursor.execute("SELECT current_setting('TimeZone'), current_setting('DateStyle')")
        assert cursor.fetchone() == ("America/St_Johns", "ISO, DMY")
        cursor.execute("SET LOCAL TimeZone = 'UTC'")  # what Django's reads below assume (they ignore the offset)

    python = io.BytesIO()
    source = sources_all()["products"]
    write_csv(columns=source.columns, rows=source.rows(user=alice, filters={}), out=python)
    assert copied == python.getvalue()
    assert export.row_count == len(tricky)
    assert b",2026-11-29T08:09:43.12+00:00\r\n" in copied and b",2026-11-29T08:09:43.00001+00:00\r\n" in copied
    assert b",0999-12-31T23:59:59+00:00," in copied


@pytest.mark.parametrize(("format", "gzipped"), [("csv", False), ("csv", True), ("jsonl", False), ("xlsx", False)])
def test_sha256_and_size_are_the_stored_files_and_the_file_was_moved_into_place(
    alice, media_root, redis_client, monkeypatch, format, gzipped
):
    import hashlib

    from django.core.files.storage import filesystem

    moved: list[tuple[str, str]] = []
    move = filesystem.file_move_safe
    monkeypatch.setattr(
        filesystem, "file_move_safe", lambda old, new, **kw: moved.append((old, new)) or move(old, new, **kw)
    )
    make_products(30, names=["=1+2", 'say "hi"'])
    export, _ = export_create(owner=alice, wanted=ExportRequest(source="products", format=format, filters={},
                                                                gzip=gzipped))  # fmt: skip
    export = _build(export)
    stored = (media_root / export.storage_key).read_bytes()
    assert export.sha256 == hashlib.sha256(stored).hexdigest() and export.byte_size == len(stored)
    # Built beside its final name and renamed there (no copy), readable as any stored file, nothing left behind.
    assert [new for _, new in moved] == [str(media_root / export.storage_key)]
    assert (media_root / export.storage_key).stat().st_mode & 0o777 == 0o644
    assert [path.name for path in (media_root / "exports").rglob("*") if path.is_file()] == [export.file_name]


def test_a_failed_attempt_leaves_no_partial_file_and_a_killed_ones_goes_with_the_next(alice, media_root, redis_client):
    from sync.export_sources import ProductsExport

    make_products(5)
    export, _ = export_create(owner=alice, wanted=ExportRequest(source="products", format="jsonl", filters={}))
    killed = media_root / "exports" / str(export.pk) / "0123456789abcdef" / ".partial-killed"
    killed.parent.mkdir(parents=True)
    killed.write_bytes(b"half a file")

    rows = ProductsExport.rows

    def broken_rows(*, user, filters):
        yield from rows(user=user, filters=filters)
        raise OSError("disk gone")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ProductsExport, "rows", staticmethod(broken_rows))
        with pytest.raises(OSError, match="disk gone"):
            _build(export)
    assert not killed.exists()  # the attempt began by deleting what a killed one left
    assert not [path for path in (media_root / "exports").rglob("*") if path.is_file()]  # its own partial file went too
    assert Export.objects.get(pk=export.pk).storage_key == ""

    export = _build(export)  # the retry
    assert export.status == Export.Status.SUCCEEDED and export.row_count == 5


def test_progress_total_is_the_planners_estimate_for_big_exports_else_the_count(alice, media_root, redis_client,
                                                                                monkeypatch):  # fmt: skip
    from django.db import connection

    from exports import services
    from sync.export_sources import ProductsExport

    if connection.vendor != "postgresql":
        pytest.skip("the row estimate comes from PostgreSQL's planner; on SQLite the export counts rows instead")
    make_products(40, inactive_every=4)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE sync_product")
    counted: list[dict] = []
    count = ProductsExport.count
    monkeypatch.setattr(ProductsExport, "count", classmethod(lambda cls, **kw: counted.append(kw) or count(**kw)))

    small, _ = export_create(owner=alice, wanted=ExportRequest(source="products", format="csv",
                                                               filters={"state": "active"}))  # fmt: skip
    assert _build(small).rows_estimated == 30 and len(counted) == 1  # below EXACT_COUNT_BELOW: counted exactly

    monkeypatch.setattr(services, "EXACT_COUNT_BELOW", 10)
    big, _ = export_create(owner=alice, wanted=ExportRequest(source="products", format="csv", filters={}))
    big = _build(big)
    assert (big.rows_estimated, big.row_count, len(counted)) == (40, 40, 1)  # the planner's figure, no count
