"""Product sync end to end: simulator over real HTTP, real Redis, PostgreSQL and worker processes."""

import hashlib
import hmac
import json
import signal
import time

import pytest
from django.test import override_settings

from jobs.delivery.enqueue import job_enqueue
from jobs.delivery.relay import job_relay_unpublished
from jobs.models import Job
from jobs.ops.operations import job_replay_locked
from jobs.worker.maintenance import job_rescue_orphans
from sync.models import Product, SyncPage, SyncRun
from tests.processes import wait_for

pytestmark = pytest.mark.worker
S = Job.Status


def sync_env(sim, **extra) -> dict:
    return {
        "SUPPLIER_API_URL": sim.url, "SUPPLIER_PAGE_SIZE": "50", "SYNC_RUN_POLL_SECONDS": "0.3",
        "SUPPLIER_API_RATE_LIMIT": "1000", "SUPPLIER_API_RATE_PERIOD": "1", **extra,
    }  # fmt: skip


def run_sync(*, timeout: float = 90) -> tuple[Job, SyncRun]:
    job = job_enqueue(job_type="sync.run", payload={"full": True}).job
    done = wait_for(lambda: Job.objects.filter(id=job.id, status__in=[S.SUCCEEDED, S.FAILED, S.DEAD]).first(),
                    timeout=timeout, interval=0.2, message="the sync run's job to finish")  # fmt: skip
    return done, SyncRun.objects.get(job_id=job.id)


def test_full_run_then_a_rerun_that_changes_nothing(supplier_simulator, start_worker):
    sim = supplier_simulator(size=230, rate_limit=0)
    start_worker(queues="default,sync", concurrency=2, extra_env=sync_env(sim))

    job, run = run_sync()

    assert job.status == S.SUCCEEDED and job.progress == 100
    assert (run.status, run.total_pages, run.pages_done, run.products_created) == ("completed", 5, 5, 230)
    assert job.result["status"] == "completed"
    assert Product.objects.filter(is_active=True).count() == 230
    assert sim.stats()["page_fetches"] == {str(n): 1 for n in range(1, 6)}
    stamps = dict(Product.objects.values_list("supplier_id", "last_changed_at"))

    _, rerun = run_sync()

    assert (rerun.status, rerun.products_created, rerun.products_updated, rerun.products_unchanged) == (
        "completed",
        0,
        0,
        230,
    )
    assert dict(Product.objects.values_list("supplier_id", "last_changed_at")) == stamps


@override_settings(JOBS_REPUBLISH_AFTER_SECONDS=3, JOBS_RELAY_GRACE_SECONDS=1)
def test_run_resumes_after_the_worker_is_killed_without_refetching_done_pages(supplier_simulator, start_worker):
    sim = supplier_simulator(size=500, rate_limit=0, latency_ms=400)  # 10 pages, 0.4 s each
    # Short leases, so the killed worker's attempt is rescued in seconds rather than half a minute.
    short_leases = {"JOBS_LEASE_SECONDS": "3", "JOBS_HEARTBEAT_SECONDS": "1"}
    doomed = start_worker(queues="default,sync", concurrency=1, name="doomed", extra_env=sync_env(sim, **short_leases))
    job = job_enqueue(job_type="sync.run", payload={"full": True}).job
    wait_for(lambda: SyncPage.objects.filter(status="done").count() >= 3, timeout=60, message="three pages done")

    doomed.kill_group(signal.SIGKILL)
    doomed.process.wait(timeout=10)
    done_before = set(SyncPage.objects.filter(status="done").values_list("number", flat=True))
    start_worker(queues="default,sync", concurrency=2, name="survivor", extra_env=sync_env(sim))
    # The reaper (every 30 s under beat) finds the page job the dead worker held.
    wait_for(lambda: job_rescue_orphans().requeued or not Job.objects.filter(status=S.RUNNING).exists(),
             timeout=30, interval=0.5, message="the reaper to rescue the interrupted job")  # fmt: skip

    def finished_run():
        # What beat does every few seconds: the reaper, and the relay, which re-publishes a job
        # whose message the killed worker held (the run job's delayed check-in, for one).
        job_rescue_orphans()
        job_relay_unpublished()
        return Job.objects.filter(id=job.id, status=S.SUCCEEDED).first()

    finished = wait_for(finished_run, timeout=90, interval=0.5, message="the run to finish")
    run = SyncRun.objects.get(job_id=finished.id)
    fetches = sim.stats()["page_fetches"]
    assert run.status == "completed" and run.pages_done == 10 and Product.objects.count() == 500
    assert all(fetches[str(n)] == 1 for n in done_before), fetches
    assert sum(fetches.values()) <= 11  # at most the page in flight at the kill is fetched twice


