"""The operator's admin in a real browser (Debian's Chromium), with jobs run by real workers.

Walks what an operator does in an incident: open a dead job and see why at the top, replay it
from its page and a whole cause from the dead-letter queue, switch a type off (only declared
types offered), watch the overview, and triage from a phone. Screenshots go to var/screenshots/.
"""

from __future__ import annotations

import re

import pytest

from jobs.core.registry import all_types
from jobs.delivery.enqueue import job_enqueue
from jobs.models import Job, JobTypeSwitch
from tests.browser import DESKTOP, PHONE, admin_login, screenshot
from tests.processes import wait_for

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]
S = Job.Status
PASSWORD = "pw-for-tests-only"


def finished(job_id: str, status: str, timeout: float = 60) -> Job:
    return wait_for(lambda: Job.objects.filter(id=job_id, status=status).first(), timeout=timeout,
                    message=f"job {job_id} to be {status}")  # fmt: skip


@pytest.fixture(autouse=True)
def fresh_worker_status():
    """The overview caches who consumes each queue; an earlier test's workers are gone."""
    from django.core.cache import cache

    cache.clear()


@pytest.fixture
def operator(django_user_model):
    return django_user_model.objects.create_superuser("operator", "operator@example.com", PASSWORD)


@pytest.fixture
def jobs_of_every_outcome(start_worker):
    """A succeeded, a retried-then-succeeded, a failed and two dead jobs, all run by a real worker."""
    start_worker(queues="default", concurrency=2)
    jobs = {
        "succeeded": job_enqueue(job_type="tests.noop", payload={}).job,
        "retried": job_enqueue(job_type="tests.connection_flaky", payload={"fail_first": 1}).job,
        "failed": job_enqueue(job_type="tests.bug", payload={"case": 1}).job,
        "dead": job_enqueue(job_type="tests.always_fails", payload={"case": 1}).job,
        "dead_too": job_enqueue(job_type="tests.always_fails", payload={"case": 2}).job,
    }
    expected = {"succeeded": S.SUCCEEDED, "retried": S.SUCCEEDED, "failed": S.FAILED, "dead": S.DEAD,
                "dead_too": S.DEAD}  # fmt: skip
    return {name: finished(job.id, expected[name]) for name, job in jobs.items()}


@pytest.fixture
def page_for(browser, live_server, operator):
    pages = []

    def open_page(viewport: dict = DESKTOP):
        page = browser.new_page(viewport=viewport)
        pages.append(page)
        admin_login(page, live_server.url, username="operator", password=PASSWORD)
        return page

    yield open_page
    for page in pages:
        page.close()


def test_dead_job_page_shows_the_error_first_and_replays_from_there(page_for, live_server, jobs_of_every_outcome):
    dead = jobs_of_every_outcome["dead"]
    for name, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
        page = page_for(viewport)
        page.goto(f"{live_server.url}/admin/jobs/job/{dead.id}/change/")
        summary = page.locator("#job-summary")
        assert "Dead" in summary.locator(".job-badge").first.inner_text().title()
        error = page.locator("#job-error").inner_text()
        assert "transient_error" in error and "always fails (attempt 3)" in error
        assert "attempt 3 of 3" in summary.inner_text()
        # At the top: the error is on the first screen, not the third section.
        box = page.locator("#job-error").bounding_box()
        assert box is not None and box["y"] + box["height"] < viewport["height"]
        # Times to the second, the traceback keeps its indentation.
        assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", summary.inner_text())
        assert "\n    raise TransientJobError" in page.locator(".field-traceback_block .job-traceback").inner_text()
        assert "JobLogLine object" not in page.inner_text("body") and "JobAttempt object" not in page.inner_text("body")
        screenshot(page, f"job-dead-{name}")

    page = page_for(DESKTOP)
    page.goto(f"{live_server.url}/admin/jobs/job/{dead.id}/change/")
    assert not page.locator("#job-action-cancel_jobs").count()  # only what applies to a dead job
    page.click("#job-action-replay_jobs")
    assert "Replay 1 job?" in page.inner_text("h1")
    assert "transient_error" in page.inner_text("#content-main")  # why it failed, on the confirmation
    screenshot(page, "job-replay-confirm-desktop")
    page.click("#confirm-action")
    page.wait_for_url(f"**/admin/jobs/job/{dead.id}/change/")
    message = page.locator(".messagelist .success").inner_text()
    assert "Replayed 1 job as a new job" in message
    replay = Job.objects.get(replay_of=dead)
    page.click(f".messagelist a:has-text('{replay.id}')")
    page.wait_for_url(f"**/admin/jobs/job/{replay.id}/change/", wait_until="domcontentloaded")
    assert dead.id in page.locator("#job-summary").inner_text()  # "replay of" the original
    screenshot(page, "job-replay-new-desktop")


