"""Defects of the operator console found by walking it in a browser (issue 29: 1, 4 and 6).

Each test looks at what a person sees: the element under a click point, the words on the page,
which buttons are offered. Screenshots go to var/screenshots/.
"""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import Permission
from django.utils import timezone

from jobs.core import registry
from jobs.core.lifecycle import Failure, job_fail_attempt, job_start_attempt, job_succeed
from jobs.core.registry import all_types
from jobs.delivery.enqueue import job_enqueue
from jobs.models import Job, JobAuditEntry, JobTypeSwitch
from tests.browser import DESKTOP, PHONE, admin_login, screenshot

pytestmark = [pytest.mark.django_db(transaction=True)]
S = Job.Status
PASSWORD = "pw-for-tests-only"


@pytest.fixture
def operator(django_user_model):
    return django_user_model.objects.create_superuser("operator", "operator@example.com", PASSWORD)


@pytest.fixture
def page_for(browser, live_server, operator, redis_client):  # an empty Redis: no earlier test's login throttle
    pages = []

    def open_page(viewport: dict = DESKTOP, username: str = "operator"):
        page = browser.new_page(viewport=viewport)
        errors: list[str] = []
        page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
        page.console_errors = errors
        pages.append(page)
        admin_login(page, live_server.url, username=username, password=PASSWORD)
        return page

    yield open_page
    for page in pages:
        page.close()


def running_job(job_type: str = "tests.until_cancelled") -> Job:
    """A job claimed by a (pretend) worker: running, with a lease, and nobody to stop it."""
    job = job_enqueue(job_type=job_type, payload={}).job
    started = job_start_attempt(job_id=job.id, attempt=1, worker="worker1@test", celery_task_id=f"{job.id}.1")
    assert started is not None
    return started


def element_under_centre(page, locator) -> str:
    """What a click at the middle of ``locator`` lands on: "self" when it is the element itself."""
    box = locator.bounding_box()
    assert box is not None
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    return page.evaluate(
        """([x, y, el]) => { const hit = document.elementFromPoint(x, y);
             return hit === el || el.contains(hit) ? "self" : (hit ? hit.outerHTML.slice(0, 120) : "nothing"); }""",
        [x, y, locator.element_handle()],
    )


def dead_job(message: str) -> Job:
    """A job that spent its three attempts on the same transient error, through the worker's services."""
    job = job_enqueue(job_type="tests.always_fails", payload={"message": message}).job
    for attempt in (1, 2, 3):
        started = job_start_attempt(job_id=job.id, attempt=attempt, worker="worker1@test",
                                    celery_task_id=f"{job.id}.{attempt}")  # fmt: skip
        assert started is not None
        job_fail_attempt(job=started, spec=registry.get(job.type), failure=Failure(code="transient_error",
                         message=message), retryable=True)  # fmt: skip
    job.refresh_from_db()
    assert job.status == S.DEAD
    return job


# What a provider's outage looks like: a long message, so the group's row spans the page.
OUTAGE = ("upstream returned 503 Service Unavailable for https://catalog.example.com/v2/products?page=17&per_page=500 "
          "after 30.0 s: connection reset by peer while reading the response body")  # fmt: skip


def test_dead_letter_retry_all_is_clickable_and_counts_read_right(page_for, live_server):
    for _ in range(3):
        dead_job(OUTAGE)
    for name, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
        page = page_for(viewport)
        page.goto(f"{live_server.url}/admin/jobs/deadjob/")
        screenshot(page, f"defect1-dead-letter-{name}")
        last_group = page.locator("#dead-letter-groups tbody tr").last
        for button in (last_group.locator(".group-retry"), last_group.locator(".group-replay")):
            button.scroll_into_view_if_needed()
            assert element_under_centre(page, button) == "self"
        assert page.locator("a", has_text="Overview and alerts").first.is_visible()
        paginator = page.locator("p.paginator").inner_text()
        assert "3 dead jobs" in paginator, paginator
        assert not re.search(r"\d dead-letter queue", page.inner_text("#content")), (
            "a count reads 'N dead-letter queue'"
        )
    last_group.locator(".group-retry").click()
    assert "Retry 3 jobs?" in page.inner_text("h1")
    assert not page.console_errors


