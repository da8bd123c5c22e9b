"""django-celery-beat's periodic task form in real Chromium, under the Content-Security-Policy: its script runs
(no violation, no page error) and the task a schedule runs is shown as chosen in "Task (registered)"."""

from __future__ import annotations

import re

import pytest

from jobs.delivery.schedules import schedules_sync
from tests.browser import DESKTOP, PHONE, admin_login, screenshot

pytestmark = pytest.mark.django_db(transaction=True)
PASSWORD = "pw-for-tests-only"


@pytest.mark.parametrize("viewport, width", [(DESKTOP, "desktop"), (PHONE, "phone")])
def test_periodic_task_form_runs_its_script_and_shows_the_registered_task(
    browser, live_server, django_user_model, viewport, width
):
    from django_celery_beat.models import PeriodicTask

    django_user_model.objects.create_superuser("operator", password=PASSWORD)
    schedules_sync()
    task = PeriodicTask.objects.get(name="jobs.relay_unpublished")
    page = browser.new_page(viewport=viewport)
    problems: list[str] = []
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    try:
        admin_login(page, live_server.url, username="operator", password=PASSWORD)
        response = page.goto(f"{live_server.url}/admin/django_celery_beat/periodictask/{task.pk}/change/")
        assert "script-src 'self'" in response.headers["content-security-policy"]  # not weakened
        page.wait_for_load_state("load")
        screenshot(page, f"periodic-task-change-{width}")
        assert problems == []
        # What the operator reads in the select is the task the schedule runs.
        chosen = page.locator("#id_regtask option:checked").inner_text()
        assert chosen == "jobs.relay_unpublished", f"Task (registered) shows {chosen!r}"
        # The form's own script ran: the crontab translation row is hidden in favour of the help text.
        assert page.locator(".field-crontab_translation").count() == 0 or not page.is_visible(
            ".field-crontab_translation"
        )
    finally:
        page.close()


def test_a_custom_task_typed_over_the_filled_in_registered_one_is_kept():
    from django_celery_beat.models import PeriodicTask

    from jobs.admin.schedules import PeriodicTaskFormShowingTask

    schedules_sync()
    task = PeriodicTask.objects.get(name="jobs.relay_unpublished")
    form = PeriodicTaskFormShowingTask(instance=task)
    assert form.initial["regtask"] == "jobs.relay_unpublished"
    data = {"name": task.name, "regtask": "jobs.relay_unpublished", "task": "custom.task", "interval": task.interval_id,
            "args": "[]", "kwargs": "{}", "enabled": "on", "headers": "{}"}  # fmt: skip
    form = PeriodicTaskFormShowingTask(data=data, instance=task)
    assert form.is_valid(), form.errors
    assert form.cleaned_data["task"] == "custom.task"


@pytest.mark.parametrize("viewport, width", [(DESKTOP, "desktop"), (PHONE, "phone")])
def test_schedule_list_shows_next_run_last_job_with_its_outcome_and_the_jobs_it_made(
    browser, live_server, django_user_model, redis_client, viewport, width
):
    from jobs.delivery.schedules import schedule_trigger
    from jobs.models import Job

    django_user_model.objects.create_superuser("operator", password=PASSWORD)
    schedules_sync()
    fired = schedule_trigger(name="exports.cleanup", source="test").enqueued_job_id
    Job.objects.filter(id=fired).update(status=Job.Status.SUCCEEDED)
    unrelated = Job.objects.create(type="exports.cleanup", queue="exports")  # same type, not the schedule's
    page = browser.new_page(viewport=viewport)
    try:
        admin_login(page, live_server.url, username="operator", password=PASSWORD)
        page.goto(f"{live_server.url}/admin/django_celery_beat/periodictask/")
        screenshot(page, f"schedules-list-{width}")
        row = page.locator("#result_list tbody tr", has_text="exports.cleanup")
        # Next run: an hourly crontab fires within the hour.
        assert re.fullmatch(r"in \d+\s(minutes?|seconds?)", row.locator(".field-next_run").inner_text().strip())
        # The last run's job, with its outcome, and a link to it.
        last = row.locator(".field-last_job")
        assert last.locator(".job-badge").inner_text().lower() == "succeeded"
        assert last.locator("a.schedule-last-job").inner_text() == fired
        # A platform task makes no job, and says so.
        relay = page.locator("#result_list tbody tr", has_text="jobs.relay_unpublished")
        assert "platform task" in relay.locator(".field-last_job").inner_text()
        # Every job the schedule made, and only those.
        row.locator("a.schedule-jobs").click()
        page.wait_for_url(re.compile(r"/admin/jobs/job/\?q="))
        listed = page.locator("#result_list .job-id").all_inner_texts()
        assert listed == [fired] and unrelated.id not in listed
        screenshot(page, f"schedule-jobs-{width}")
    finally:
        page.close()