def test_429_pauses_everyone_and_nothing_is_sent_during_the_pause(supplier_simulator, start_worker):
    # The supplier allows 4 requests per 2 s; our limiter is told 1000/s, so we overrun it and get 429s.
    sim = supplier_simulator(size=400, rate_limit=4, rate_period=2)
    processes = 2
    start_worker(queues="default,sync", concurrency=processes, extra_env=sync_env(sim))

    job, run = run_sync(timeout=120)

    assert run.status == "completed" and Product.objects.count() == 400
    stats = sim.stats()
    assert stats["rate_limited"] >= 1 and stats["served"] == 8
    # After a 429 every worker waits out Retry-After: only a request already in flight when the 429 arrived may
    # reach the supplier during the pause, and with two worker processes that is the other one's, at most one.
    # Counted, however late a descheduled process sends it. (The pause ends Retry-After after the 429 reached the
    # worker, later than the server sent it: the window ends a moment early, for the millisecond clocks.)
    for refusal in stats["refusals"]:
        start, end = refusal["at"], refusal["at"] + refusal["retry_after"] - 0.05
        during = [t for t in stats["request_times"] if start < t < end]
        assert len(during) <= processes - 1, (refusal, during)
    # The pause postponed jobs without spending their attempts.
    assert Job.objects.filter(type="sync.fetch_page", attempts__outcome="snoozed").exists()
    assert not Job.objects.filter(type="sync.fetch_page", attempt__gt=1).exists()


def test_malformed_records_are_counted_not_fatal(supplier_simulator, start_worker):
    sim = supplier_simulator(size=200, rate_limit=0, malformed_rate=0.1)
    start_worker(queues="default,sync", concurrency=2, extra_env=sync_env(sim))

    _, run = run_sync()

    assert run.status == "completed" and run.records_rejected > 0
    assert Product.objects.count() == 200 - run.records_rejected
    rejection = next(r for page in run.pages.all() for r in page.rejections)
    assert rejection["supplier_id"].startswith("SUP-") and rejection["reason"]


def test_failing_page_goes_to_the_dead_letter_queue_and_inactive_marking_waits_for_a_complete_run(
    supplier_simulator, start_worker
):
    sim = supplier_simulator(size=250, rate_limit=0)
    start_worker(queues="default,sync", concurrency=2, extra_env=sync_env(sim))
    _, first = run_sync()
    assert first.status == "completed" and Product.objects.filter(is_active=True).count() == 250

    # 50 products vanish upstream, and page 2 keeps failing.
    sim.configure(size=200, fail_pages={"2": 1000})
    job, partial = run_sync(timeout=120)

    assert (partial.status, partial.pages_failed) == ("partial", 1)
    # The run's job says the run was partial, rather than succeeded.
    assert (job.status, job.error_code) == (S.FAILED, "sync_run_partial") and "ended partial: 1 of" in job.error_message
    page_job = Job.objects.get(type="sync.fetch_page", payload={"run_id": partial.pk, "page": 2})
    assert page_job.status == S.DEAD and partial.pages.get(number=2).status == "failed"
    assert Product.objects.filter(is_active=True).count() == 250  # partial: nothing deactivated

    # Replaying the dead page job of the finished run fetches nothing, and does not end green.
    _, (replayed,) = job_replay_locked(job_ids=[page_job.id], dead_letter_only=True)
    closed = wait_for(lambda: Job.objects.filter(id=replayed.id, status=S.CANCELLED).first(), timeout=60,
                      message="the replayed page job to end cancelled")  # fmt: skip
    assert closed.error_code == "sync_page_closed" and "start a new run" in closed.error_message

    sim.configure(fail_pages={})
    _, complete = run_sync()

    assert (complete.status, complete.products_deactivated) == ("completed", 50)
    assert set(Product.objects.filter(is_active=False).values_list("supplier_id", flat=True)) == {
        f"SUP-{i:07d}" for i in range(201, 251)
    }


