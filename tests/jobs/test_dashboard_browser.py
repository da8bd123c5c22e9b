"""The operators' landing dashboard (issue 29) in real Chromium at 1440 and 390 px: linked first from the admin's
home and from every admin page, its figures the same as /api/ops/overview's, refreshed in place (no reload) every
few seconds and when another throughput range is chosen, every queue with its latency and consumers, the
dead-letter groups, alerts titled in words with their runbook link, and nothing scrolling sideways on a phone."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from jobs.models import Job
from tests.browser import DESKTOP, PHONE, admin_login, screenshot

pytestmark = pytest.mark.django_db(transaction=True)
S = Job.Status
PASSWORD = "pw-for-tests-only"


def make_job(status: str, *, queue: str = "default", ago: float = 0, **fields) -> Job:
    at = timezone.now() - timedelta(seconds=ago)
    job = Job.objects.create(type=fields.pop("type", "tests.record"), queue=queue, status=status, enqueued_at=at,
                             **fields)  # fmt: skip
    Job.objects.filter(id=job.id).update(created_at=at)
    return job


@pytest.fixture
def a_busy_platform(redis_client, settings):
    """Work waiting on two queues, one running, a day and a week of outcomes, and two dead-letter groups."""
    settings.JOBS_ALERT_DEAD_JOBS = 1
    now = timezone.now()
    make_job(S.QUEUED, ago=90)
    make_job(S.QUEUED, queue="exports", ago=20)
    make_job(S.RETRYING, ago=300, next_retry_at=now + timedelta(minutes=5))
    make_job(S.RUNNING, started_at=now)
    for minutes_ago, status in ((2, S.SUCCEEDED), (5, S.SUCCEEDED), (8, S.FAILED), (30, S.SUCCEEDED),
                                (200, S.SUCCEEDED), (60 * 30, S.SUCCEEDED), (60 * 24 * 3, S.FAILED)):  # fmt: skip
        make_job(
            status, finished_at=now - timedelta(minutes=minutes_ago), error_code="boom" if status == S.FAILED else ""
        )
    for code in ("supplier_unavailable", "supplier_unavailable", "smtp_refused"):
        make_job(S.DEAD, type="tests.always_fails", finished_at=now - timedelta(minutes=3), error_code=code,
                 error_message=f"{code} while testing")  # fmt: skip
    User.objects.create_superuser("ops", "ops@example.com", PASSWORD)


def figures(page) -> dict[str, str]:
    """Every figure the dashboard shows, by the path of the same figure in /api/ops/overview's answer."""
    return dict(
        page.eval_on_selector_all("[data-figure]", "els => els.map(e => [e.dataset.figure, e.innerText.trim()])")
    )


def api_figures(body: dict) -> dict[str, str]:
    """/api/ops/overview's answer, written as the dashboard writes each figure."""
    found = {f"jobs.{status}": str(count) for status, count in body["jobs"].items()}
    found["dead_letter_queue"] = str(body["dead_letter_queue"])
    rate = body["last_window"]["success_rate"]
    found["last_window.success_rate"] = "-" if rate is None else f"{rate * 100:.1f} %"
    for queue in body["queues"]:
        name = queue["name"]
        found[f"queues.{name}.broker_depth"] = str(queue["broker_depth"])
        found[f"queues.{name}.due_jobs"] = str(queue["due_jobs"])
        oldest = queue["oldest_due_seconds"]
        found[f"queues.{name}.oldest_due_seconds"] = "-" if oldest is None else f"{oldest:.0f} s"
    return found


def same_as_the_api(page, body: dict) -> None:
    """The dashboard's figures equal the API's answer; a backlog's age as of each one's ``generated_at``."""
    shown, answered = figures(page), api_figures(body)
    assert shown.keys() == answered.keys()
    shown_at = datetime.fromisoformat(page.locator("#dashboard-status").get_attribute("data-generated-at"))
    between = (datetime.fromisoformat(body["generated_at"]) - shown_at).total_seconds()
    for key, value in shown.items():
        if key.endswith("oldest_due_seconds") and value != "-":
            # Both rounded to whole seconds: one second either way.
            assert abs(int(answered[key].split()[0]) - between - int(value.split()[0])) <= 1.5, (
                key,
                value,
                answered[key],
            )
        else:
            assert value == answered[key], (key, value, answered[key])


