"""Scheduling in the operator's admin, in a real browser: for jobs that run later, the due time under the badge in the
list, the "due time" filter and the due time on the job's page; for concurrency limits, running / limit per limited
type on the overview. Screenshots go to var/screenshots/."""

from __future__ import annotations

from datetime import timedelta

import pytest

from jobs.core import registry
from jobs.delivery.enqueue import job_enqueue
from jobs.worker.concurrency import concurrency_claim
from tests.browser import DESKTOP, PHONE, admin_login, screenshot

pytestmark = pytest.mark.django_db(transaction=True)
PASSWORD = "pw-for-tests-only"


@pytest.fixture
def operator(django_user_model):
    return django_user_model.objects.create_superuser("operator", "operator@example.com", PASSWORD)


def test_the_admin_shows_and_filters_the_due_time(browser, live_server, operator):
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


def test_the_overview_shows_running_over_limit_per_limited_type(browser, live_server, operator, redis_client):
    spec = registry.get("tests.capped")
    for n in range(3):  # two take the slots, the third waits for one
        job = job_enqueue(job_type=spec.name, payload={"n": n}).job
        concurrency_claim(spec=spec, job_id=job.id, attempt=1, worker="w", celery_task_id="")

    for name, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
        page = browser.new_page(viewport=viewport)
        try:
            admin_login(page, live_server.url, username="operator", password=PASSWORD)
            page.goto(f"{live_server.url}/admin/jobs/job/overview/")
            row = page.locator("#overview-concurrency tbody tr", has_text="tests.capped")
            cells = row.locator("td").all_inner_texts()
            assert cells == ["tests.capped", "2 / 2", "-", "1"], cells
            per_user = page.locator("#overview-concurrency tbody tr", has_text="tests.per_user").locator("td")
            assert per_user.all_inner_texts()[1:3] == ["0 / no limit", "busiest key 0 / 1 (0 keys running)"]
            page.locator("#overview-concurrency").scroll_into_view_if_needed()
            screenshot(page, f"concurrency-overview-{name}")
        finally:
            page.close()
