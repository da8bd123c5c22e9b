"""A big sync run's admin page in a real browser: pages paginated, failed first, rejections readable."""

from __future__ import annotations

import pytest

from sync.models import SyncPage, SyncRun
from tests.browser import DESKTOP, PHONE, admin_login, screenshot

pytestmark = pytest.mark.django_db(transaction=True)
PASSWORD = "pw-for-tests-only"


def test_run_of_2000_pages_is_paginated_failed_first(browser, live_server, django_user_model):
    django_user_model.objects.create_superuser("operator", "operator@example.com", PASSWORD)
    run = SyncRun.objects.create(status=SyncRun.Status.PARTIAL, page_size=100, total_pages=2000, pages_done=1998,
                                 pages_failed=2)  # fmt: skip
    failed = {700: "supplier_unavailable: supplier answered 502 for GET /products", 1500: "supplier_refused: 400"}
    SyncPage.objects.bulk_create([
        SyncPage(run=run, number=number, status=SyncPage.Status.FAILED if number in failed else SyncPage.Status.DONE,
                 error=failed.get(number, ""), created=0 if number in failed else 100,
                 rejected=1 if number == 3 else 0,
                 rejections=[{"supplier_id": "SUP-0000203", "reason": "price: expected a decimal, got 'abc'"}]
                 if number == 3 else [])
        for number in range(1, 2001)
    ])  # fmt: skip
    for name, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
        page = browser.new_page(viewport=viewport)
        try:
            admin_login(page, live_server.url, username="operator", password=PASSWORD)
            response = page.goto(f"{live_server.url}/admin/sync/syncrun/{run.pk}/change/")
            assert len(response.body()) < 300_000  # was 4.2 MB for 2,000 pages
            rows = page.locator("#sync-pages > .job-table-wrap > table > tbody > tr")
            assert rows.count() == 50
            first_two = [rows.nth(i).locator("td").first.inner_text() for i in range(2)]
            assert first_two == ["700", "1500"]  # failed pages first
            assert "Gave up: supplier_unavailable" in rows.nth(0).inner_text()
            assert "will retry" not in page.inner_text("#sync-pages")
            assert "pages 1–50 of 2000" in page.inner_text("#sync-pages .paginator")
            screenshot(page, f"sync-run-{name}")
            page.click("#sync-pages .paginator a:has-text('next')")
            page.wait_for_url("**?pages=2*")
            assert (
                page.locator("#sync-pages > .job-table-wrap > table > tbody > tr")
                .first.locator("td")
                .first.inner_text()
                == "49"
            )
        finally:
            page.close()