def no_sideways_scroll(page, width: int) -> None:
    overflow = page.evaluate("() => document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 1, f"the page scrolls sideways by {overflow} px at {width} px"
    for section in ("#dashboard-queues", "#dashboard-dead-letter", "#dashboard-throughput", "#dashboard-counts"):
        # The section, and every box inside it that could scroll (inline elements have no width of their own).
        inner = page.locator(section).evaluate(
            "el => Math.max(...[el, ...el.querySelectorAll('*')].filter(e => e === el || "
            "['auto', 'scroll'].includes(getComputedStyle(e).overflowX)).map(e => e.scrollWidth - e.clientWidth))"
        )
        assert inner <= 1, f"{section} scrolls sideways by {inner} px at {width} px"


@pytest.mark.parametrize("viewport, width", [(DESKTOP, "desktop"), (PHONE, "phone")])
def test_dashboard_shows_the_overview_figures_and_refreshes_in_place(browser, live_server, a_busy_platform,
                                                                     viewport, width):  # fmt: skip
    page = browser.new_page(viewport=viewport)
    try:
        admin_login(page, live_server.url, username="ops", password=PASSWORD)
        # The admin's home links the dashboard first, above the apps; every admin page has it in the header.
        page.goto(f"{live_server.url}/admin/")
        callout = page.locator("#index-dashboard")
        assert (
            callout.is_visible()
            and callout.bounding_box()["y"] < page.locator("#content-main .module").first.bounding_box()["y"]
        )
        page.goto(f"{live_server.url}/admin/jobs/job/?status__exact=dead")
        page.click("#nav-dashboard")
        page.wait_for_url(re.compile(r"/admin/jobs/job/dashboard/$"))
        page.wait_for_selector("#dashboard-live [data-figure]")
        screenshot(page, f"dashboard-{width}")

        # Same figures as the API's, read by the same logged-in browser.
        answer = page.request.get(f"{live_server.url}/api/ops/overview")
        assert answer.ok, answer.status
        body = answer.json()
        same_as_the_api(page, body)
        assert figures(page)["jobs.queued"] == "2" and figures(page)["dead_letter_queue"] == "3"
        assert {"housekeeping", "default", "exports"} <= set(page.locator("#overview-queues tr[data-queue]").evaluate_all(
            "rows => rows.map(r => r.dataset.queue)"))  # fmt: skip
        # Alerts read as words and link to their runbook section; the codes are the API's.
        alert = page.locator("#overview-alerts li[data-alert=dead_letter_queue]")
        assert alert.locator(".alert-title").inner_text() == "Dead-letter queue not empty"
        assert alert.locator("a.alert-runbook").get_attribute("href") == next(
            a["runbook_url"] for a in body["alerts"] if a["code"] == "dead_letter_queue")  # fmt: skip
        # Dead-letter groups, largest first, each a link to its part of the queue.
        groups = page.locator("#dashboard-dead-letter tbody tr")
        assert groups.count() == 2 and "supplier_unavailable" in groups.first.inner_text()
        assert "2 jobs" in groups.first.inner_text()

        # Throughput: the last hour by default (3 jobs ended in it), then 24 h and 7 d without a reload.
        page.evaluate("() => { window.notReloaded = true; }")
        assert page.locator("#dashboard-ranges a[aria-current=true]").inner_text() == "1h"
        assert page.locator("[data-throughput=succeeded]").inner_text() == "3"
        assert page.locator("[data-throughput=failed]").inner_text() == "1"
        page.click("#dashboard-ranges a[data-range='24h']")
        page.wait_for_function(
            "() => document.querySelector('#dashboard-ranges a[aria-current=true]').innerText === '24h'"
        )
        assert page.locator("[data-throughput=succeeded]").inner_text() == "4"  # not the one 30 h ago
        page.click("#dashboard-ranges a[data-range='7d']")
        page.wait_for_function("() => document.querySelector('[data-throughput=failed]').innerText === '2'")
        assert page.locator("[data-throughput=succeeded]").inner_text() == "5"
        assert page.url.endswith("?range=7d") and page.evaluate("() => window.notReloaded") is True
        screenshot(page, f"dashboard-7d-{width}")

        # Live: new work shows up by itself within the refresh interval, still without a reload.
        make_job(S.QUEUED, ago=1)
        page.wait_for_function("() => document.querySelector('[data-figure=\"jobs.queued\"]').innerText === '3'",
                               timeout=15_000)  # fmt: skip
        assert page.evaluate("() => window.notReloaded") is True
        assert page.locator("#dashboard-ranges a[aria-current=true]").inner_text() == "7d"  # the range stays chosen
        same_as_the_api(page, page.request.get(f"{live_server.url}/api/ops/overview").json())
        no_sideways_scroll(page, viewport["width"])
        screenshot(page, f"dashboard-refreshed-{width}")
    finally:
        page.close()
