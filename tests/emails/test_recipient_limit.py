"""Issue 22, security item 5: an ordinary user could make the platform email their own address without bound
(one user got 101 "export ready" emails). Emails per recipient are now limited per window; the excess is kept
in the outbox, unsent, in a state of its own with the reason, a log line, and a row in the admin."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.test import override_settings

from emails import services
from emails.models import EmailMessage
from jobs.models import Job

pytestmark = pytest.mark.django_db(transaction=True)
State = EmailMessage.State
LIMITED = "limited"


def send(n: int, to: str | list[str] = "ada@example.com") -> EmailMessage:
    return services.email_send(
        template="test_receipt", to=to, key=f"receipt:{n}", context={"name": "Ada", "order": str(n)}
    )


def deliver(email: EmailMessage) -> dict:
    return services.email_deliver(email_id=email.pk, claim=f"test-job-{email.pk}.1")


def test_export_ready_emails_to_one_user_stop_at_the_default_limit(redis_client, settings, caplog):
    # before: every export a user created mailed them when it finished (101 emails in the probe)
    assert (settings.EMAILS_PER_RECIPIENT_LIMIT, settings.EMAILS_PER_RECIPIENT_WINDOW_SECONDS) == (20, 3600)
    user = get_user_model().objects.create_user("ada", email="ada@example.com")
    with caplog.at_level(logging.WARNING, logger="emails"):
        emails = [services.email_export_ready(export_id=n, user_id=user.pk) for n in range(25)]
    assert [email.state for email in emails] == [State.PENDING] * 20 + [LIMITED] * 5
    assert Job.objects.filter(type="emails.send").count() == 20
    held = EmailMessage.objects.get(pk=emails[-1].pk)
    assert held.job_id == "" and held.finished_at is not None
    assert held.last_error == "recipient limit: 20 per 3600 s (ada@example.com)"
    assert held.limited_recipients == ["ada@example.com"]
    assert caplog.text.count("recipient limit: 20 per 3600 s") == 5


@override_settings(EMAILS_PER_RECIPIENT_LIMIT=3, EMAILS_PER_RECIPIENT_WINDOW_SECONDS=3600)
def test_only_emails_under_the_limit_reach_the_server_and_each_only_once(redis_client, smtp_server):
    emails = [send(n) for n in range(5)]
    for email in emails:
        deliver(email)
        deliver(email)  # a duplicate job message sends nothing more
    assert [message.rcpt_tos for message in smtp_server.messages] == [("ada@example.com",)] * 3
    assert sorted(EmailMessage.objects.values_list("state", flat=True)) == [LIMITED] * 2 + [State.SENT] * 3
    # The same key again is the same email: no second email, and no slot of the limit taken.
    assert send(0).pk == emails[0].pk and send(4).state == LIMITED
    # Other recipients have limits of their own; addresses count case-blind and whatever the display name.
    assert send(10, to="bob@example.com").state == State.PENDING
    assert send(11, to="Ada Lovelace <ADA@example.com>").state == LIMITED


@override_settings(EMAILS_PER_RECIPIENT_LIMIT=2, EMAILS_PER_RECIPIENT_WINDOW_SECONDS=3600)
def test_a_recipient_over_the_limit_is_left_out_of_an_email_to_several(redis_client, smtp_server):
    send(1), send(2)
    shared = send(3, to=["ada@example.com", "bob@example.com"])
    assert shared.state == State.PENDING and shared.limited_recipients == ["ada@example.com"]
    deliver(shared)
    assert smtp_server.messages[-1].rcpt_tos == ("bob@example.com",)


@override_settings(EMAILS_PER_RECIPIENT_LIMIT=2, EMAILS_PER_RECIPIENT_WINDOW_SECONDS=3600)
def test_the_window_slides(redis_client):
    start = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)
    with time_machine.travel(start, tick=False):
        assert [send(n).state for n in range(3)] == [State.PENDING, State.PENDING, LIMITED]
    with time_machine.travel(start + timedelta(minutes=59), tick=False):
        assert send(3).state == LIMITED
    with time_machine.travel(start + timedelta(minutes=61), tick=False):
        assert [send(n).state for n in range(4, 7)] == [State.PENDING, State.PENDING, LIMITED]


@override_settings(EMAILS_PER_RECIPIENT_LIMIT=0)
def test_a_limit_of_zero_is_off(redis_client):
    assert {send(n).state for n in range(30)} == {State.PENDING}


@override_settings(EMAILS_PER_RECIPIENT_LIMIT=1, EMAILS_PER_RECIPIENT_WINDOW_SECONDS=3600)
def test_an_operator_can_resend_a_limited_email(redis_client, smtp_server, admin_user):
    send(1)
    held = send(2)
    assert held.state == LIMITED and services.email_resend(email=held, actor=admin_user)
    deliver(EmailMessage.objects.get(pk=held.pk))
    assert EmailMessage.objects.get(pk=held.pk).state == State.SENT


@override_settings(EMAILS_PER_RECIPIENT_LIMIT=1, EMAILS_PER_RECIPIENT_WINDOW_SECONDS=3600)
def test_the_admin_shows_limited_emails_with_their_reason(redis_client, admin_client):
    send(1)
    held = send(2)
    listing = admin_client.get("/admin/emails/emailmessage/?state__exact=limited").content.decode()
    assert "receipt:2" in listing and "receipt:1" not in listing and "Not sent: recipient limit" in listing
    detail = admin_client.get(f"/admin/emails/emailmessage/{held.pk}/change/").content.decode()
    assert "recipient limit: 1 per 3600 s (ada@example.com)" in detail
