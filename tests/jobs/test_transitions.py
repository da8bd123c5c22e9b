"""The lifecycle: every legal transition works, illegal ones raise, races have one winner."""

import pytest

from jobs.core.lifecycle import ALLOWED_TRANSITIONS, check_transition, job_transition
from jobs.delivery.enqueue import job_enqueue
from jobs.foundation.exceptions import IllegalTransition
from jobs.models import Job

S = Job.Status
LEGAL = [(source, target) for source, targets in ALLOWED_TRANSITIONS.items() for target in sorted(targets)]
ILLEGAL = [
    (S.SUCCEEDED, S.RUNNING),
    (S.SUCCEEDED, S.QUEUED),
    (S.CANCELLED, S.RUNNING),
    (S.QUEUED, S.SUCCEEDED),
    (S.QUEUED, S.DEAD),
    (S.RETRYING, S.SUCCEEDED),
    (S.FAILED, S.RUNNING),
    (S.DEAD, S.SUCCEEDED),
]


def test_every_state_has_a_rule():
    assert set(ALLOWED_TRANSITIONS) == set(S.values)


@pytest.mark.django_db
@pytest.mark.parametrize(("source", "target"), LEGAL)
def test_legal_transition_moves_the_job(source, target):
    job = job_enqueue(job_type="tests.noop").job
    Job.objects.filter(id=job.id).update(status=source)

    assert job_transition(job_id=job.id, from_statuses=[source], to_status=target) is True
    assert Job.objects.get(id=job.id).status == target


@pytest.mark.django_db
@pytest.mark.parametrize(("source", "target"), ILLEGAL)
def test_illegal_transition_raises_and_changes_nothing(source, target):
    job = job_enqueue(job_type="tests.noop").job
    Job.objects.filter(id=job.id).update(status=source)

    with pytest.raises(IllegalTransition, match=f"cannot go from '{source}' to '{target}'"):
        job_transition(job_id=job.id, from_statuses=[source], to_status=target)
    assert Job.objects.get(id=job.id).status == source


def test_check_transition_names_the_allowed_targets():
    with pytest.raises(IllegalTransition) as caught:
        check_transition(S.SUCCEEDED, S.RUNNING)
    assert "none (final state)" in caught.value.message


@pytest.mark.django_db
def test_second_mover_loses_the_race():
    job = job_enqueue(job_type="tests.noop").job

    first = job_transition(
        job_id=job.id, from_statuses=[S.QUEUED], to_status=S.RUNNING, _where={"attempt": 0}, attempt=1
    )
    second = job_transition(
        job_id=job.id, from_statuses=[S.QUEUED], to_status=S.RUNNING, _where={"attempt": 0}, attempt=1
    )

    assert (first, second) == (True, False)
    assert Job.objects.get(id=job.id).attempt == 1
