"""The overview's charts: what they count over the last 24 hours, and that people see them (real Chromium)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from jobs.models import Job
from jobs.ops.charts import overview_charts
from tests.browser import DESKTOP, PHONE, admin_login, screenshot

S = Job.Status


def finished_job(*, status: str, ago: timedelta, run: float, wait: float, job_type: str = "tests.record",
                 queue: str = "default", attempt: int = 1, **fields) -> Job:  # fmt: skip
    finished = timezone.now() - ago
    started = finished - timedelta(seconds=run)
    return Job.objects.create(
        type=job_type, queue=queue, status=status, attempt=attempt, finished_at=finished, started_at=started,
        enqueued_at=started - timedelta(seconds=wait), **fields,
    )  # fmt: skip


@pytest.fixture
def a_day_of_jobs(db):
    for index in range(100):  # run 0.01 .. 1.00 s, waited 1 .. 100 s
        finished_job(status=S.SUCCEEDED, ago=timedelta(minutes=30), run=(index + 1) / 100, wait=index + 1)
    for _ in range(3):
        finished_job(status=S.FAILED, ago=timedelta(hours=2), run=5, wait=1, job_type="tests.bug", queue="exports")
    finished_job(status=S.SUCCEEDED, ago=timedelta(hours=30), run=100, wait=100)  # outside the window
    # Two jobs died 10 and 5 hours ago; the first was replayed 3 hours ago, so it left the queue then.
    first = finished_job(status=S.DEAD, ago=timedelta(hours=10), run=1, wait=1, job_type="tests.always_fails")
    finished_job(status=S.DEAD, ago=timedelta(hours=5), run=1, wait=1, job_type="tests.always_fails")
    replay = Job.objects.create(type="tests.always_fails", queue="default", replay_of=first)
    Job.objects.filter(id=replay.id).update(created_at=timezone.now() - timedelta(hours=3))


def test_charts_count_the_last_day(a_day_of_jobs):
    charts = overview_charts()

    finished = {status: sum(count for _, count in points) for status, points in charts.finished_per_minute.items()}
    assert finished == {"succeeded": 100, "failed": 3, "dead": 2, "cancelled": 0}
    run = {row.name: row for row in charts.run_time}
    assert run["tests.record"].count == 100
    assert run["tests.record"].p50 == pytest.approx(0.505, abs=0.01)
    assert run["tests.record"].p99 == pytest.approx(0.99, abs=0.02)
    assert run["tests.bug"].p95 == pytest.approx(5, abs=0.01)
    wait = {row.name: row for row in charts.queue_wait}
    assert wait["default"].p50 == pytest.approx(50.5 * 100 / 102, rel=0.1)  # two dead jobs waited 1 s too
    assert wait["exports"].count == 3
    sizes = dict(charts.dead_letter)
    moments = sorted(sizes)
    assert sizes[moments[0]] == 0  # 24 hours ago
    assert sizes[moments[-1]] == 1  # now: one dead job, the other replayed
    assert max(sizes.values()) == 2  # between 5 and 3 hours ago, both waited


def test_overview_page_shows_the_charts(client, a_day_of_jobs, redis_client):
    client.force_login(User.objects.create_superuser("operator", "op@example.com", "pw"))
    html = client.get("/admin/jobs/job/overview/").content.decode()
    for chart in ("chart-finished", "chart-dead-letter", "chart-run-time", "chart-queue-wait"):
        assert f'id="{chart}"' in html
    assert html.count('<svg class="jobs-chart"') == 4
    assert "series-succeeded" in html and "bar-p99" in html
    assert "<script" not in html.split('id="charts"')[1].split("<h2>Queues")[0]


def test_job_page_links_to_flower_when_configured(client, db, settings):
    client.force_login(User.objects.create_superuser("operator", "op@example.com", "pw"))
    job = Job.objects.create(type="tests.record", queue="default", celery_task_id="abc.1")
    url = f"/admin/jobs/job/{job.id}/change/"
    settings.FLOWER_URL = ""
    assert "Task in Flower" not in client.get(url).content.decode()
    settings.FLOWER_URL = "https://flower.example.com"
    assert 'href="https://flower.example.com/task/abc.1"' in client.get(url).content.decode()


@pytest.mark.django_db(transaction=True)
def test_charts_in_a_real_browser(browser, live_server, redis_client, a_day_of_jobs, settings):
    User.objects.create_superuser("ops", "ops@example.com", "pw-for-tests-only")
    settings.FLOWER_URL = "http://127.0.0.1:5555"
    job = Job.objects.filter(status=S.DEAD).first()
    Job.objects.filter(id=job.id).update(celery_task_id=f"{job.id}.3")
    for name, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
        page = browser.new_page(viewport=viewport)
        try:
            admin_login(page, live_server.url, username="ops", password="pw-for-tests-only")
            page.goto(f"{live_server.url}/admin/jobs/job/overview/")
            for chart in ("chart-finished", "chart-dead-letter", "chart-run-time", "chart-queue-wait"):
                box = page.locator(f"#{chart} svg").bounding_box()
                assert box and box["width"] >= 300 and box["height"] > 60, (chart, box)  # readable, never squeezed
                figure = page.locator(f"#{chart}").bounding_box()
                # Neither the page nor the chart's card scrolls sideways: the chart fits its card.
                assert figure and figure["x"] + figure["width"] <= viewport["width"], (chart, figure)
                assert page.locator(f"#{chart}").evaluate("f => f.scrollWidth <= f.clientWidth"), chart
            assert page.locator("#chart-finished polyline.series-succeeded").count() == 1
            assert page.locator("#chart-run-time rect.bar-p50").count() == 3
            page.locator("#charts").scroll_into_view_if_needed()
            screenshot(page, f"overview-charts-{name}")
            page.goto(f"{live_server.url}/admin/jobs/job/{job.id}/change/")
            link = page.get_by_role("link", name="Task in Flower")
            assert link.get_attribute("href") == f"http://127.0.0.1:5555/task/{job.id}.3"
            assert link.is_visible()
            screenshot(page, f"job-flower-link-{name}")
        finally:
            page.close()
