"""Schedules declared in code vs. django-celery-beat rows edited by operators."""

import json

import pytest
from celery.schedules import crontab
from django.core.management import call_command
from django_celery_beat.models import PeriodicTask

from jobs.delivery import schedules
from jobs.delivery.schedules import Schedule, declare, schedules_sync


@pytest.fixture
def declared(monkeypatch):
    """An isolated set of declarations for one test."""
    registry: dict[str, Schedule] = {}
    monkeypatch.setattr(schedules, "_declared", registry)
    return registry


@pytest.mark.django_db
def test_new_declarations_are_created(declared):
    declare("nightly-report", crontab(minute=30, hour=2), job_type="tests.noop", payload={"kind": "daily"})
    declare("heartbeat", 15.0, task="jobs.ping")

    report = schedules_sync()

    assert sorted(report.created) == ["heartbeat", "nightly-report"]
    nightly = PeriodicTask.objects.get(name="nightly-report")
    assert nightly.task == "jobs.run_schedule" and nightly.enabled
    assert json.loads(nightly.kwargs) == {
        "schedule": "nightly-report", "job_type": "tests.noop", "payload": {"kind": "daily"}, "window_seconds": 3600.0,
    }  # fmt: skip
    assert (nightly.crontab.minute, nightly.crontab.hour) == ("30", "2")
    heartbeat = PeriodicTask.objects.get(name="heartbeat")
    assert (heartbeat.task, heartbeat.interval.every) == ("jobs.ping", 15)


@pytest.mark.django_db
def test_second_sync_changes_nothing(declared):
    declare("heartbeat", 15.0, task="jobs.ping")
    schedules_sync()

    report = schedules_sync()

    assert report.unchanged == ["heartbeat"] and not report.created and not report.updated


@pytest.mark.django_db
def test_code_change_is_applied_when_nobody_edited_the_row(declared):
    declare("heartbeat", 15.0, task="jobs.ping")
    schedules_sync()
    declared.clear()
    declare("heartbeat", 60.0, task="jobs.ping")

    report = schedules_sync()

    assert report.updated == ["heartbeat"]
    assert PeriodicTask.objects.get(name="heartbeat").interval.every == 60


@pytest.mark.django_db
def test_operator_edit_wins_over_a_later_code_change(declared):
    declare("nightly-report", crontab(minute=30, hour=2), job_type="tests.noop")
    schedules_sync()
    # The operator moves the report to 04:30 in the admin.
    row = PeriodicTask.objects.get(name="nightly-report")
    row.crontab = type(row.crontab).objects.create(minute="30", hour="4")
    row.save()
    declared.clear()
    declare("nightly-report", crontab(minute=0, hour=3), job_type="tests.noop")

    report = schedules_sync()

    assert report.kept_operator_edits == ["nightly-report"]
    assert PeriodicTask.objects.get(name="nightly-report").crontab.hour == "4"


@pytest.mark.django_db
def test_sync_never_re_enables_a_paused_schedule(declared):
    declare("heartbeat", 15.0, task="jobs.ping")
    schedules_sync()
    PeriodicTask.objects.filter(name="heartbeat").update(enabled=False)
    declared.clear()
    declare("heartbeat", 20.0, task="jobs.ping")

    schedules_sync()

    row = PeriodicTask.objects.get(name="heartbeat")
    assert row.enabled is False and row.interval.every == 20


@pytest.mark.django_db
def test_schedule_removed_from_code_is_disabled_not_deleted(declared):
    declare("heartbeat", 15.0, task="jobs.ping")
    schedules_sync()
    declared.clear()

    report = schedules_sync()

    assert report.disabled_removed == ["heartbeat"]
    assert PeriodicTask.objects.get(name="heartbeat").enabled is False


@pytest.mark.django_db
def test_dry_run_writes_nothing(declared, capsys):
    declare("heartbeat", 15.0, task="jobs.ping")

    call_command("sync_schedules", "--dry-run")

    assert "would be created: heartbeat" in capsys.readouterr().out
    assert not PeriodicTask.objects.filter(name="heartbeat").exists()


def test_declaration_needs_exactly_one_target():
    with pytest.raises(ValueError, match="exactly one"):
        Schedule(name="x", when=5.0)
    with pytest.raises(ValueError, match="exactly one"):
        Schedule(name="x", when=5.0, job_type="a", task="b")


def test_window_is_half_the_gap_capped_at_an_hour():
    assert Schedule(name="a", when=10.0, task="t").window_seconds() == 5.0
    assert Schedule(name="b", when=crontab(minute="*/10"), task="t").window_seconds() == pytest.approx(300, abs=2)
    assert Schedule(name="c", when=crontab(minute=0, hour=3), task="t").window_seconds() == 3600.0


@pytest.mark.django_db
def test_platform_housekeeping_is_declared():
    assert {"jobs.relay_unpublished", "jobs.rescue_orphans", "jobs.prune_finished"} <= set(schedules.declared())


@pytest.mark.django_db
def test_pausing_through_the_admin_form_is_not_an_edit(declared, admin_client, capsys):
    declare("nightly", crontab(minute=0, hour=3), job_type="tests.noop", payload={"n": 1})
    schedules_sync()
    row = PeriodicTask.objects.get(name="nightly")
    page = admin_client.get(f"/admin/django_celery_beat/periodictask/{row.pk}/change/")
    form = page.context["adminform"].form
    data = {}
    for name in form.fields:
        value = form[name].value()
        if value is None or value is False:
            continue
        data[name] = "on" if value is True else value
    data.pop("enabled", None)  # unticked: paused
    response = admin_client.post(f"/admin/django_celery_beat/periodictask/{row.pk}/change/", data)
    assert response.status_code == 302, response.content.decode()[:3000]
    assert PeriodicTask.objects.get(name="nightly").enabled is False

    call_command("sync_schedules")

    out = capsys.readouterr().out
    assert "kept operator's edit" not in out and "unchanged: nightly" in out
    assert PeriodicTask.objects.get(name="nightly").enabled is False  # the pause stays the operator's


@pytest.mark.django_db
def test_take_code_drops_an_operator_edit_but_keeps_the_pause(declared, capsys):
    declare("heartbeat", 15.0, task="jobs.ping")
    schedules_sync()
    from django_celery_beat.models import IntervalSchedule

    slower, _ = IntervalSchedule.objects.get_or_create(every=99, period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.filter(name="heartbeat").update(interval=slower, enabled=False)

    call_command("sync_schedules")
    assert "--take-code heartbeat" in capsys.readouterr().out
    call_command("sync_schedules", "--take-code", "heartbeat")

    row = PeriodicTask.objects.get(name="heartbeat")
    assert (row.interval.every, row.enabled) == (15, False)
    call_command("sync_schedules")
    assert "unchanged: heartbeat" in capsys.readouterr().out


@pytest.mark.django_db
def test_pausing_from_the_list_is_in_the_schedules_history(declared, admin_client):
    from django.contrib.admin.models import LogEntry

    declare("heartbeat", 15.0, task="jobs.ping")
    schedules_sync()
    row = PeriodicTask.objects.get(name="heartbeat")

    admin_client.post("/admin/django_celery_beat/periodictask/",
                      {"action": "disable_tasks", "_selected_action": [row.pk], "index": 0})  # fmt: skip

    assert PeriodicTask.objects.get(pk=row.pk).enabled is False
    entry = LogEntry.objects.get(object_id=str(row.pk))
    assert entry.user.username == "admin" and "Paused (list action: disable)" in entry.get_change_message()
