"""The emails admin in real Chromium: list, the rendered HTML preview and transcript, resend with
confirmation and an audit entry, the suppression list with removal; desktop and phone widths."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from django.contrib.auth import get_user_model
from django.test import override_settings

from emails import services
from emails.models import EmailMessage, Suppression
from jobs.models import JobAuditEntry
from tests.browser import DESKTOP, PHONE, admin_login, screenshot

pytestmark = pytest.mark.django_db(transaction=True)
State = EmailMessage.State
PASSWORD = "pw-for-tests-only"


@contextmanager
def admin_page(browser, live_server, viewport: dict) -> Iterator[object]:
    """A page logged in as the superuser "ops", closed afterwards."""
    page = browser.new_page(viewport=viewport)
    try:
        admin_login(page, live_server.url, username="ops", password=PASSWORD)
        yield page
    finally:
        page.close()


def run_action(page, action: str) -> None:
    page.select_option("select[name=action]", action)
    page.click("button[name=index]")


@pytest.fixture
def outbox(redis_client, smtp_server):
    """A sent export email, one that may have been sent, and a suppressed address."""
    user = get_user_model().objects.create_user("ada", email="ada@example.com", first_name='Ada <b>"Lovelace"</b>')
    with override_settings(SITE_URL="https://shop.example"):
        sent = services.email_export_ready(export_id=42, user_id=user.pk)
    services.email_deliver(email_id=sent.pk, claim="admin-test.1")
    uncertain = services.email_send(template="test_receipt", to="bob@example.com", key="order:7",
                                    context={"name": "Bob", "order": "7"})  # fmt: skip
    smtp_server.fail_next("drop_mid_data")
    with pytest.raises(Exception, match="may have been delivered"):
        services.email_deliver(email_id=uncertain.pk, claim="admin-test.2")
    services.suppression_add(address="gone@example.com", smtp_code=550, reason="5.1.1 no such user",
                             email_key="order:3")  # fmt: skip
    get_user_model().objects.create_superuser("ops", "ops@example.com", PASSWORD)
    return {"sent": EmailMessage.objects.get(pk=sent.pk), "uncertain": EmailMessage.objects.get(pk=uncertain.pk)}


@pytest.mark.parametrize("viewport,width", [(DESKTOP, "desktop"), (PHONE, "phone")])
def test_list_and_detail_with_the_rendered_preview_and_transcript(browser, live_server, outbox, viewport, width):
    with admin_page(browser, live_server, viewport) as page:
        page.goto(f"{live_server.url}/admin/emails/emailmessage/")
        listing = page.inner_text("#changelist")
        assert "exports:export:42:ready" in listing and "May have been sent" in listing and "Sent" in listing
        screenshot(page, f"emails-list-{width}")

        page.goto(f"{live_server.url}/admin/emails/emailmessage/?state=uncertain")
        assert "order:7" in page.inner_text("#result_list") and "exports:export:42" not in page.inner_text(
            "#result_list"
        )

        page.goto(f"{live_server.url}/admin/emails/emailmessage/{outbox['sent'].pk}/change/")
        preview = page.frame_locator("iframe[title='HTML preview']")
        assert preview.locator("a", has_text="Open my exports").get_attribute("href") == "https://shop.example/exports/"
        # The user's name is shown as text inside the sandboxed preview, not as markup.
        assert '<b>"Lovelace"</b>' in preview.locator("body").inner_text()
        assert page.locator("iframe[title='HTML preview']").get_attribute("sandbox") == ""
        body = page.inner_text("#content")
        assert "S: 250 2.0.0 Ok: queued as 1" in body and "email-provider slot granted at" in body
        screenshot(page, f"emails-detail-{width}")
        page.locator("iframe[title='HTML preview']").screenshot(path=str(screenshot(page, f"emails-preview-{width}")))


def test_resend_asks_for_confirmation_then_queues_it_with_an_audit_entry(browser, live_server, outbox):
    with admin_page(browser, live_server, DESKTOP) as page:
        page.goto(f"{live_server.url}/admin/emails/emailmessage/")
        for email in outbox.values():
            page.check(f"input[name=_selected_action][value='{email.pk}']")
        run_action(page, "resend_emails")

        confirmation = page.inner_text("#content")
        assert "Resend 1 email(s)?" in confirmation and "order:7" in confirmation
        assert "1 selected email(s) are not in a valid state" in confirmation  # the sent one is left alone
        screenshot(page, "emails-resend-confirm")
        page.click("input[type=submit]")

        assert "1 email(s) resent. (1 selected email(s) were not in a valid state" in page.inner_text(".messagelist")
        resent = EmailMessage.objects.get(pk=outbox["uncertain"].pk)
        assert (resent.state, resent.resends) == (State.PENDING, 1)
        entry = JobAuditEntry.objects.get(action="emails.resend")
        assert entry.actor.username == "ops" and entry.detail["key"] == "order:7"
        assert EmailMessage.objects.get(pk=outbox["sent"].pk).resends == 0


def test_the_suppression_list_and_removal(browser, live_server, outbox):
    with admin_page(browser, live_server, PHONE) as page:
        page.goto(f"{live_server.url}/admin/emails/suppression/")
        assert "gone@example.com" in page.inner_text("#result_list")
        screenshot(page, "emails-suppressions-phone")
        page.check("input[name=_selected_action]")
        run_action(page, "remove_suppressions")
        assert "gone@example.com" in page.inner_text("#content")
        page.click("input[type=submit]")

        assert "1 address(es) removed" in page.inner_text(".messagelist")
        assert not Suppression.objects.exists()
        assert JobAuditEntry.objects.get(action="emails.suppression_remove").detail == {
            "addresses": ["gone@example.com"]
        }
