"""The exports -> emails contract end to end: a finished export mails its owner exactly once, through a real
worker process and a real SMTP server (the two apps only share the job type name ``emails.export_ready``)."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
from django.test import Client

from emails.models import EmailMessage
from exports.models import Export
from jobs.models import Job
from jobs.public import job_enqueue, job_type_is_declared
from jobs.services import job_bulk_replay, publish_messages
from tests.conftest import email_env
from tests.emails.test_delivery_e2e import skipped_deliveries, wait_until_every_job_and_email_ended
from tests.exports.conftest import make_products
from tests.processes import wait_for

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]
SITE_URL = "https://shop.example"
DONE = (Job.Status.SUCCEEDED, Job.Status.FAILED, Job.Status.DEAD)


def _finished(job_id: str) -> Job:
    return wait_for(lambda: Job.objects.filter(id=job_id, status__in=DONE).first(), timeout=30, interval=0.1,
                    message=f"job {job_id} to finish")  # fmt: skip


def test_a_finished_export_mails_its_owner_the_exports_page_once(
    start_worker, smtp_server, django_user_model, settings, tmp_path
):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    worker = start_worker(queues="exports,emails", extra_env={
        "MEDIA_ROOT": settings.MEDIA_ROOT, **email_env(smtp_server, SITE_URL=SITE_URL)})  # fmt: skip
    assert job_type_is_declared("emails.export_ready")  # else exports would (rightly) enqueue nothing
    make_products(20)
    ada = django_user_model.objects.create_user("ada", email="ada@example.com", password="pw")
    client = Client()
    client.force_login(ada)

    response = client.post("/api/exports", {"source": "products", "format": "csv"}, content_type="application/json")
    assert response.status_code == 202, response.content
    export_id = response.json()["id"]
    body = wait_for(lambda: (b := client.get(f"/api/exports/{export_id}").json())["status"] == "succeeded" and b,
                    timeout=60, interval=0.2, message=f"export {export_id} to succeed")  # fmt: skip
    token = body["download_url"].rsplit("/", 1)[-1]
    assert len(token) > 20  # the signed link a mail must never carry

    key = f"exports:export:{export_id}:ready"
    email = wait_for(lambda: EmailMessage.objects.filter(key=key, state="sent").first(), timeout=30, interval=0.1,
                     message=f"the email {key} to be sent")  # fmt: skip
    (received,) = smtp_server.wait_for_count(1, timeout=5)
    message = received.parsed
    assert received.rcpt_tos == ("ada@example.com",) and message["To"] == "ada@example.com"
    assert message["Message-ID"].strip("<>") == email.message_id.strip("<>")
    # What is ready, not its id.
    assert message["Subject"] == "Your export is ready: Products (synced catalog), CSV, 20 rows"
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert f"{SITE_URL}/exports/" in text and f'href="{SITE_URL}/exports/"' in html
    for part in (text, html, received.raw.decode()):
        assert token not in part and "/exports/download/" not in part
    (link,) = re.findall(r"https?://\S+", text)  # the only link in the text: the exports page, which the owner can open
    assert link == f"{SITE_URL}/exports/" and client.get(urlsplit(link).path).status_code == 200
    assert (email.to, email.template, email.attempts) == (["ada@example.com"], "export_ready", 1)
    ready = Job.objects.get(type="emails.export_ready")
    assert ready.idempotency_key == key and ready.payload == {
        "export_id": export_id,
        "user_id": ada.pk,
        "what": "Products (synced catalog)",
        "format": "CSV",
        "rows": 20,
    }
    assert _finished(ready.id).status == Job.Status.SUCCEEDED

    # The notification asked for again: the same key (answered by the existing job), the job's message
    # delivered twice, and an operator replaying the finished job (a new job, same payload): nothing more is sent.
    again = job_enqueue(job_type="emails.export_ready", payload=ready.payload,
                        idempotency_key=key)  # fmt: skip
    assert (again.created, again.job.id) == (False, ready.id)
    # (One worker process: the duplicate message, published first, is consumed before the replay runs.)
    publish_messages([(ready.id, ready.type, ready.queue, 1, ready.correlation_id)])
    replay = _finished(job_bulk_replay(jobs=[ready])[0].id)
    assert replay.status == Job.Status.SUCCEEDED and replay.result == {"email_id": email.pk, "state": "sent"}
    # Before counting: the replay's outcome (above), the worker's word that it consumed the duplicate message,
    # and every job and outbox row ended (nothing queued that could still send).
    wait_for(lambda: skipped_deliveries(worker, ready) == 1, timeout=30,
             message="the worker to skip the duplicate message")  # fmt: skip
    wait_until_every_job_and_email_ended()
    assert smtp_server.count() == 1
    assert EmailMessage.objects.filter(key=key).count() == 1 and EmailMessage.objects.get(pk=email.pk).attempts == 1
    assert Export.objects.get(pk=export_id).status == Export.Status.SUCCEEDED


def test_an_owner_without_an_email_address_gets_the_export_and_no_mail(
    start_worker, smtp_server, django_user_model, settings, tmp_path
):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    start_worker(queues="exports,emails", extra_env={"MEDIA_ROOT": settings.MEDIA_ROOT, **email_env(smtp_server)})
    make_products(5)
    owner = django_user_model.objects.create_user("nomail", password="pw")
    client = Client()
    client.force_login(owner)

    response = client.post("/api/exports", {"source": "products", "format": "csv"}, content_type="application/json")
    assert response.status_code == 202, response.content
    export_id = response.json()["id"]
    ready = wait_for(lambda: Job.objects.filter(type="emails.export_ready", status__in=DONE).first(), timeout=60,
                     interval=0.2, message="the export_ready job to finish")  # fmt: skip

    # The export is unaffected; the notification ends at once (no retries) saying why, and nothing is mailed.
    assert Export.objects.get(pk=export_id).status == Export.Status.SUCCEEDED
    assert (ready.status, ready.attempt) == (Job.Status.FAILED, 1)
    assert ready.error_code == "email_recipient_invalid" and "has no email address" in ready.error_message
    assert smtp_server.count() == 0 and not EmailMessage.objects.exists()
