"""Operator admin: views render, actions are guarded, confirmed, counted and audited."""

import pytest
from django.contrib.auth.models import Permission, User
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode

from jobs.delivery.enqueue import job_enqueue
from jobs.models import Job, JobAttempt, JobAuditEntry

S = Job.Status


@pytest.fixture
def operator(db):
    return User.objects.create_superuser("operator", "op@example.com", "pw")


@pytest.fixture
def viewer(db):
    user = User.objects.create_user("viewer", password="pw", is_staff=True)
    user.user_permissions.add(
        Permission.objects.get(codename="view_job"), Permission.objects.get(codename="view_deadjob")
    )
    return user


def dead_job(job_type="tests.always_fails") -> Job:
    job = job_enqueue(job_type=job_type, payload={"n": 1}).job
    Job.objects.filter(id=job.id).update(status=S.DEAD, attempt=3, finished_at=timezone.now())
    JobAttempt.objects.create(
        job=job, number=3, outcome="dead", finished_at=timezone.now(), celery_task_id=f"{job.id}.3"
    )
    return Job.objects.get(id=job.id)


def post_action(client, url, action, jobs, *, confirm=True):
    data = {"action": action, "_selected_action": [job.id for job in jobs]}
    if confirm:
        data["confirm"] = "yes"
    return client.post(url, data, follow=True)


@pytest.mark.django_db
def test_job_pages_render_with_attempts_and_log(client, operator, redis_client):
    job = dead_job()
    client.force_login(operator)

    listing = client.get(reverse("admin:jobs_job_changelist"), {"status": "dead", "q": job.id})
    detail = client.get(reverse("admin:jobs_job_change", args=[job.id]))
    dlq = client.get(reverse("admin:jobs_deadjob_changelist"))

    assert listing.status_code == detail.status_code == dlq.status_code == 200
    assert job.id in listing.content.decode()
    assert "attempt" in detail.content.decode().lower() and f"{job.id}.3" in detail.content.decode()
    assert job.id in dlq.content.decode()


@pytest.mark.django_db
def test_action_asks_for_confirmation_first(client, operator, redis_client):
    job = dead_job()
    client.force_login(operator)

    response = post_action(client, reverse("admin:jobs_job_changelist"), "retry_jobs", [job], confirm=False)

    assert "Yes, retry" in response.content.decode()
    assert Job.objects.get(id=job.id).status == S.DEAD


@pytest.mark.django_db
def test_bulk_replay_from_the_dead_letter_queue_is_audited(client, operator, redis_client):
    dead = [dead_job() for _ in range(3)]
    succeeded = job_enqueue(job_type="tests.noop").job
    client.force_login(operator)

    response = post_action(client, reverse("admin:jobs_deadjob_changelist"), "replay_jobs", dead)

    assert "Replayed 3 jobs" in response.content.decode()
    replays = Job.objects.filter(replay_of__in=dead)
    assert replays.count() == 3 and set(replays.values_list("status", flat=True)) == {S.QUEUED}
    assert all(r.payload == {"n": 1} for r in replays)
    entry = JobAuditEntry.objects.get(action="replay")
    assert entry.actor == operator and sorted(entry.job_ids) == sorted(j.id for j in dead) and entry.job_count == 3
    assert sorted(entry.detail["new_job_ids"]) == sorted(replays.values_list("id", flat=True))
    assert Job.objects.get(id=succeeded.id).replays.count() == 0


@pytest.mark.django_db
def test_retry_filters_out_jobs_in_the_wrong_state(client, operator, redis_client):
    dead = dead_job()
    queued = job_enqueue(job_type="tests.noop").job
    client.force_login(operator)

    response = post_action(client, reverse("admin:jobs_job_changelist"), "retry_jobs", [dead, queued])

    body = response.content.decode()
    assert "Retried 1 job;" in body and "1 selected job was left alone: not in a valid state" in body
    retried = Job.objects.get(id=dead.id)
    assert (retried.status, retried.max_attempts) == (S.QUEUED, 3 + 3)
    assert JobAuditEntry.objects.get(action="retry").job_ids == [dead.id]


@pytest.mark.django_db
def test_actions_need_their_permission(client, viewer, redis_client):
    job = dead_job()
    client.force_login(viewer)

    listing = client.get(reverse("admin:jobs_job_changelist"))
    response = post_action(client, reverse("admin:jobs_job_changelist"), "retry_jobs", [job])

    assert listing.status_code == 200
    assert "retry_jobs" not in listing.content.decode()
    assert Job.objects.get(id=job.id).status == S.DEAD
    assert not JobAuditEntry.objects.exists()
    assert response.status_code == 200


