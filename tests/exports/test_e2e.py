"""Exports through real worker processes, the database and Redis: progress, download, links, kill, cancel, cleanup."""

from __future__ import annotations

import csv
import io
import signal
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from exports.models import Export
from jobs.models import Job
from jobs.services import job_enqueue
from jobs.worker.maintenance import job_rescue_orphans
from tests.processes import wait_for

pytestmark = pytest.mark.worker


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _request(client: Client, **body) -> dict:
    response = client.post("/api/exports", body, content_type="application/json")
    assert response.status_code == 202, response.content
    assert response["Location"] == f"/api/exports/{response.json()['id']}"
    return response.json()


def _wait_export(export_id: int, *statuses: str, timeout: float = 60) -> Export:
    return wait_for(lambda: Export.objects.filter(pk=export_id, status__in=statuses).first(), timeout=timeout,
                    message=f"export {export_id} to be {'/'.join(statuses)}")  # fmt: skip


def _download(client: Client, url: str) -> bytes:
    response = client.get(url)
    assert response.status_code == 200, getattr(response, "content", b"")[:500]
    return b"".join(response.streaming_content)


def test_request_watch_progress_download_and_links(exports_worker, alice, bob, settings):
    exports_worker()
    client = _client(alice)
    created = _request(client, source="slow", format="csv", filters={"rows": 3000, "delay_ms": 2})
    seen: set[int] = set()

    def finished() -> dict | None:
        body = client.get(created["url"]).json()
        seen.add(body["progress"]["percent"])
        return body if body["status"] == "succeeded" else None

    body = wait_for(finished, timeout=90, interval=0.2, message="the export to succeed")
    assert any(0 < percent < 100 for percent in seen), seen  # progress moved while it ran
    assert (body["row_count"], body["progress"]["percent"]) == (3000, 100)
    assert body["download_url"].startswith("http://testserver/exports/download/")

    path = body["download_url"].removeprefix("http://testserver")
    response = client.get(path)
    assert response["Content-Disposition"] == f'attachment; filename="{body["file_name"]}"'
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode(), newline="")))
    assert len(rows) == 3001 and rows[1] == ["0", "'=formula 0", "2026-03-01T00:00:00+00:00"]
    # The export turns succeeded inside the job's body; the job's own row follows when the body returns.
    wait_for(lambda: Job.objects.filter(id=body["job_id"], status="succeeded").exists(), timeout=30,
             message="the job to record its success")  # fmt: skip

    assert _client(bob).get(path).status_code == 403  # someone else's link
    assert Client().get(path).status_code == 403  # nobody's session
    assert client.get(path[:-3] + "abc").status_code == 403  # tampered
    settings.EXPORTS_LINK_MAX_AGE_SECONDS = 0
    wait_for(lambda: client.get(path).status_code == 410, timeout=5, message="the link to expire")
    settings.EXPORTS_LINK_MAX_AGE_SECONDS = 900
    assert client.delete(created["url"]).json()["outcome"] == "deleted"
    assert client.get(path).status_code == 410  # the file is gone


def test_worker_killed_mid_export_retries_from_scratch_into_a_correct_file(exports_worker, alice, settings):
    settings.JOBS_ORPHAN_GRACE_SECONDS = 1
    doomed = exports_worker(name="doomed")
    client = _client(alice)
    created = _request(client, source="slow", format="jsonl", filters={"rows": 4000, "delay_ms": 2})
    wait_for(lambda: Export.objects.filter(pk=created["id"], row_count__gt=0).exists(), timeout=60,
             message="the export to be under way")  # fmt: skip
    assert Export.objects.get(pk=created["id"]).storage_key == ""  # nothing downloadable mid-way

    doomed.kill_group(signal.SIGKILL)
    doomed.process.wait(timeout=10)
    exports_worker(name="survivor")
    wait_for(lambda: job_rescue_orphans().requeued or None, timeout=30, interval=0.5, message="the rescue")

    export = _wait_export(created["id"], "succeeded", timeout=90)
    lines = _download(client, client.get(created["url"]).json()["download_url"]).decode().splitlines()
    assert len(lines) == 4000 and lines[-1].startswith('{"n":3999,')
    # The export row says succeeded from inside the job body; the attempt's own row is written just after it returns.
    wait_for(lambda: Job.objects.filter(id=export.job_id, status="succeeded").exists(), timeout=30,
             message="the job to record its outcome")  # fmt: skip
    assert list(Job.objects.get(id=export.job_id).attempts.values_list("outcome", flat=True)) == ["lost", "succeeded"]


def test_cancel_mid_export_stops_it_and_keeps_no_file(exports_worker, alice, media_root):
    exports_worker()
    client = _client(alice)
    created = _request(client, source="slow", format="csv", filters={"rows": 20000, "delay_ms": 2})
    wait_for(lambda: Export.objects.filter(pk=created["id"], row_count__gt=0).exists(), timeout=60,
             message="the export to be under way")  # fmt: skip

    response = client.delete(created["url"])
    assert response.status_code == 202 and response.json()["outcome"] == "cancel_requested"

    export = _wait_export(created["id"], "cancelled", timeout=30)
    wait_for(lambda: Job.objects.filter(id=export.job_id, status="cancelled").exists(), timeout=30,
             message="the job to record its cancellation")  # fmt: skip
    assert export.storage_key == ""
    assert not list((media_root / "exports" / str(export.pk)).rglob("*.csv"))


def test_cleanup_job_deletes_files_past_retention(exports_worker, alice, media_root):
    exports_worker()
    client = _client(alice)
    created = _request(client, source="slow", format="csv", filters={"rows": 10, "delay_ms": 0})
    export = _wait_export(created["id"], "succeeded")
    assert (media_root / export.storage_key).exists()
    Export.objects.filter(pk=export.pk).update(expires_at=timezone.now() - timedelta(minutes=1))

    job = job_enqueue(job_type="exports.cleanup").job
    wait_for(lambda: Job.objects.filter(id=job.id, status="succeeded").exists(), timeout=30, message="cleanup")

    assert Job.objects.get(id=job.id).result == {"expired": 1}
    assert Export.objects.get(pk=export.pk).status == "expired"
    assert not (media_root / export.storage_key).exists()


def test_products_csv_by_a_worker_matches_the_python_writer(exports_worker, alice):
    """On PostgreSQL the worker writes products CSV with COPY on a connection of its own; same bytes either way."""
    from exports.formats import write_csv
    from exports.sources import sources_all
    from tests.exports.conftest import make_products

    make_products(2500, inactive_every=4, names=["=SUM(A1)", 'say "hi"', "multi\nline"])
    exports_worker()
    client = _client(alice)
    created = _request(client, source="products", format="csv", filters={"state": "active"})
    _wait_export(created["id"], "succeeded")
    data = _download(client, client.get(created["url"]).json()["download_url"])

    expected = io.BytesIO()
    source = sources_all()["products"]
    write_csv(columns=source.columns, rows=source.rows(user=alice, filters={"state": "active"}), out=expected)
    assert data == expected.getvalue() and data.count(b"\r\n") == 1 + 2500 - 625
