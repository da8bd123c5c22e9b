"""Finding jobs by what went wrong, and acting on all of them, in real Chromium at 1440 and 390 px (issue 29):
the job list's search finds jobs by words of their error and by payload fields, its "Retry all" acts on every
job the search finds (the count confirmed first, one audit entry), and on a phone the dead-letter queue's job
list and the overview's queue table read without scrolling sideways."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from jobs.models import Job, JobAuditEntry
from tests.browser import DESKTOP, PHONE, admin_login, screenshot

pytestmark = pytest.mark.django_db(transaction=True)
S = Job.Status
PASSWORD = "pw-for-tests-only"


@pytest.fixture
def failures(redis_client):
    """Three dead jobs a supplier outage killed, two other dead ones, and healthy work."""
    now = timezone.now()
    for page in (3, 14, 15):
        Job.objects.create(type="sync.fetch_page", queue="sync", status=S.DEAD, attempt=3, max_attempts=3,
                           finished_at=now, payload={"run_id": 7, "page": page}, error_code="supplier_unavailable",
                           error_message=f"Supplier answered 503 Service Unavailable for page {page}")  # fmt: skip
    for address in ("bounce@example.com", "full@example.com"):
        Job.objects.create(type="emails.send", queue="emails", status=S.DEAD, attempt=5, max_attempts=5,
                           finished_at=now, payload={"to": address}, error_code="smtp_refused",
                           error_message=f"550 mailbox unavailable: {address}")  # fmt: skip
    Job.objects.create(type="sync.fetch_page", queue="sync", status=S.SUCCEEDED, payload={"run_id": 7, "page": 2},
                       finished_at=now)  # fmt: skip
    User.objects.create_superuser("ops", "ops@example.com", PASSWORD)


def sideways(page, selector: str = "html") -> int:
    """How far the element (the page by default) scrolls sideways, in px."""
    return page.locator(selector).first.evaluate("el => el.scrollWidth - el.clientWidth")


@pytest.mark.parametrize("viewport, width", [(DESKTOP, "desktop"), (PHONE, "phone")])
def test_search_by_error_then_retry_all_it_found(browser, live_server, failures, viewport, width):
    page = browser.new_page(viewport=viewport)
    try:
        admin_login(page, live_server.url, username="ops", password=PASSWORD)
        # The dead-letter queue and the overview's queues fit the screen: nothing scrolls sideways.
        page.goto(f"{live_server.url}/admin/jobs/deadjob/")
        screenshot(page, f"dead-letter-{width}")
        assert sideways(page) <= 1 and sideways(page, "#changelist .results") <= 1
        assert sideways(page, "#dead-letter-groups") <= 1
        page.goto(f"{live_server.url}/admin/jobs/job/overview/")
        assert sideways(page) <= 1 and sideways(page, "#overview-queues") <= 1
        page.locator("#overview-queues").scroll_into_view_if_needed()
        screenshot(page, f"overview-queues-{width}")

        # Words of the message, any case, in any order: the supplier's 503s, not the mailbox's "unavailable".
        page.goto(f"{live_server.url}/admin/jobs/job/")
        page.fill("#searchbar", "503 unavailable")
        page.press("#searchbar", "Enter")
        page.wait_for_url("**/admin/jobs/job/?q=503+unavailable")
        assert page.locator("#result_list tbody tr").count() == 3
        assert "smtp_refused" not in page.locator("#result_list").inner_text()
        assert sideways(page) <= 1 and sideways(page, "#changelist .results") <= 1
        screenshot(page, f"job-search-{width}")
        # A payload field finds its job, and only it (page 15, not 150 or 1).
        page.goto(f"{live_server.url}/admin/jobs/job/?q=page%3D15")
        assert page.locator("#result_list tbody tr").count() == 1
        assert "page 15" in page.locator("#result_list tbody tr").inner_text()

        # Every job the search finds, not only the checked ones: the count first, then one audit entry.
        page.goto(f"{live_server.url}/admin/jobs/job/?q=503+unavailable")
        bar = page.locator("#bulk-actions")
        assert "All 3 jobs this filter finds" in bar.inner_text()
        bar.locator("input.bulk-retry_jobs").click()
        page.wait_for_selector("#confirm-action")
        assert page.locator("h1").inner_text() == "Retry 3 jobs?"
        assert "q=503+unavailable" in page.locator("#bulk-filter").inner_text()
        assert sideways(page) <= 1 and sideways(page, ".job-table-wrap:has(.causes-table)") <= 1
        screenshot(page, f"job-search-retry-all-confirm-{width}")
        page.click("#confirm-action")
        page.wait_for_selector(".messagelist .success")
        assert "Retried 3 jobs" in page.locator(".messagelist").inner_text()
        assert Job.objects.filter(type="sync.fetch_page", status=S.QUEUED).count() == 3
        assert Job.objects.filter(type="emails.send", status=S.DEAD).count() == 2
        entry = JobAuditEntry.objects.get()
        assert (entry.action, entry.job_count, entry.detail["filter"]) == ("retry", 3, "q=503+unavailable")
        screenshot(page, f"job-search-retried-{width}")
    finally:
        page.close()