@pytest.mark.django_db
def test_cancel_action_cancels_queued_jobs(client, operator, redis_client):
    job = job_enqueue(job_type="tests.noop").job
    client.force_login(operator)

    post_action(client, reverse("admin:jobs_job_changelist"), "cancel_jobs", [job])

    assert Job.objects.get(id=job.id).status == S.CANCELLED
    assert JobAuditEntry.objects.get(action="cancel").job_ids == [job.id]


@pytest.mark.django_db
def test_replay_command_replays_dead_jobs_of_one_type(redis_client, capsys):
    wanted = [dead_job("tests.always_fails") for _ in range(2)]
    other = dead_job("tests.bug")

    call_command("jobs_replay", "--dead", "--type", "tests.always_fails", "--actor", "runbook-42")

    assert Job.objects.filter(replay_of__in=wanted).count() == 2
    assert not Job.objects.filter(replay_of=other).exists()
    entry = JobAuditEntry.objects.get(action="bulk_replay_dead")
    assert entry.actor_label == "runbook-42" and entry.job_count == 2
    assert "replayed 2 dead job(s)" in capsys.readouterr().out


@pytest.mark.django_db
def test_replay_command_dry_run_changes_nothing(redis_client, capsys):
    dead_job()

    call_command("jobs_replay", "--dead", "--dry-run")

    assert "would replay 1 dead job(s)" in capsys.readouterr().out
    assert Job.objects.count() == 1 and not JobAuditEntry.objects.exists()


@pytest.mark.django_db
def test_retry_command_reports_jobs_it_cannot_retry(redis_client, capsys):
    dead = dead_job()
    queued = job_enqueue(job_type="tests.noop").job

    call_command("jobs_replay", "--retry", dead.id, queued.id)

    output = capsys.readouterr()
    assert "retried 1 job(s)" in output.out
    assert f"skipped {queued.id}" in output.err
    assert Job.objects.get(id=dead.id).status == S.QUEUED


def test_job_ids_never_start_with_a_dash_so_command_lines_take_them_as_ids():
    from jobs.models import new_job_id

    # With 1 id in 64 starting with "-", 5,000 ids without one would happen by chance once in 10^34.
    ids = [new_job_id() for _ in range(5000)]
    assert not [job_id for job_id in ids if job_id.startswith("-")]
    assert len(set(ids)) == 5000 and {len(job_id) for job_id in ids} == {22}


def searched(client, term: str, **filters) -> set[str]:
    response = client.get(reverse("admin:jobs_job_changelist"), {"q": term, **filters})
    assert response.status_code == 200
    return {job.id for job in response.context["cl"].result_list}


@pytest.mark.django_db
def test_search_matches_ids_keys_and_correlation_ids_exactly_and_owners_by_part(client, operator, redis_client):
    alice = User.objects.create_user("alice.cooper", email="alice@example.com")
    by_key = job_enqueue(job_type="tests.record", idempotency_key="order-42").job
    by_correlation = job_enqueue(job_type="tests.record", correlation_id="req-abc-123").job
    owned = job_enqueue(job_type="tests.record", owner=alice).job
    other = job_enqueue(job_type="tests.noop").job
    client.force_login(operator)

    assert searched(client, other.id) == {other.id}
    assert searched(client, f"  {other.id} ") == {other.id}
    assert searched(client, other.id[:10]) == set()  # ids are pasted whole, not matched in part
    assert searched(client, "order-42") == {by_key.id}
    assert searched(client, "req-abc-123") == {by_correlation.id}
    assert searched(client, "cooper") == searched(client, "ALICE@example") == {owned.id}
    assert searched(client, owned.id, type="tests.noop") == set()  # search and filters combine


def failed_with(error_code: str, error_message: str, payload: dict) -> Job:
    job = job_enqueue(job_type="tests.record", payload=payload).job
    Job.objects.filter(id=job.id).update(status=S.FAILED, error_code=error_code, error_message=error_message)
    return job


@pytest.mark.django_db
def test_search_finds_jobs_by_words_in_their_error_and_by_payload_fields(client, operator, redis_client):
    refused = failed_with("supplier_refused", "Supplier answered 503 Service Unavailable", {"sku": "A-100", "page": 3})
    timed_out = failed_with("smtp_timeout", "SMTP server timed out after 30 s", {"sku": "B-200", "page": 30})
    healthy = job_enqueue(job_type="tests.record", payload={"sku": "C-300", "page": 3}).job
    client.force_login(operator)

    assert searched(client, "unavailable") == {refused.id}  # a word of the message, any case
    assert searched(client, "SUPPLIER 503") == {refused.id}  # every word, anywhere in code or message
    assert searched(client, "supplier timed") == set()
    assert searched(client, "smtp_timeout") == {timed_out.id}  # the error code
    assert searched(client, "B-200") == {timed_out.id}  # a payload value
    assert searched(client, "sku=C-300") == {healthy.id}  # a payload field
    assert searched(client, "page=3") == {refused.id, healthy.id}  # equal, not a part: page 30 is not page 3
    assert searched(client, "page=3 unavailable") == {refused.id}
    assert searched(client, "unavailable", status__exact="succeeded") == set()  # search and filters combine

    dead_letter = client.get(reverse("admin:jobs_deadjob_changelist"), {"q": "unavailable"})
    assert dead_letter.status_code == 200 and not dead_letter.context["cl"].result_list  # failed is not dead