def test_cancelling_a_running_job_says_what_happens(page_for, live_server):
    job = running_job()
    for name, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
        page = page_for(viewport)
        page.goto(f"{live_server.url}/admin/jobs/job/{job.id}/change/")
        headings = page.locator("fieldset h2, fieldset legend").all_inner_texts()
        assert not any("Last failure" in heading for heading in headings), headings  # a healthy job has none
        screenshot(page, f"defect4-running-job-{name}")

    page = page_for(DESKTOP)
    page.goto(f"{live_server.url}/admin/jobs/job/{job.id}/change/")
    page.click("#job-action-cancel_jobs")
    content = page.inner_text("#content")
    assert "Cancel 1 job?" in page.inner_text("h1")
    assert "Why these jobs ended" not in content  # it has not ended, nor failed
    assert "running" in content.lower() and "next progress check" in content
    screenshot(page, "defect4-cancel-confirm-desktop")
    page.click("#confirm-action")
    page.wait_for_url(f"**/admin/jobs/job/{job.id}/change/")
    assert "Asked 1 running job to stop at its next progress check." in page.locator(".messagelist").inner_text()
    summary = page.locator("#job-summary").inner_text()
    assert "Cancel requested" in summary, summary
    assert page.locator("#job-action-cancel_jobs").count() == 0  # asked once; a second click does nothing more
    screenshot(page, "defect4-cancel-requested-desktop")
    assert Job.objects.get(id=job.id).cancel_requested
    assert not page.console_errors


def test_a_finished_job_shows_no_lease(page_for, live_server):
    job = running_job("tests.noop")
    assert job_succeed(job=job, finished_at=timezone.now(), result={"ok": True})
    page = page_for(DESKTOP)
    page.goto(f"{live_server.url}/admin/jobs/job/{job.id}/change/")
    assert "succeeded" in page.locator("#job-summary .job-badge").inner_text().lower()
    body = page.inner_text("#content")
    assert "Lease expires at" not in body and "lease expires at" not in body.lower()
    assert "Last failure" not in page.locator("#content-main").inner_text()
    screenshot(page, "defect4-finished-job-desktop")


def test_switches_list_every_declared_type_with_a_toggle(page_for, live_server, django_user_model):
    assert not JobTypeSwitch.objects.exists()
    declared = {spec.name: spec.queue for spec in all_types()}
    for name, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
        page = page_for(viewport)
        page.goto(f"{live_server.url}/admin/jobs/jobtypeswitch/")
        screenshot(page, f"defect6-switches-{name}")
        rows = page.locator("#job-type-switches tbody tr")
        assert rows.count() == len(declared)
        row = rows.filter(has_text="tests.noop")
        assert declared["tests.noop"] in row.locator(".switch-queue").inner_text()
        assert row.locator(".switch-state").inner_text().strip().lower() == "on"
        toggle = row.locator("button.switch-toggle")
        assert toggle.is_visible() and toggle.inner_text().strip() == "Switch off"
        box = toggle.bounding_box()
        assert box is not None and box["x"] + box["width"] <= viewport["width"]

    row = page.locator("#job-type-switches tbody tr", has_text="tests.noop")
    row.locator("input[name=reason]").fill("incident 42")
    row.locator("button.switch-toggle").click()
    assert "Switched tests.noop off." in page.locator(".messagelist").inner_text()
    row = page.locator("#job-type-switches tbody tr", has_text="tests.noop")
    assert row.locator(".switch-state").inner_text().strip().lower().startswith("off")
    assert "incident 42" in row.inner_text()
    assert JobTypeSwitch.objects.get(type="tests.noop").enabled is False
    entry = JobAuditEntry.objects.get(action=JobAuditEntry.Action.DISABLE_TYPE)
    assert entry.actor.username == "operator" and entry.detail["type"] == "tests.noop"
    row.locator("button.switch-toggle").click()
    assert "Switched tests.noop on." in page.locator(".messagelist").inner_text()
    assert JobTypeSwitch.objects.get(type="tests.noop").enabled is True
    assert not page.console_errors

    # Who may only look sees the states, and no toggle.
    viewer = django_user_model.objects.create_user("viewer", password=PASSWORD, is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_jobtypeswitch"))
    page = page_for(DESKTOP, username="viewer")
    page.goto(f"{live_server.url}/admin/jobs/jobtypeswitch/")
    assert page.locator("#job-type-switches tbody tr").count() == len(declared)
    assert page.locator("button.switch-toggle").count() == 0
