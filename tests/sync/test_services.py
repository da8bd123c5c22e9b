"""Sync services without a worker: validation, idempotent upserts, webhook signatures."""

import hashlib
import hmac
import json
import time
from decimal import Decimal

import pytest

from sync.models import Product, WebhookEvent
from sync.services import (
    WebhookRejected,
    product_clean,
    products_upsert,
    webhook_accept,
    webhook_fan_out,
    webhook_verify,
)
from sync.simulator import SimulatorConfig, make_product

SECRET = "whsec-test"


def sign(body: bytes, *, at: int | None = None, secret: str = SECRET) -> str:
    at = int(time.time()) if at is None else at
    digest = hmac.new(secret.encode(), f"{at}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={at},v1={digest}"


def test_valid_record_is_cleaned():
    fields, reason = product_clean(make_product(5, SimulatorConfig()))
    assert reason == "" and fields["supplier_id"] == "SUP-0000005" and isinstance(fields["price"], Decimal)


@pytest.mark.parametrize(
    ("change", "reason"),
    [({"price": "twelve"}, "is not a number"), ({"stock": -5}, "non-negative integer"), ({"name": ""}, "missing name"),
     ({"id": None}, "missing or invalid id"), ({"currency": "EURO"}, "3-letter code"), ({"price": "-1.00"}, "non-negative")],
)  # fmt: skip
def test_invalid_records_are_rejected_with_a_reason(change, reason):
    fields, why = product_clean({**make_product(5, SimulatorConfig()), **change})
    assert fields is None and reason in why


@pytest.mark.django_db
def test_upsert_creates_then_changes_nothing_then_updates_only_changed():
    v1 = [product_clean(make_product(i, SimulatorConfig()))[0] for i in range(995, 1005)]
    v2 = [product_clean(make_product(i, SimulatorConfig(catalog_version=2)))[0] for i in range(995, 1005)]

    first = products_upsert(records=v1)
    stamp = Product.objects.get(supplier_id="SUP-0000999").last_changed_at
    second = products_upsert(records=v1)
    third = products_upsert(records=v2)

    assert (first.created, first.updated, first.unchanged) == (10, 0, 0)
    assert (second.created, second.updated, second.unchanged) == (0, 0, 10)
    assert Product.objects.get(supplier_id="SUP-0000999").last_changed_at == stamp
    assert (third.created, third.updated, third.unchanged) == (0, 1, 9)  # only SUP-0001000 changed


def test_signature_checks(settings):
    settings.SUPPLIER_WEBHOOK_SECRET = SECRET
    body = b'{"id": "evt_1"}'
    webhook_verify(body=body, signature_header=sign(body))  # no error

    cases = {
        "": "invalid_signature",
        "t=abc,v1=00": "invalid_signature",
        "t=\u00b2,v1=" + "0" * 64: "invalid_signature",  # '²'.isdigit() is True, int('²') raises
        "t=" + "9" * 5000 + ",v1=" + "0" * 64: "invalid_signature",
        sign(body) + "," + sign(body).split(",")[0]: "invalid_signature",  # two t: two headers joined
        sign(body, secret="other"): "invalid_signature",
        sign(body + b" "): "invalid_signature",
        sign(body, at=int(time.time()) - 301): "stale_signature",
        sign(body, at=int(time.time()) + 400): "stale_signature",
    }
    for header, code in cases.items():
        with pytest.raises(WebhookRejected) as caught:
            webhook_verify(body=body, signature_header=header)
        assert caught.value.code == code and caught.value.status == 401


@pytest.mark.django_db
def test_webhook_fans_out_once_per_event(settings, redis_client):
    from jobs.models import Job

    settings.SUPPLIER_WEBHOOK_SECRET = SECRET
    ids = [f"SUP-{i:07d}" for i in range(1, 1201)]
    body = json.dumps({"id": "evt_42", "type": "products.updated", "data": {"product_ids": ids + ids[:5]}}).encode()

    settings.SUPPLIER_WEBHOOK_MAX_PRODUCT_IDS = 1205
    first = webhook_accept(body=body, signature_header=sign(body))
    again = webhook_accept(body=body, signature_header=sign(body))

    assert (first.duplicate, first.products) == (False, 1200)
    assert (again.duplicate, again.products, again.fan_out_job_id) == (True, 0, None)
    # The request enqueued one fan-out job, not 1,200 product jobs; the fan-out job does that, once.
    assert Job.objects.filter(type="sync.fetch_product").count() == 0
    fan_out = Job.objects.get(type="sync.webhook_fan_out")
    assert fan_out.id == first.fan_out_job_id
    event = WebhookEvent.objects.get(event_id="evt_42")
    assert webhook_fan_out(event_pk=event.pk) == 1200
    assert webhook_fan_out(event_pk=event.pk) == 1200  # a retried fan-out adds nothing
    assert Job.objects.filter(type="sync.fetch_product").count() == 1200
    assert WebhookEvent.objects.get(event_id="evt_42").jobs_enqueued == 1200


class _HookServer:
    """A local endpoint standing in for a frontend's revalidation route."""

    def __init__(self, status: int):
        import http.server
        import threading

        received = self.received = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                length = int(self.headers["Content-Length"])
                received.append((self.headers["Authorization"], json.loads(self.rfile.read(length))))
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api/revalidate"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize(
    ("status", "outcome"), [(200, None), (503, "SupplierTransientError"), (403, "SupplierPermanentError")]
)
def test_freshness_call_posts_with_the_secret_and_classifies_failures(settings, status, outcome):
    from sync.services import freshness_call

    hook = _HookServer(status)
    settings.SYNC_FRESHNESS_HOOKS = [{"url": hook.url, "secret": "fresh-secret"}]
    try:
        if outcome is None:
            assert (
                freshness_call(hook_index=0, payload={"hook": 0, "scope": "products", "product_ids": ["SUP-1"]}) == 200
            )
        else:
            with pytest.raises(Exception) as caught:
                freshness_call(hook_index=0, payload={"hook": 0, "scope": "catalog", "product_ids": []})
            assert type(caught.value).__name__ == outcome
    finally:
        hook.close()
    authorization, body = hook.received[0]
    assert authorization == "Bearer fresh-secret" and "hook" not in body


