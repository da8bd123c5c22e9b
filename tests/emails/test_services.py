"""The outbox services against a real SMTP server (in this process), one fault at a time."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.db import transaction
from django.test import override_settings
from django.utils import timezone

from emails import services
from emails.exceptions import (
    EmailDeliveryUncertain,
    EmailKeyConflict,
    EmailPermanentFailure,
    EmailRecipientInvalid,
    EmailSendingInTransaction,
    EmailTemporaryFailure,
)
from emails.models import EmailMessage, Suppression
from jobs.api.http import response_for
from jobs.models import Job, JobAuditEntry

pytestmark = pytest.mark.django_db(transaction=True)
State = EmailMessage.State


def send(key: str = "order-confirmation:1", to: str | list[str] = "ada@example.com", template: str = "test_receipt",
         **context) -> EmailMessage:  # fmt: skip
    return services.email_send(template=template, to=to, key=key, context={"name": "Ada", "order": "1", **context})


def deliver(email: EmailMessage, attempt: int = 1) -> dict:
    return services.email_deliver(email_id=email.pk, claim=f"test-job.{attempt}")


def reload(email: EmailMessage) -> EmailMessage:
    return EmailMessage.objects.get(pk=email.pk)


# -- enqueue ---------------------------------------------------------------------------------


def test_send_stores_the_rendered_email_and_one_job(redis_client):
    email = send()

    assert (email.state, email.template, email.to) == (State.PENDING, "test_receipt", ["ada@example.com"])
    assert email.subject == "Receipt for order 1" and "Hello <b>Ada</b>" in email.html_body
    assert email.message_id == services.message_id_for("order-confirmation:1")
    job = Job.objects.get(id=email.job_id)
    assert (job.type, job.queue, job.payload) == ("emails.send", "emails", {"email_id": email.pk})


def test_the_same_key_returns_the_same_email_and_enqueues_nothing_more(redis_client):
    first = send()
    again = send()

    assert again.pk == first.pk
    assert EmailMessage.objects.count() == 1 and Job.objects.filter(type="emails.send").count() == 1


def test_the_same_key_with_another_payload_is_a_conflict(redis_client):
    send()

    with pytest.raises(EmailKeyConflict, match="different template, recipients, context or sender"):
        send(order="2")
    with pytest.raises(EmailKeyConflict):
        send(to="bob@example.com")


def test_a_rolled_back_transaction_leaves_no_email_and_no_job(redis_client):
    with pytest.raises(RuntimeError), transaction.atomic():
        send()
        raise RuntimeError("the caller's transaction fails")

    assert not EmailMessage.objects.exists() and not Job.objects.exists()


@pytest.mark.parametrize("bad", ["not-an-address", "ada@", "ada@example.com\nBcc: x@example.com", ""])
def test_malformed_addresses_are_refused_at_enqueue_with_a_4xx_error(redis_client, bad):
    with pytest.raises(EmailRecipientInvalid) as error:
        send(to=bad)

    assert not EmailMessage.objects.exists() and not Job.objects.exists()
    assert response_for(error.value).status_code == 400 and error.value.retryable is False


def test_a_caller_that_catches_a_conflict_keeps_a_usable_transaction(redis_client):
    with transaction.atomic():
        send()
        with pytest.raises(EmailKeyConflict):
            send(order="2")
        send(key="order-confirmation:2")  # the caller's transaction goes on

    assert EmailMessage.objects.count() == 2 and Job.objects.filter(type="emails.send").count() == 2


def test_named_addresses_are_accepted_and_kept(redis_client):
    email = send(to=["Ada Lovelace <ada@example.com>", "bob@example.com"])

    assert email.to == ["Ada Lovelace <ada@example.com>", "bob@example.com"]


def test_delivery_inside_a_transaction_is_refused(redis_client, smtp_server):
    email = send()

    with pytest.raises(EmailSendingInTransaction), transaction.atomic():
        deliver(email)
    assert smtp_server.count() == 0 and reload(email).state == State.PENDING


# -- delivery ----------------------------------------------------------------------------------


def test_delivery_sends_once_with_the_keyed_message_id_and_records_the_conversation(redis_client, smtp_server):
    email = send()

    result = deliver(email)
    again = deliver(email, attempt=2)

    assert result["state"] == "sent" and again["skipped"] == "already sent"
    assert smtp_server.count() == 1
    received = smtp_server.messages[0]
    assert received.message_id == email.message_id and received.rcpt_tos == ("ada@example.com",)
    assert received.subject == "Receipt for order 1"
    email = reload(email)
    assert (email.state, email.attempts, email.smtp_code) == (State.SENT, 1, 250)
    assert (
        "C: mail FROM:<noreply@jobplatform.localhost>" in email.transcript
        and "S: 250 2.0.0 Ok: queued as 1" in email.transcript
    )


def test_a_421_leaves_it_pending_for_a_retry_that_sends_it_once(redis_client, smtp_server):
    email = send()
    smtp_server.fail_next("temporary")

    with pytest.raises(EmailTemporaryFailure, match="cannot have accepted it"):
        deliver(email)
    assert reload(email).state == State.PENDING and smtp_server.count() == 0
    assert "421" in reload(email).transcript

    deliver(email, attempt=2)
    assert smtp_server.count() == 1 and reload(email).state == State.SENT and reload(email).attempts == 2


def test_a_550_fails_the_email_and_suppresses_the_recipient(redis_client, smtp_server):
    smtp_server.reject_recipient("gone@example.com")
    email = send(to="gone@example.com")

    with pytest.raises(EmailPermanentFailure):
        deliver(email)

    email = reload(email)
    assert (email.state, email.suppressed_recipients) == (State.FAILED, ["gone@example.com"])
    suppression = Suppression.objects.get(address="gone@example.com")
    assert suppression.smtp_code == 550 and suppression.email_key == email.key
    # The next email to that address is suppressed at once: no job, nothing sent.
    later = send(key="order-confirmation:2", to="Gone <GONE@example.com>")
    assert later.state == State.SUPPRESSED and later.job_id == "" and smtp_server.count() == 0


def test_an_address_suppressed_after_enqueue_is_not_sent_to(redis_client, smtp_server):
    email = send(to=["gone@example.com", "ada@example.com"])
    services.suppression_add(address="gone@example.com", smtp_code=550, reason="test")

    deliver(email)

    assert smtp_server.messages[0].rcpt_tos == ("ada@example.com",)
    assert reload(email).suppressed_recipients == ["gone@example.com"]


def test_one_recipient_refused_among_several_still_sends_and_suppresses_it(redis_client, smtp_server):
    smtp_server.reject_recipient("gone@example.com")
    email = send(to=["ada@example.com", "gone@example.com"])

    deliver(email)

    assert reload(email).state == State.SENT and smtp_server.messages[0].rcpt_tos == ("ada@example.com",)
    assert Suppression.objects.filter(address="gone@example.com").exists()


def test_a_server_that_never_answers_times_out_and_is_retried(redis_client, smtp_server):
    email = send()
    smtp_server.fail_next("silent")

    with override_settings(EMAIL_TIMEOUT=0.5), pytest.raises(EmailTemporaryFailure):
        deliver(email)
    assert reload(email).state == State.PENDING

    deliver(email, attempt=2)
    assert smtp_server.count() == 1


def test_a_drop_mid_data_is_uncertain_for_an_at_most_once_template(redis_client, smtp_server):
    email = send()
    smtp_server.fail_next("drop_mid_data")

    with pytest.raises(EmailDeliveryUncertain, match="may have been delivered"):
        deliver(email)

    # The client cannot tell "dropped before the end" from "accepted, answer lost": it does not guess.
    assert smtp_server.count() == 0 and reload(email).state == State.UNCERTAIN
    assert deliver(email, attempt=2)["skipped"] == "already uncertain" and smtp_server.count() == 0


def test_a_drop_mid_data_is_retried_for_an_at_least_once_template(redis_client, smtp_server):
    email = send(template="test_receipt_alo")
    smtp_server.fail_next("drop_mid_data")

    with pytest.raises(EmailTemporaryFailure, match="at-least-once"):
        deliver(email)
    deliver(email, attempt=2)

    assert smtp_server.count() == 1 and reload(email).state == State.SENT


def test_an_email_left_sending_by_a_dead_attempt_becomes_uncertain_not_resent(redis_client, smtp_server):
    email = send()
    EmailMessage.objects.filter(pk=email.pk).update(state=State.SENDING, claimed_by="dead-job.1",
                                                   claimed_at=timezone.now())  # fmt: skip

    with pytest.raises(EmailDeliveryUncertain, match="stopped without recording an outcome"):
        deliver(email, attempt=2)

    assert reload(email).state == State.UNCERTAIN and smtp_server.count() == 0


def test_a_job_that_gives_up_fails_a_pending_email_and_leaves_a_sending_one_uncertain(redis_client):
    pending, sending = send(), send(key="order-confirmation:2")
    EmailMessage.objects.filter(pk=sending.pk).update(state=State.SENDING, claimed_by="buried-job.8")

    services.email_give_up(email_id=pending.pk, error="smtp_temporary_failure: 421")
    services.email_give_up(email_id=sending.pk, error="worker_lost: attempt 8 was lost")

    assert reload(pending).state == State.FAILED and "421" in reload(pending).last_error
    assert reload(sending).state == State.UNCERTAIN and "may have accepted it" in reload(sending).last_error


def test_an_email_another_running_job_is_sending_is_left_to_it(redis_client, smtp_server):
    email = send(template="test_receipt_alo")  # at least once: an abandoned claim would be sent again
    other = Job.objects.create(type="emails.send", queue="emails", status=Job.Status.RUNNING, attempt=1)
    EmailMessage.objects.filter(pk=email.pk).update(state=State.SENDING, claimed_by=f"{other.id}.1")

    assert deliver(email)["skipped"] == f"being sent by attempt {other.id}.1"

    assert reload(email).state == State.SENDING and smtp_server.count() == 0


# -- operator actions ----------------------------------------------------------------------------


def test_resend_of_an_uncertain_email_queues_it_again_with_an_audit_entry(redis_client, smtp_server):
    operator = get_user_model().objects.create_user("operator")
    email = send()
    smtp_server.fail_next("drop_mid_data")
    with pytest.raises(EmailDeliveryUncertain):
        deliver(email)

    assert services.email_resend(email=reload(email), actor=operator)

    email = reload(email)
    assert (email.state, email.resends) == (State.PENDING, 1)
    assert Job.objects.get(id=email.job_id).idempotency_key == f"emails:email:{email.pk}:resend-1"
    entry = JobAuditEntry.objects.get(action="emails.resend")
    assert (entry.actor, entry.job_ids, entry.detail["from_state"]) == (operator, [email.job_id], "uncertain")
    deliver(email, attempt=1)
    assert smtp_server.count() == 1


def test_a_sent_email_is_never_resent_and_an_uncertain_one_can_be_dismissed(redis_client, smtp_server):
    sent = send()
    deliver(sent)
    assert not services.email_resend(email=reload(sent))

    uncertain = send(key="order-confirmation:2")
    EmailMessage.objects.filter(pk=uncertain.pk).update(state=State.UNCERTAIN)
    assert services.email_dismiss(email=reload(uncertain))
    assert reload(uncertain).state == State.DISMISSED
    assert JobAuditEntry.objects.filter(action="emails.dismiss").count() == 1
    assert smtp_server.count() == 1


def test_removing_a_suppression_lets_mail_through_again(redis_client, smtp_server):
    suppression = services.suppression_add(address="Back@Example.com", smtp_code=550, reason="test")

    assert services.suppression_remove(suppressions=[suppression]) == 1

    deliver(send(to="back@example.com"))
    assert smtp_server.count() == 1


# -- built-in emails -------------------------------------------------------------------------------


@override_settings(SITE_URL="https://shop.example")
def test_export_ready_links_the_exports_page_and_is_keyed_by_the_export(redis_client, smtp_server):
    user = get_user_model().objects.create_user("ada", email="ada@example.com", first_name="Ada")

    email = services.email_export_ready(export_id=17, user_id=user.pk)
    same = services.email_export_ready(export_id=17, user_id=user.pk)

    assert same.pk == email.pk and email.key == "exports:export:17:ready"
    assert email.to == ["ada@example.com"] and "https://shop.example/exports/" in email.text_body
    assert "download" not in email.html_body.split('href="')[1].split('"')[0]  # the page, not a file link
    with pytest.raises(EmailRecipientInvalid, match="has no email address"):
        services.email_export_ready(export_id=18, user_id=get_user_model().objects.create_user("nomail").pk)


def _dead_job(job_type: str = "tests.always_fails") -> Job:
    return Job.objects.create(type=job_type, queue="default", status=Job.Status.DEAD, finished_at=timezone.now())


@override_settings(JOBS_ALERT_EMAILS=["ops@example.com"], EMAILS_DIGEST_WINDOW_SECONDS=3600)
def test_dead_letter_digest_only_when_the_queue_is_not_empty_and_once_per_window(redis_client):
    assert services.dead_letter_digest_send() is None

    _dead_job(), _dead_job(), _dead_job("sync.fetch_page")
    first = services.dead_letter_digest_send()
    _dead_job()
    second = services.dead_letter_digest_send()

    assert first is not None and second.pk == first.pk  # same window: not sent again
    assert first.to == ["ops@example.com"] and first.subject == "[jobs] 3 jobs in the dead-letter queue"
    assert "2  tests.always_fails" in first.text_body and "1  sync.fetch_page" in first.text_body
    later = services.dead_letter_digest_send(now=timezone.now() + timezone.timedelta(hours=1))
    assert later.pk != first.pk and later.context["dead_count"] == 4


@override_settings(JOBS_ALERT_EMAILS=[])
def test_dead_letter_digest_needs_recipients(redis_client):
    _dead_job()
    assert services.dead_letter_digest_send() is None
