"""bulk_insert_varying: shared columns once, varying columns per row; rows as the ORM would load them.

Runs on whichever database the suite uses (PostgreSQL's unnest statement in CI, SQLite's
json_each statement on the embedded default); both must store what the ORM would.
"""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from jobs.foundation.bulkinsert import bulk_insert_varying
from jobs.models import Job, new_job_id

COMPARED_FIELDS = [field.attname for field in Job._meta.concrete_fields]


def template_job(**fields) -> Job:
    now = timezone.now()
    return Job(type="tests.record", queue="default", max_attempts=3, correlation_id="corr-1", enqueued_at=now, **fields)


@pytest.mark.django_db
def test_inserted_rows_match_what_the_database_holds(alice):
    ids = [new_job_id() for _ in range(3)]
    payloads = [{"index": 0}, {"nested": {"list": [1, "two", None]}}, {}]
    expires = timezone.now() + timedelta(hours=1)

    rows = bulk_insert_varying(
        template=template_job(owner=alice),
        varying={
            "id": ids, "payload": payloads, "idempotency_key": ["k-0", None, "k-2"],
            "idempotency_expires_at": [expires, None, expires],
        },
    )  # fmt: skip

    assert [row.id for row in rows] == ids
    for row in rows:
        stored = Job.objects.get(id=row.id)
        assert {name: getattr(row, name) for name in COMPARED_FIELDS} == {
            name: getattr(stored, name) for name in COMPARED_FIELDS
        }
        assert row._state.adding is False
    stored = Job.objects.get(id=ids[1])
    assert (stored.status, stored.attempt, stored.owner_id, stored.payload) == (
        "queued", 0, alice.id, {"nested": {"list": [1, "two", None]}},
    )  # fmt: skip
    assert stored.created_at is not None and stored.updated_at is not None  # auto_now(_add) applied


@pytest.mark.django_db
def test_skip_conflicts_returns_only_the_rows_inserted():
    taken = Job.objects.create(type="tests.record", queue="default", idempotency_key="taken")
    ids = [new_job_id() for _ in range(3)]

    rows = bulk_insert_varying(
        template=template_job(),
        varying={"id": ids, "idempotency_key": ["free-1", "taken", "free-2"]},
        skip_conflicts=True,
    )

    assert [row.id for row in rows] == [ids[0], ids[2]]
    assert Job.objects.get(idempotency_key="taken").id == taken.id
    assert Job.objects.filter(id=ids[1]).exists() is False


@pytest.mark.django_db
def test_statements_do_not_grow_with_the_row_count():
    def statements_for(count: int) -> int:
        with CaptureQueriesContext(connection) as captured:
            bulk_insert_varying(template=template_job(), varying={"id": [new_job_id() for _ in range(count)]})
        return len(captured)

    assert statements_for(3) == statements_for(3000) == 1
    assert Job.objects.count() == 3003


@pytest.mark.django_db
def test_refuses_calls_it_cannot_honour():
    with pytest.raises(ValueError, match="no columns"):
        bulk_insert_varying(template=template_job(), varying={"id": ["a"], "colour": ["red"]})
    with pytest.raises(ValueError, match="different lengths"):
        bulk_insert_varying(template=template_job(), varying={"id": ["a", "b"], "payload": [{}]})
    with pytest.raises(ValueError, match="primary key must vary"):
        bulk_insert_varying(template=template_job(), varying={"payload": [{}, {}]})
    assert bulk_insert_varying(template=template_job(), varying={"id": []}) == []
    assert Job.objects.count() == 0