def test_dead_letter_queue_groups_by_cause_and_replays_a_group(page_for, live_server, jobs_of_every_outcome):
    for name, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
        page = page_for(viewport)
        page.goto(f"{live_server.url}/admin/jobs/deadjob/")
        group = page.locator("#dead-letter-groups tbody tr", has_text="tests.always_fails")
        assert "transient_error" in group.inner_text() and "2 jobs" in group.inner_text()
        screenshot(page, f"dead-letter-queue-{name}")

    group.locator("a.button", has_text="View").click()
    page.wait_for_url("**/admin/jobs/deadjob/?*error_code=transient_error*")
    assert page.locator("#result_list tbody tr").count() == 2

    page = page_for(DESKTOP)
    page.goto(f"{live_server.url}/admin/jobs/deadjob/")
    page.locator("#dead-letter-groups tbody tr", has_text="tests.always_fails").locator(".group-replay").click()
    assert "Replay 2 jobs?" in page.inner_text("h1")
    screenshot(page, "dead-letter-group-confirm-desktop")
    page.click("#confirm-action")
    message = page.locator(".messagelist .success").inner_text()
    assert "Replayed 2 jobs as new jobs" in message
    new_ids = set(Job.objects.filter(replay_of__isnull=False).values_list("id", flat=True))
    assert len(new_ids) == 2 and all(job_id in message for job_id in new_ids)
    first = sorted(new_ids)[0]
    # The document is what the assertions read: waiting for the load event (every subresource) once timed out
    # after 30 s in a loaded CI run on PostgreSQL, cause not found; it passed alone and in the other runs.
    page.click(f".messagelist a:has-text('{first}')")
    page.wait_for_url(f"**/admin/jobs/job/{first}/change/", wait_until="domcontentloaded")
    assert "tests.always_fails" in page.locator("#job-summary").inner_text()


def test_switch_offers_only_declared_types_and_the_overview_shows_it(page_for, live_server):
    page = page_for(DESKTOP)
    page.goto(f"{live_server.url}/admin/jobs/jobtypeswitch/add/")
    offered = [value for value in page.locator("select#id_type option").evaluate_all("o => o.map(x => x.value)")
               if value]  # fmt: skip
    assert sorted(offered) == sorted(spec.name for spec in all_types())
    assert page.locator("input#id_type").count() == 0  # no free text: a typo cannot be saved
    page.select_option("select#id_type", "jobs.canary")
    page.uncheck("#id_enabled")
    page.fill("#id_reason", "incident 42")
    screenshot(page, "switch-add-desktop")
    page.click("input[name=_save]")
    assert JobTypeSwitch.objects.get(type="jobs.canary").enabled is False

    page.goto(f"{live_server.url}/admin/jobs/job/overview/")
    assert "jobs.canary" in page.locator("#overview-switched-off").inner_text()


def test_overview_links_and_refreshes(page_for, live_server, jobs_of_every_outcome):
    for name, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
        page = page_for(viewport)
        page.goto(f"{live_server.url}/admin/jobs/job/overview/")
        screenshot(page, f"overview-{name}")

    # Who consumes each queue, from Celery's inspect: the test's worker takes "default" only.
    workers = page.locator("#overview-queues tr", has_text="default").locator(".queue-workers").inner_text()
    assert workers.startswith("worker1@")
    assert "none answering" in page.locator("#overview-queues tr", has_text="emails").inner_text()
    page.goto(f"{live_server.url}/admin/jobs/job/overview/?refresh=5")
    stamp = page.locator("#content-main p").first.inner_text()
    with page.expect_navigation(timeout=15_000):  # reloads itself
        pass
    assert page.locator("#content-main p").first.inner_text() != stamp
    page.click("#overview-dead-letter")
    page.wait_for_url("**/admin/jobs/deadjob/")
    page.goto(f"{live_server.url}/admin/jobs/job/overview/")
    page.click("#overview-queues a:has-text('default')")
    page.wait_for_url("**/admin/jobs/job/?queue=default*")


def test_job_list_on_a_phone_shows_status_and_type(page_for, live_server, jobs_of_every_outcome):
    page = page_for(PHONE)
    page.goto(f"{live_server.url}/admin/jobs/job/")
    screenshot(page, "job-list-phone")
    first_row = page.locator("#result_list tbody tr").first
    for cell in (first_row.locator(".job-badge"), first_row.locator(".field-job_label strong")):
        box = cell.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]
    assert first_row.locator(".job-badge").inner_text().strip()
    page.set_viewport_size(DESKTOP)
    page.goto(f"{live_server.url}/admin/jobs/job/")
    screenshot(page, "job-list-desktop")
    header = page.locator("#result_list thead").inner_text().lower()
    assert all(column in header for column in ("status", "job", "error", "attempts", "created"))
    error_cell = page.locator("#result_list tbody tr", has_text="tests.bug").locator("td.field-short_error")
    box = error_cell.bounding_box()
    assert "ValueError" in error_cell.inner_text() and box["x"] + box["width"] <= DESKTOP["width"]
    # Every column fits beside the filters: nothing is cut off or scrolled out of the list.
    table, container = page.locator("#result_list").bounding_box(), page.locator("#changelist-form").bounding_box()
    assert table["x"] + table["width"] <= container["x"] + container["width"] + 1