def test_signed_webhook_updates_products_and_duplicates_enqueue_once(
    supplier_simulator, start_worker, client, settings
):
    settings.SUPPLIER_WEBHOOK_SECRET = "whsec"
    sim = supplier_simulator(size=50, rate_limit=0)
    start_worker(queues="default,sync", concurrency=2, extra_env=sync_env(sim))
    body = json.dumps({"id": "evt_1", "type": "products.updated",
                       "data": {"product_ids": ["SUP-0000003", "SUP-0000007", "SUP-0000099"]}}).encode()  # fmt: skip
    at = int(time.time())
    signature = f"t={at},v1=" + hmac.new(b"whsec", f"{at}.".encode() + body, hashlib.sha256).hexdigest()

    def deliver(sig=signature):
        return client.post(
            "/api/webhooks/supplier", data=body, content_type="application/json", HTTP_X_SUPPLIER_SIGNATURE=sig
        )

    # The last digit changed to another: "00" in its place equalled the real one whenever that ended in 00 (1 in 256).
    forged_signature = signature[:-1] + ("1" if signature[-1] == "0" else "0")
    first, duplicate, forged = deliver(), deliver(), deliver(forged_signature)

    assert first.status_code == 202 and first.json()["products"] == 3 and first.json()["fan_out_job"]
    assert duplicate.status_code == 200 and duplicate.json()["duplicate"] is True
    assert forged.status_code == 401 and forged.json()["error"]["code"] == "invalid_signature"
    jobs = Job.objects.filter(type="sync.fetch_product")
    # The product jobs are enqueued by the event's fan-out job (on the sync worker), not by the request.
    wait_for(lambda: jobs.count() == 3, timeout=30, message="the fan-out job to enqueue 3 product jobs")
    wait_for(lambda: not jobs.exclude(status=S.SUCCEEDED).exists(), timeout=60, message="product jobs")
    assert set(Product.objects.values_list("supplier_id", flat=True)) == {"SUP-0000003", "SUP-0000007"}
    assert jobs.get(payload__supplier_id="SUP-0000099").result == "gone upstream"


def test_a_sync_run_that_dies_before_its_fan_out_does_not_block_the_next(supplier_simulator, start_worker):
    sim = supplier_simulator(size=100, rate_limit=0, api_key="the-right-key")
    start_worker(queues="default,sync", concurrency=2, extra_env=sync_env(sim, SUPPLIER_API_KEY="a-wrong-key"))

    job, run = run_sync()

    # 401 on page 1: the job fails at once, and its give-up hook ends the run it had started.
    assert (job.status, job.error_code) == (S.FAILED, "supplier_refused")
    run = run_ended_by_give_up_hook(run)
    assert run.status == "failed" and run.total_pages == 0
    # The next sync is not refused as "still running": it fails on its own (the key is still wrong).
    next_job, next_run = run_sync()
    assert (next_job.status, next_job.error_code) == (S.FAILED, "supplier_refused")
    assert next_run.pk != run.pk and run_ended_by_give_up_hook(next_run).status == "failed"


def run_ended_by_give_up_hook(run: SyncRun) -> SyncRun:
    # The hook runs just after the job's final write commits (jobs.core.lifecycle._give_up), so a test that saw
    # the job end may read the run a moment before the hook ends it: wait for the hook, do not race it.
    ended: SyncRun = wait_for(lambda: SyncRun.objects.exclude(status="running").filter(pk=run.pk).first(),
                              timeout=30, interval=0.1, message="the give-up hook to end the sync run")  # fmt: skip
    return ended
