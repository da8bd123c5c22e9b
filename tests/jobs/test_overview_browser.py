"""The overview's charts, alerts and queue table as an operator sees them (issue 29, defect 5), in real Chromium
at 1440 and 390 px: recent data is drawn wide enough to read, the y-axis counts are distinct, a phone shows each
chart whole with "now" in view, alerts read as words with a runbook link that opens, and every queue is listed."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from jobs.models import Job
from tests.browser import DESKTOP, PHONE, admin_login, screenshot

pytestmark = pytest.mark.django_db(transaction=True)
S = Job.Status
PASSWORD = "pw-for-tests-only"


@pytest.fixture
def a_quiet_day_then_a_few_minutes_of_work(redis_client, settings):
    """All the day's jobs finished in the last ten minutes, one of them dead (so the dead-letter alert is up)."""
    settings.JOBS_ALERT_DEAD_JOBS = 1
    now = timezone.now()
    for minutes in (9, 6, 3, 1):
        for _ in range(3):
            finished = now - timedelta(minutes=minutes)
            Job.objects.create(type="tests.record", queue="default", status=S.SUCCEEDED, attempt=1,
                               enqueued_at=finished - timedelta(seconds=2), started_at=finished - timedelta(seconds=1),
                               finished_at=finished)  # fmt: skip
    finished = now - timedelta(minutes=4)
    Job.objects.create(type="tests.always_fails", queue="default", status=S.DEAD, attempt=3, error_code="boom",
                       enqueued_at=finished, started_at=finished, finished_at=finished)  # fmt: skip
    User.objects.create_superuser("ops", "ops@example.com", PASSWORD)


@pytest.mark.parametrize("viewport, width", [(DESKTOP, "desktop"), (PHONE, "phone")])
def test_overview_charts_alerts_and_queues_read_well(browser, live_server, a_quiet_day_then_a_few_minutes_of_work,
                                                     viewport, width):  # fmt: skip
    page = browser.new_page(viewport=viewport)
    try:
        admin_login(page, live_server.url, username="ops", password=PASSWORD)
        page.goto(f"{live_server.url}/admin/jobs/job/overview/")
        screenshot(page, f"overview-defect5-{width}")
        for chart in ("chart-finished", "chart-dead-letter"):
            figure = page.locator(f"#{chart}")
            figure.scroll_into_view_if_needed()
            screenshot(page, f"overview-defect5-{chart}-{width}")
            # The chart fits its card: nothing to scroll sideways to, and "now" is on screen.
            overflow = figure.evaluate("f => f.scrollWidth - f.clientWidth")
            assert overflow <= 1, f"{chart} scrolls sideways by {overflow} px"
            now = figure.locator("svg text", has_text=re.compile(r"^now$")).bounding_box()
            assert now and 0 <= now["x"] and now["x"] + now["width"] <= viewport["width"], f"{chart}: 'now' at {now}"
        # Ten minutes of work is drawn across a readable share of the chart, not a sliver at "now".
        plot = page.locator("#chart-finished svg").bounding_box()
        drawn = page.locator("#chart-finished polyline.series-succeeded").bounding_box()
        assert drawn and drawn["width"] >= plot["width"] / 8, f"10 minutes of jobs drawn {drawn} wide in {plot}"
        # The dead-letter chart's y-axis: each count once (not 1/0/0).
        numbers = [text for text in page.locator("#chart-dead-letter svg text").all_text_contents()
                   if re.fullmatch(r"\d+", text.strip())]  # fmt: skip
        assert numbers and len(numbers) == len(set(numbers)), f"y-axis reads {numbers}"
        # Alerts: a title in words, and the runbook a link that opens its section.
        alert = page.locator("#overview-alerts li", has_text="dead-letter").first
        assert "dead_letter_queue" not in alert.inner_text() and "Dead-letter queue" in alert.inner_text()
        runbook = alert.get_by_role("link", name=re.compile("runbook", re.I))
        href = runbook.get_attribute("href")
        assert href and href.endswith("#operator-runbook-the-dead-letter-queue"), href
        # The housekeeping queue is in the queue table with the others.
        queues = page.locator("#overview-queues tbody td:first-child").all_inner_texts()
        assert "housekeeping" in queues, queues
        runbook.click()
        page.wait_for_load_state("load")
        heading = page.locator("#operator-runbook-the-dead-letter-queue")
        assert heading.is_visible() and "dead-letter queue" in heading.inner_text()
        screenshot(page, f"runbook-{width}")
    finally:
        page.close()
