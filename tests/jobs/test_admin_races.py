"""Admin changes go through the services: type switches, a cancel that lost a race, two replays at once."""

import threading

import pytest
from django.contrib.auth.models import User
from django.db import connections
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from jobs.admin import job as job_admin
from jobs.delivery.enqueue import job_enqueue
from jobs.models import Job, JobAuditEntry, JobTypeSwitch
from jobs.ops.operations import job_type_set_enabled
from tests.browser import DESKTOP, PHONE, admin_login, screenshot
from tests.jobs.test_admin import dead_job, post_action

S = Job.Status


@pytest.fixture
def operator(db):
    return User.objects.create_superuser("operator", "op@example.com", "pw")


@pytest.mark.django_db
def test_switch_form_offers_only_declared_types_and_refuses_others(client, operator):
    client.force_login(operator)
    add_url = reverse("admin:jobs_jobtypeswitch_add")

    form = client.get(add_url).content.decode()
    refused = client.post(add_url, {"type": "tests.no_such_type", "enabled": "", "reason": "typo"})

    assert '<option value="tests.noop">tests.noop</option>' in form
    assert refused.status_code == 200 and "Select a valid choice" in refused.content.decode()
    assert not JobTypeSwitch.objects.exists()


@pytest.mark.django_db
def test_switching_a_type_back_on_in_the_admin_relays_its_waiting_jobs(
    client, operator, redis_client, django_capture_on_commit_callbacks
):
    client.force_login(operator)
    job_type_set_enabled(job_type="tests.noop", enabled=False, reason="maintenance")
    waiting = job_enqueue(job_type="tests.always_fails").job  # another type: untouched by the switch
    Job.objects.filter(id=waiting.id).update(published_at=None)
    shelved = Job.objects.create(type="tests.noop", queue="default", max_attempts=1)  # waited while off
    switch = JobTypeSwitch.objects.get(type="tests.noop")

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("admin:jobs_jobtypeswitch_change", args=[switch.pk]),
            {"enabled": "on", "reason": "back"},
            follow=True,
        )

    assert response.status_code == 200
    assert JobTypeSwitch.objects.get(type="tests.noop").enabled
    assert Job.objects.get(id=shelved.id).published_at is not None
    assert Job.objects.get(id=waiting.id).published_at is None
    entry = JobAuditEntry.objects.filter(action=JobAuditEntry.Action.ENABLE_TYPE).get()
    assert (entry.actor, entry.detail) == (operator, {"type": "tests.noop", "reason": "back"})


@pytest.mark.django_db
def test_cancel_of_a_job_that_finished_before_the_confirmation_answers_with_a_message(
    client, operator, redis_client, monkeypatch
):
    finishing, waiting = (job_enqueue(job_type="tests.noop").job for _ in range(2))
    real_cancel = job_admin.job_cancel

    def cancel_after_the_worker_finished(*, job, **kwargs):
        if job.id == finishing.id:  # the worker finishes it between the list and the confirmation
            Job.objects.filter(id=job.id).update(status=S.SUCCEEDED, finished_at=timezone.now())
        return real_cancel(job=job, **kwargs)

    monkeypatch.setattr(job_admin, "job_cancel", cancel_after_the_worker_finished)
    client.force_login(operator)

    response = post_action(client, reverse("admin:jobs_job_changelist"), "cancel_jobs", [finishing, waiting])

    body = response.content.decode()
    assert response.status_code == 200
    assert "Cancelled 1 waiting job." in body
    assert f"1 job finished before the cancel was confirmed and was left alone: {finishing.id}" in body
    assert Job.objects.get(id=finishing.id).status == S.SUCCEEDED
    assert Job.objects.get(id=waiting.id).status == S.CANCELLED
    assert JobAuditEntry.objects.get(action="cancel").job_ids == [waiting.id]


@pytest.mark.django_db(transaction=True)
def test_two_operators_confirming_a_dead_letter_replay_at_once_replay_each_job_once(redis_client, monkeypatch):
    # PostgreSQL: the second replay waits on the first one's row locks (SELECT ... FOR UPDATE). SQLite
    # ignores FOR UPDATE, but its transactions begin IMMEDIATE (config/settings/base.py): the second
    # writer waits at BEGIN for the first to commit. Either way it then re-reads the jobs, no longer dead.
    dead = [dead_job() for _ in range(3)]
    operators = [User.objects.create_superuser(f"op{i}", f"op{i}@example.com", "pw") for i in range(2)]
    both_confirmed = threading.Barrier(2, timeout=30)
    real_replay = job_admin.job_replay_locked

    def replay_when_both_confirmed(**kwargs):
        # Both requests have read the same dead jobs as eligible; now both replay at once.
        both_confirmed.wait()
        return real_replay(**kwargs)

    monkeypatch.setattr(job_admin, "job_replay_locked", replay_when_both_confirmed)
    bodies: list[str] = []
    errors: list[BaseException] = []

    def confirm(user: User) -> None:
        try:
            client = Client()
            client.force_login(user)
            response = post_action(client, reverse("admin:jobs_deadjob_changelist"), "replay_jobs", dead)
            bodies.append(response.content.decode())
        except BaseException as error:  # reported below, on the test's thread
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=confirm, args=(user,)) for user in operators]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    assert sorted(Job.objects.filter(replay_of__in=dead).values_list("replay_of_id", flat=True)) == sorted(
        job.id for job in dead
    )
    assert sorted("Replayed 3 jobs" in body for body in bodies) == [False, True]
    assert JobAuditEntry.objects.filter(action="replay").count() == 1


@pytest.mark.django_db(transaction=True)
def test_switch_pages_in_a_real_browser(browser, live_server, redis_client):
    User.objects.create_superuser("ops", "ops@example.com", "pw-for-tests-only")
    job_type_set_enabled(job_type="tests.noop", enabled=False, reason="maintenance window")
    for name, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
        page = browser.new_page(viewport=viewport)
        try:
            admin_login(page, live_server.url, username="ops", password="pw-for-tests-only")
            page.goto(f"{live_server.url}{reverse('admin:jobs_jobtypeswitch_add')}")
            options = page.locator("#id_type option").all_inner_texts()
            assert "tests.noop" in options and "jobs.canary" in options
            screenshot(page, f"job-type-switch-add-{name}")
            page.goto(f"{live_server.url}{reverse('admin:jobs_jobtypeswitch_changelist')}")
            row = page.locator("#job-type-switches tbody tr", has_text="tests.noop")
            assert "maintenance window" in row.inner_text() and "off" in row.locator(".switch-state").inner_text()
            screenshot(page, f"job-type-switch-list-{name}")
        finally:
            page.close()
