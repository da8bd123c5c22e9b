"""Bulk replay: many finished jobs as new jobs in a few statements, linked, published, audited per chunk."""

import base64
import json

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from jobs.delivery.enqueue import job_enqueue
from jobs.foundation.exceptions import IllegalTransition, JobTypeDisabled
from jobs.models import Job, JobAuditEntry
from jobs.ops.operations import job_bulk_replay, job_bulk_replay_dead, job_type_set_enabled

S = Job.Status


def finished_job(*, job_type="tests.record", status=S.DEAD, **fields) -> Job:
    job = job_enqueue(job_type=job_type, **fields).job
    Job.objects.filter(id=job.id).update(status=status, attempt=1, finished_at=timezone.now())
    return Job.objects.get(id=job.id)


@pytest.mark.django_db(transaction=True)
def test_new_jobs_copy_payload_owner_and_correlation_and_link_back(redis_client):
    owner = User.objects.create_user("alice")
    originals = [
        finished_job(payload={"n": 1}, owner=owner, correlation_id="req-1"),
        finished_job(job_type="tests.noop", payload={"n": 2}, correlation_id="req-2", status=S.SUCCEEDED),
        finished_job(payload={"n": 3}, correlation_id="req-3", status=S.CANCELLED),
    ]
    redis_client.flushdb()

    new_jobs = job_bulk_replay(jobs=originals)

    assert [job.replay_of_id for job in new_jobs] == [job.id for job in originals]
    for original, new in zip(originals, new_jobs, strict=True):
        stored = Job.objects.get(id=new.id)
        assert (stored.type, stored.payload, stored.owner_id, stored.correlation_id) == (
            original.type, original.payload, original.owner_id, original.correlation_id,
        )  # fmt: skip
        assert (stored.status, stored.attempt, stored.payload_fingerprint) == (
            S.QUEUED,
            0,
            original.payload_fingerprint,
        )
        assert stored.published_at is not None
    messages = [json.loads(raw) for raw in redis_client.lrange("default", 0, -1)]
    published = {json.loads(base64.b64decode(message["body"]))[1]["job_id"] for message in messages}
    assert published == {job.id for job in new_jobs}


@pytest.mark.django_db
def test_statements_do_not_grow_with_the_number_of_jobs(redis_client):
    def statements_for(count: int) -> int:
        originals = [finished_job() for _ in range(count)]
        with CaptureQueriesContext(connection) as captured:
            job_bulk_replay(jobs=originals)
        return len(captured)

    assert statements_for(2) == statements_for(40)


@pytest.mark.django_db
def test_refuses_unfinished_jobs_and_switched_off_types_before_writing(redis_client):
    dead = finished_job()
    queued = job_enqueue(job_type="tests.record").job

    with pytest.raises(IllegalTransition, match="not finished"):
        job_bulk_replay(jobs=[dead, queued])
    job_type_set_enabled(job_type="tests.record", enabled=False)
    with pytest.raises(JobTypeDisabled):
        job_bulk_replay(jobs=[dead])

    assert not Job.objects.filter(replay_of=dead).exists()


@pytest.mark.django_db
def test_dead_letter_queue_is_replayed_in_chunks_oldest_first_with_progress(redis_client):
    dead = [finished_job(payload={"n": n}) for n in range(5)]
    other_type = finished_job(job_type="tests.noop")
    progress = []

    new_jobs = job_bulk_replay_dead(
        job_type="tests.record",
        actor_label="runbook",
        chunk_size=2,
        on_progress=lambda done, total: progress.append((done, total)),
    )

    assert progress == [(2, 5), (4, 5), (5, 5)]
    assert [job.replay_of_id for job in new_jobs] == [job.id for job in dead]
    assert not Job.objects.filter(replay_of=other_type).exists()
    entries = list(JobAuditEntry.objects.filter(action="bulk_replay_dead").order_by("id"))
    assert [entry.job_count for entry in entries] == [2, 2, 1]
    assert [job_id for entry in entries for job_id in entry.job_ids] == [job.id for job in dead]
    assert set(Job.objects.dead_letter().values_list("id", flat=True)) == {other_type.id}