@pytest.mark.django_db
def test_changed_product_enqueues_one_notification_per_hook(settings, redis_client):
    from jobs.models import Job
    from sync.services import freshness_notify

    settings.SYNC_FRESHNESS_HOOKS = [
        {"url": "http://a.invalid/", "secret": "x"},
        {"url": "http://b.invalid/", "secret": "y"},
    ]

    assert freshness_notify(reason="product SUP-1 changed", product_ids=["SUP-1"], version="abc") == 2
    freshness_notify(reason="product SUP-1 changed", product_ids=["SUP-1"], version="abc")  # same change again

    jobs = Job.objects.filter(type="sync.notify_freshness")
    assert jobs.count() == 2 and {job.payload["hook"] for job in jobs} == {0, 1}


@pytest.mark.django_db
def test_abandoning_a_stuck_run_frees_the_way_for_a_new_one(capsys):
    from django.core.management import call_command

    from jobs.models import Job
    from sync.exceptions import SyncPageClosed, SyncRunInProgress
    from sync.models import SyncPage, SyncRun
    from sync.services import sync_page_fetch, sync_run_for_job

    # Its job still runs (a stuck page, say): only an operator may end this run.
    stuck = sync_run_for_job(job_id=Job.objects.create(type="sync.run", queue="sync", status="running").id, full=True)
    SyncRun.objects.filter(pk=stuck.pk).update(total_pages=3)
    SyncPage.objects.bulk_create([SyncPage(run=stuck, number=n) for n in (1, 2, 3)])
    with pytest.raises(SyncRunInProgress):
        sync_run_for_job(job_id="job-b", full=True)

    call_command("sync_abandon_run", str(stuck.pk))

    stuck.refresh_from_db()
    assert (stuck.status, stuck.pages_failed) == ("failed", 3)
    with pytest.raises(SyncPageClosed, match="page 2 of sync run .* is failed and the run is failed"):
        sync_page_fetch(run_id=stuck.pk, number=2)  # a late page job does nothing, and does not say it succeeded
    assert sync_run_for_job(job_id="job-b", full=True).status == "running"


@pytest.mark.django_db
def test_sync_admin_pages_render(client, django_user_model):
    from sync.services import sync_run_for_job

    client.force_login(django_user_model.objects.create_superuser("op", "op@example.com", "pw"))
    run = sync_run_for_job(job_id="job-x", full=True)
    for url in ("/admin/sync/syncrun/", f"/admin/sync/syncrun/{run.pk}/change/", "/admin/sync/product/",
                "/admin/sync/webhookevent/"):  # fmt: skip
        assert client.get(url).status_code == 200, url


@pytest.mark.django_db
def test_a_sync_run_whose_job_gave_up_no_longer_blocks_later_syncs():
    from jobs.core.registry import get
    from jobs.models import Job
    from sync.services import sync_run_for_job

    died = Job.objects.create(type="sync.run", queue="sync", status="running", attempt=1)
    orphan = sync_run_for_job(job_id=died.id, full=True)  # it died before its fan-out: no pages yet
    Job.objects.filter(id=died.id).update(status="failed")

    # What the runner (or the reaper, once attempts are spent) does after moving the job to failed/dead.
    get("sync.run").on_give_up({"full": True}, "supplier_refused", "401 from the supplier")

    orphan.refresh_from_db()
    assert orphan.status == "failed" and orphan.finished_at is not None
    assert sync_run_for_job(job_id="the-next-job", full=True).status == "running"


@pytest.mark.django_db
def test_a_give_up_never_ends_a_run_whose_job_still_lives():
    from jobs.core.registry import get
    from jobs.models import Job
    from sync.exceptions import SyncRunInProgress
    from sync.services import sync_run_for_job

    alive = Job.objects.create(type="sync.run", queue="sync", status="retrying", attempt=1)  # between two polls
    running = sync_run_for_job(job_id=alive.id, full=True)
    with pytest.raises(SyncRunInProgress):
        sync_run_for_job(job_id="a-second-job", full=True)

    # The second job failed with sync_run_in_progress and gives up: the first run is not its to end.
    get("sync.run").on_give_up({"full": True}, "sync_run_in_progress", "sync run is still running")

    running.refresh_from_db()
    assert running.status == "running"


@pytest.mark.django_db
def test_a_run_left_by_a_cancelled_job_is_ended_when_the_next_sync_starts():
    from jobs.models import Job
    from sync.services import sync_run_for_job

    cancelled = Job.objects.create(type="sync.run", queue="sync", status="cancelled", attempt=1)
    left = sync_run_for_job(job_id=cancelled.id, full=True)

    assert sync_run_for_job(job_id="the-next-job", full=True).status == "running"
    left.refresh_from_db()
    assert left.status == "failed"