@pytest.mark.django_db
def test_search_words_with_quotes_and_like_wildcards_match_only_themselves(client, operator, redis_client):
    # On PostgreSQL the word reaches the SQL as a quoted literal (a generic plan skips the trigram index): a quote,
    # a backslash or a LIKE wildcard in it must match that character, never end the string or match anything.
    quoted = failed_with("supplier_refused", "Customer O'Brien refused: 100% over quota", {"path": "C:\\temp\\x_1"})
    other = failed_with("supplier_refused", "Customer OBrien refused: 1000 over quota", {"path": "C:/temp/xa1"})
    client.force_login(operator)

    assert searched(client, "o'brien") == {quoted.id}
    assert searched(client, "100%") == {quoted.id}  # % is a percent sign, not "anything"
    assert searched(client, "x_1") == {quoted.id}  # _ is an underscore, not "any one character"
    assert searched(client, "'); DELETE FROM jobs_job; --") == set()
    assert searched(client, "temp\\\\x") == {quoted.id}  # the payload's JSON text escapes the backslash
    assert Job.objects.filter(id__in=[quoted.id, other.id]).count() == 2


def post_on_filter(client, action: str, query: dict, *, confirm: bool):
    data = {"action": action, "select_across": "1", "index": "0", "_selected_action": "filter"}
    if confirm:
        data["confirm"] = "yes"
    return client.post(f"{reverse('admin:jobs_job_changelist')}?{urlencode(query)}", data)


@pytest.mark.django_db
def test_actions_on_a_whole_filter_confirm_the_count_and_leave_one_audit_entry(client, operator, redis_client):
    matching = [failed_with("supplier_refused", f"Supplier answered 503 for page {n}", {"page": n}) for n in range(5)]
    other = failed_with("smtp_timeout", "SMTP server timed out", {"page": 9})
    client.force_login(operator)

    listed = client.get(reverse("admin:jobs_job_changelist"), {"q": "supplier 503"}).content.decode()
    assert 'id="bulk-actions"' in listed and "<strong>5</strong> jobs this filter finds" in listed
    unfiltered = client.get(reverse("admin:jobs_job_changelist")).content.decode()
    assert 'id="bulk-actions"' not in unfiltered  # never "everything" by one click

    asked = post_on_filter(client, "retry_jobs", {"q": "supplier 503"}, confirm=False)
    page = asked.content.decode()
    assert "Retry 5 jobs?" in page and "Yes, retry 5 jobs" in page and "q=supplier+503" in page
    assert not JobAuditEntry.objects.exists() and Job.objects.filter(status=S.FAILED).count() == 6

    post_on_filter(client, "retry_jobs", {"q": "supplier 503"}, confirm=True)
    assert set(Job.objects.filter(status=S.QUEUED).values_list("id", flat=True)) == {job.id for job in matching}
    assert Job.objects.get(id=other.id).status == S.FAILED
    entry = JobAuditEntry.objects.get()  # one entry for the whole action
    assert (entry.action, entry.job_count, entry.detail) == ("retry", 5, {"via": "admin", "filter": "q=supplier+503"})

    post_on_filter(client, "cancel_jobs", {"q": "supplier", "status__exact": "queued"}, confirm=True)
    assert Job.objects.filter(status=S.CANCELLED).count() == 5
    post_on_filter(client, "replay_jobs", {"q": "supplier"}, confirm=True)
    assert Job.objects.filter(replay_of__in=[job.id for job in matching]).count() == 5
    assert list(JobAuditEntry.objects.order_by("id").values_list("action", "job_count")) == [
        ("retry", 5), ("cancel", 5), ("replay", 5)
    ]  # fmt: skip


@pytest.mark.django_db
def test_filters_offer_declared_types_and_configured_queues_without_reading_jobs(
    client, operator, django_assert_max_num_queries
):
    client.force_login(operator)
    # session, user, the planner's estimate (PostgreSQL), the count, one page of jobs:
    # nothing that lists distinct types, queues or days across the table
    with django_assert_max_num_queries(5):
        page = client.get(reverse("admin:jobs_job_changelist"))
    html = page.content.decode()
    assert "?type=tests.record" in html and "?queue=exports" in html

    filtered = client.get(reverse("admin:jobs_job_changelist"), {"type": "retired.type", "queue": "sync"})
    assert filtered.status_code == 200 and "retired.type" in filtered.content.decode()


