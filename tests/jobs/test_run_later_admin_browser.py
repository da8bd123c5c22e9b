"""Jobs that run later in the operator's admin, in a real browser: the due time under the badge in the list, the
"due time" filter, and the due time on the job's page. Screenshots go to var/screenshots/."""

from __future__ import annotations

from datetime import timedelta

import pytest

from jobs.delivery.enqueue import job_enqueue
from tests.browser import DESKTOP, PHONE, admin_login, screenshot

pytestmark = pytest.mark.django_db(transaction=True)
PASSWORD = "pw-for-tests-only"


def test_the_admin_shows_and_filters_the_due_time(browser, live_server, django_user_model):
    django_user_model.objects.create_superuser("operator", "operator@example.com", PASSWORD)
    later = job_enqueue(job_type="tests.noop", payload={"case": "later"}, delay=timedelta(minutes=10)).job
    now = job_enqueue(job_type="tests.noop", payload={"case": "now"}).job

    for name, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
        page = browser.new_page(viewport=viewport)
        try:
            admin_login(page, live_server.url, username="operator", password=PASSWORD)
            page.goto(f"{live_server.url}/admin/jobs/job/")
            rows = page.locator("#result_list tbody tr")
            assert rows.count() == 2
            due = page.locator(".job-due")
            said = due.inner_text().replace("\xa0", " ")  # timesince joins number and unit with a no-break space
            assert due.count() == 1 and said in ("due in 9 minutes", "due in 10 minutes"), said
            screenshot(page, f"run-later-list-{name}")

            page.goto(f"{live_server.url}/admin/jobs/job/?due=later")
            assert page.locator("#result_list tbody tr").count() == 1
            assert later.id in page.locator("#result_list").inner_text()
            assert now.id not in page.locator("#result_list").inner_text()

            page.goto(f"{live_server.url}/admin/jobs/job/{later.id}/change/")
            shown = page.locator("#job-due").inner_text().replace("\xa0", " ")
            assert "in 9 minutes" in shown or "in 10 minutes" in shown, shown
            screenshot(page, f"run-later-job-{name}")
        finally:
            page.close()
