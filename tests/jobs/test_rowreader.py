"""jobs.foundation.rowreader: hand-written SQL for the API's hot reads loads instances exactly as the ORM does."""

from datetime import timedelta

import pytest
from django.db import connections
from django.utils import timezone

from jobs.api.tokens import api_token_create
from jobs.foundation.exceptions import JobNotFound
from jobs.foundation.rowreader import row_reader, table_name
from jobs.models import ApiToken, Job, JobAttempt
from jobs.ops.selectors import job_attempt_list, job_get_for, job_get_with_attempts_for


def read_all(model):
    db = connections["default"]
    reader = row_reader(model, db)
    with db.cursor() as cursor:
        cursor.execute(f"SELECT {reader.columns} FROM {table_name(db, model)}")
        return {instance.pk: instance for instance in (reader.instance(row, db) for row in cursor.fetchall())}


def values(instance):
    return {field.attname: getattr(instance, field.attname) for field in type(instance)._meta.concrete_fields}


@pytest.mark.django_db
def test_rows_become_the_instances_the_orm_loads(alice):
    now = timezone.now()
    job = Job.objects.create(type="jobs.canary", owner=alice, status=Job.Status.SUCCEEDED, payload={"n": [1, 2.5, None]},
                             result={"url": "https://x", "nested": {"a": True}}, started_at=now, finished_at=now,
                             progress=100, progress_message="done")  # fmt: skip
    JobAttempt.objects.create(job=job, number=1, outcome=JobAttempt.Outcome.FAILED, started_at=now,
                              finished_at=now, error_traceback="Traceback", duration_ms=12)  # fmt: skip
    api_token_create(user=alice, name="t", scopes=["read", "ops"], lifetime=timedelta(days=1))

    for model in (Job, JobAttempt, ApiToken):
        loaded = read_all(model)
        expected = {instance.pk: instance for instance in model.objects.all()}
        assert loaded.keys() == expected.keys()
        for pk, instance in loaded.items():
            assert values(instance) == values(expected[pk]), model
            assert not instance._state.adding  # saved instances: save() updates, as after a query
    assert read_all(ApiToken).popitem()[1].scopes == ["ops", "read"]  # JSON decoded, not a string


@pytest.mark.django_db
def test_attempts_come_in_the_order_the_orm_gives_ties_by_id(alice):
    now = timezone.now()
    job = Job.objects.create(type="jobs.canary", owner=alice)
    for number, finished in ((1, now), (2, now + timedelta(seconds=1)), (3, now - timedelta(seconds=5)), (4, now)):
        JobAttempt.objects.create(job=job, number=number, finished_at=finished, started_at=now)

    expected = [attempt.pk for attempt in job.attempts.order_by("finished_at", "id")]
    assert [attempt.pk for attempt in job_attempt_list(job=job)] == expected


@pytest.mark.django_db
def test_the_status_polls_one_query_gives_what_the_job_and_attempt_reads_give(alice, bob, staff):
    now = timezone.now()
    job = Job.objects.create(type="jobs.canary", owner=alice, status=Job.Status.RUNNING, attempt=5)
    for number, finished in ((1, now), (2, now + timedelta(seconds=1)), (3, now - timedelta(seconds=5)), (4, now),
                             (5, now)):  # fmt: skip
        JobAttempt.objects.create(job=job, number=number, finished_at=finished, started_at=now)
    no_attempts = Job.objects.create(type="jobs.canary", owner=alice)

    for user, job_id in ((alice, job.id), (alice, no_attempts.id), (staff, job.id)):
        got_job, got_attempts = job_get_with_attempts_for(user=user, job_id=job_id)
        expected_job = job_get_for(user=user, job_id=job_id)
        assert values(got_job) == values(expected_job)
        assert [values(attempt) for attempt in got_attempts] == [
            values(attempt) for attempt in job_attempt_list(job=expected_job)
        ]
    assert [attempt.number for attempt in job_get_with_attempts_for(user=alice, job_id=job.id)[1]] == [3, 1, 4, 5, 2]
    assert job_get_with_attempts_for(user=alice, job_id=no_attempts.id)[1] == []
    for user, job_id in ((bob, job.id), (alice, "no-such-job"), (alice, "x" * 40 + "'")):
        with pytest.raises(JobNotFound):
            job_get_with_attempts_for(user=user, job_id=job_id)