@pytest.mark.django_db
def test_unfiltered_list_of_a_large_table_uses_the_planner_estimate(monkeypatch, redis_client):
    from django.db import connection

    from jobs.admin.bases import EstimatedCountPaginator

    for _ in range(3):
        job_enqueue(job_type="tests.noop")
    if connection.vendor != "postgresql":
        assert EstimatedCountPaginator(Job.objects.all(), 100).count == 3
        return
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE jobs_job")
    monkeypatch.setattr(EstimatedCountPaginator, "EXACT_BELOW", 0)
    with connection.cursor() as cursor:
        cursor.execute("UPDATE pg_class SET reltuples = 12345678 WHERE oid = 'jobs_job'::regclass")

    assert EstimatedCountPaginator(Job.objects.all(), 100).count == 12345678
    assert EstimatedCountPaginator(Job.objects.filter(type="tests.noop"), 100).count == 3  # filtered: exact


@pytest.mark.django_db
def test_a_filtered_list_is_counted_up_to_a_cap_and_then_reads_more_than(client, operator, monkeypatch, redis_client):
    from jobs.admin.bases import EstimatedCountPaginator

    for _ in range(4):
        failed_with("supplier_refused", "Supplier answered 503", {})
    client.force_login(operator)
    exact = client.get(reverse("admin:jobs_job_changelist"), {"q": "supplier"})
    assert exact.context["cl"].result_count == 4 and 'id="count-capped"' not in exact.content.decode()

    monkeypatch.setattr(EstimatedCountPaginator, "FILTERED_COUNT_CAP", 3)
    capped = client.get(reverse("admin:jobs_job_changelist"), {"q": "supplier"})
    page = capped.content.decode()
    assert capped.context["cl"].paginator.count_capped and capped.context["cl"].result_count == 4
    assert '<span id="count-capped">more than 3</span> jobs' in page
    assert "More than <strong>3</strong> jobs this filter finds" in page
    assert len(capped.context["cl"].result_list) == 4  # the page itself still lists what it finds


@pytest.mark.django_db
def test_replayed_jobs_leave_the_dead_letter_queue(client, operator, redis_client):
    replayed, waiting = dead_job(), dead_job()
    client.force_login(operator)

    post_action(client, reverse("admin:jobs_deadjob_changelist"), "replay_jobs", [replayed])

    listed = {job.id for job in client.get(reverse("admin:jobs_deadjob_changelist")).context["cl"].result_list}
    assert listed == {waiting.id}
    assert set(Job.objects.dead_letter().values_list("id", flat=True)) == {waiting.id}
    assert Job.objects.get(id=replayed.id).status == S.DEAD  # its own history is unchanged
    # The replay, should it die too, is in the queue in its own right.
    new = Job.objects.get(replay_of=replayed)
    Job.objects.filter(id=new.id).update(status=S.DEAD)
    assert set(Job.objects.dead_letter().values_list("id", flat=True)) == {waiting.id, new.id}


@pytest.mark.django_db
def test_replay_command_run_twice_replays_each_dead_job_once(redis_client, capsys):
    dead = [dead_job() for _ in range(3)]

    call_command("jobs_replay", "--dead")
    call_command("jobs_replay", "--dead")

    assert Job.objects.filter(replay_of__in=dead).count() == 3
    output = capsys.readouterr().out
    assert "replayed 3/3" in output and "replayed 3 dead job(s)" in output and "replayed 0 dead job(s)" in output


@pytest.mark.django_db
def test_celery_result_rows_are_view_only_and_link_to_their_job(client, operator, redis_client):
    from django_celery_results.models import TaskResult

    job = dead_job()
    result = TaskResult.objects.create(task_id=f"{job.id}.3", task_name=job.type, status="FAILURE")
    client.force_login(operator)

    change = client.get(reverse("admin:django_celery_results_taskresult_change", args=[result.pk]))
    listing = client.get(reverse("admin:django_celery_results_taskresult_changelist"))

    assert change.status_code == 200 and 'name="_save"' not in change.content.decode()
    assert client.get(reverse("admin:django_celery_results_taskresult_add")).status_code == 403
    assert client.post(reverse("admin:django_celery_results_taskresult_delete", args=[result.pk]),
                       {"post": "yes"}).status_code == 403  # fmt: skip
    assert reverse("admin:jobs_job_change", args=[job.id]) in listing.content.decode()
