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


def _job(**fields):
    from jobs.models import Job

    return Job.objects.create(queue="sync", max_attempts=5, **fields)


@pytest.fixture
def operator_page(browser, live_server, django_user_model, redis_client):
    """One logged-in page per test (five logins per user per window; redis_client empties the counters first).

    ``operator_page(viewport)`` resizes it: the same session at desktop and phone widths.
    """
    django_user_model.objects.create_superuser("operator", "operator@example.com", PASSWORD)
    page = browser.new_page(viewport=DESKTOP)
    admin_login(page, live_server.url, username="operator", password=PASSWORD)
    assert "/admin/login/" not in page.url, "login refused"

    def sized(viewport: dict = DESKTOP):
        page.set_viewport_size(viewport)
        return page

    yield sized
    page.close()


def _partial_run_with_its_job():
    """A run of 30 pages, 28 synced and 2 failed, driven by a sync.run job that polled 36 times over 39 s."""
    from datetime import timedelta

    from django.utils import timezone

    from jobs.models import Job, JobAttempt

    start = timezone.now() - timedelta(minutes=5)
    end = start + timedelta(seconds=39)
    job = _job(type="sync.run", status=Job.Status.FAILED, attempt=1, payload={"full": True}, started_at=end -
               timedelta(milliseconds=36), finished_at=end, error_code="sync_run_partial",
               error_message="sync run ended partial: 2 of 30 pages failed")  # fmt: skip
    polls = [JobAttempt(job=job, number=1, outcome=JobAttempt.Outcome.SNOOZED, worker="w1",
                        started_at=start + timedelta(seconds=i), finished_at=start + timedelta(seconds=i, milliseconds=20),
                        duration_ms=20) for i in range(36)]  # fmt: skip
    JobAttempt.objects.bulk_create(polls)
    JobAttempt.objects.create(job=job, number=1, outcome=JobAttempt.Outcome.FAILED, worker="w1",
                              started_at=job.started_at, finished_at=end, duration_ms=36,
                              error_code="sync_run_partial", error_message=job.error_message)  # fmt: skip
    run = SyncRun.objects.create(status=SyncRun.Status.PARTIAL, page_size=100, total_pages=30, pages_done=28,
                                 pages_failed=2, products_created=2800, job_id=job.id, finished_at=end)  # fmt: skip
    SyncRun.objects.filter(pk=run.pk).update(started_at=start)  # auto_now_add on create
    SyncPage.objects.bulk_create([
        SyncPage(run=run, number=number, status=SyncPage.Status.FAILED if number in (7, 19) else SyncPage.Status.DONE)
        for number in range(1, 31)
    ])  # fmt: skip
    return run, job


def test_run_list_fits_1440_and_a_partial_run_does_not_read_100_percent(operator_page, live_server):
    run, job = _partial_run_with_its_job()
    for name, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
        page = operator_page(viewport)
        page.goto(f"{live_server.url}/admin/sync/syncrun/")
        row = page.locator("#result_list tbody tr").first
        text = row.inner_text()
        assert "100%" not in text and "30/30" not in text, text
        assert "28 of 30" in text and "2 failed" in text, text
        screenshot(page, f"sync-runs-{name}")
        if name == "desktop":
            link = row.locator(f"a:has-text('{job.id}')")
            box = link.bounding_box()
            assert box is not None and box["x"] + box["width"] <= viewport["width"], box  # not clipped off the page
            under = page.evaluate("([x, y]) => document.elementFromPoint(x, y)?.closest('a')?.textContent",
                                  [box["x"] + box["width"] / 2, box["y"] + box["height"] / 2])  # fmt: skip
            assert under == job.id


def test_run_and_its_job_link_to_each_other_and_the_job_page_sums_up_the_polls(operator_page, live_server):
    run, job = _partial_run_with_its_job()
    for name, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
        page = operator_page(viewport)
        page.goto(f"{live_server.url}/admin/sync/syncrun/{run.pk}/change/")
        screenshot(page, f"sync-run-detail-{name}")
        page.get_by_role("link", name=job.id).first.click()
        page.wait_for_url(f"**/admin/jobs/job/{job.id}/change/")
        summary = page.locator("#job-summary").inner_text()
        assert "Total time\n39.0 s" in summary or "Total time\t39.0 s" in summary, summary
        rows = page.locator(".field-attempts_table tbody tr")
        assert rows.count() == 2, rows.all_inner_texts()
        assert "×36" in "".join(rows.nth(0).inner_text().split()), rows.nth(0).inner_text()  # 36 polls, one row
        screenshot(page, f"sync-run-job-{name}")
        page.locator("#job-summary").get_by_role("link", name=f"Sync run {run.pk}").click()
        page.wait_for_url(f"**/admin/sync/syncrun/{run.pk}/change/")


def test_replaying_dead_page_jobs_of_a_finished_run_warns_before_confirming(operator_page, live_server):
    from jobs.models import Job

    run, run_job = _partial_run_with_its_job()
    for number in (7, 19):
        _job(type="sync.fetch_page", status=Job.Status.DEAD, attempt=5, payload={"run_id": run.pk, "page": number},
             error_code="supplier_unavailable", error_message="supplier answered 502")  # fmt: skip
    for name, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
        page = operator_page(viewport)
        page.goto(f"{live_server.url}/admin/jobs/deadjob/")
        page.locator("#dead-letter-groups input.group-replay").first.click()
        page.wait_for_selector("#confirm-action")
        advice = page.locator("#replay-advice")
        assert advice.is_visible()
        text = advice.inner_text()
        assert "sync_page_closed" in text and "new run" in text, text
        screenshot(page, f"sync-replay-advice-{name}")
        advice.get_by_role("link").first.click()
        page.wait_for_url(f"**/admin/jobs/job/{run_job.id}/change/")
        assert page.locator("#job-action-replay_jobs").is_visible()
    assert Job.objects.filter(type="sync.fetch_page", replay_of__isnull=False).count() == 0
