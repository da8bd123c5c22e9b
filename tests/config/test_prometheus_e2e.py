"""A real Prometheus server scraping the web's /metrics and a real worker's port while jobs run.

Then the project's Grafana dashboard and alert rules are checked against what it scraped:
every metric name an expression reads must exist.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from django.utils import timezone

import tests.jobs.jobtypes  # noqa: F401 - registers the test job types in this process too
from jobs.coordination.ratelimit import RateLimiter
from jobs.delivery.enqueue import job_enqueue
from jobs.delivery.relay import job_relay_unpublished
from jobs.delivery.schedules import schedule_trigger
from jobs.models import Job
from jobs.tasks import ping, rescue_orphans
from tests.config.promql import metric_names
from tests.jobs.metrics_helpers import free_port
from tests.peers import require_executable
from tests.processes import wait_for

pytestmark = pytest.mark.worker
ROOT = Path(__file__).resolve().parents[2]
TOKEN = "token-prometheus-sends"
S = Job.Status


def local(name: str, **labels: str) -> float:
    """A sample of this process's service as its own /metrics would show it (0 when absent)."""
    from prometheus_client import generate_latest

    from jobs.ops.metrics_scrape import registry_for_scrape
    from tests.jobs.metrics_helpers import value

    return value(generate_latest(registry_for_scrape(with_overview=False)).decode(), name, **labels) or 0.0


def dashboard_expressions() -> list[str]:
    dashboard = json.loads((ROOT / "config" / "grafana" / "jobplatform-dashboard.json").read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def rule_expressions() -> list[str]:
    document = yaml.safe_load((ROOT / "config" / "prometheus" / "alerts.yml").read_text())
    return [rule["expr"] for group in document["groups"] for rule in group["rules"]]


class Prometheus:
    def __init__(self, binary: str, directory: Path, *, web: str, worker: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        shutil.copy(ROOT / "config" / "prometheus" / "alerts.yml", directory / "alerts.yml")
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(directory / "alerts.yml")],
            "scrape_configs": [
                {"job_name": "jobplatform-web", "authorization": {"credentials": TOKEN},
                 "static_configs": [{"targets": [web]}]},
                {"job_name": "jobplatform-workers", "static_configs": [{"targets": [worker]}]},
            ],
        }  # fmt: skip
        (directory / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.log = open(directory / "prometheus.log", "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [binary, f"--config.file={directory / 'prometheus.yml'}", f"--storage.tsdb.path={directory / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}"],
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip

    def get(self, path: str, **params: str) -> dict:
        url = f"{self.url}{path}?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=5) as response:
            body = json.loads(response.read())
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expression: str) -> dict[frozenset, float]:
        result = self.get("/api/v1/query", query=expression)["result"]
        return {frozenset(item["metric"].items()): float(item["value"][1]) for item in result}

    def scalar(self, expression: str) -> float | None:
        values = list(self.query(expression).values())
        return values[0] if len(values) == 1 else None

    def ready(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"prometheus exited: {Path(self.log.name).read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as response:
                return response.status == 200
        except OSError:
            return False

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


@pytest.fixture
def prometheus_factory(tmp_path):
    binary = require_executable("prometheus", debian_package="prometheus")
    started: list[Prometheus] = []

    def _start(*, web: str, worker: str) -> Prometheus:
        server = Prometheus(binary, tmp_path, web=web, worker=worker)
        started.append(server)
        wait_for(server.ready, timeout=30, message="prometheus to be ready")
        return server

    yield _start
    for server in started:
        server.stop()


def test_prometheus_scrapes_web_and_worker_while_jobs_run(live_server, settings, prometheus_factory, start_worker,
                                                         tmp_path):  # fmt: skip
    settings.METRICS_TOKEN = TOKEN
    worker_port = free_port()
    start_worker(queues="default", concurrency=2, extra_env={
        "JOBS_WORKER_METRICS_PORT": str(worker_port), "JOBS_WORKER_METRICS_ADDR": "127.0.0.1",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "worker-metrics"),
    })  # fmt: skip
    web = live_server.url.removeprefix("http://")
    prometheus = prometheus_factory(web=web, worker=f"127.0.0.1:{worker_port}")

    # Counters of this process (the web's service) carry earlier tests' counts: compare increases.
    enqueued_before = local("jobs_enqueued_total", type="jobs.canary", queue="default")
    rescued_before = local("jobs_reaper_rescued_total", result="requeued")
    # Jobs run in this process by earlier tests (in-process runs) are in the web service's counters as well.
    before = {
        "canary_succeeded": local("job_attempts_total", type="jobs.canary", outcome="succeeded"),
        "failing_dead": local("job_attempts_total", type="tests.always_fails", outcome="dead"),
        "failing_retried": local("job_attempts_total", type="tests.always_fails", outcome="retried"),
        "canary_runs": local("job_run_seconds_count", type="jobs.canary"),
        "canary_waits": local("job_queue_wait_seconds_count", type="jobs.canary", queue="default"),
    }
    succeeded = [job_enqueue(job_type="jobs.canary", payload={"seconds": 0.05}).job for _ in range(5)]
    dead = job_enqueue(job_type="tests.always_fails").job
    # The rest of what the dashboard shows, recorded by this process (the web service's directory).
    limiter = RateLimiter(name="e2e", limit=1, period=0.1)
    limiter.acquire(max_wait=1)
    limiter.acquire(max_wait=1)
    with pytest.raises(Exception, match="no free slot"):
        limiter.acquire(max_wait=0)
    limiter.pause_for(0.05)
    ping.apply(headers={"periodic_task_name": "jobs.relay_unpublished"})
    schedule_trigger(name="e2e-schedule", job_type="tests.noop")
    orphan = job_enqueue(job_type="tests.noop").job
    Job.objects.filter(id=orphan.id).update(status=S.RUNNING, attempt=1, max_attempts=3, worker="gone@nowhere",
                                            started_at=timezone.now() - timedelta(hours=2))  # fmt: skip
    assert rescue_orphans()["requeued"] == [orphan.id]
    unpublished = job_enqueue(job_type="tests.noop").job
    Job.objects.filter(id=unpublished.id).update(published_at=None, updated_at=timezone.now() - timedelta(minutes=5))
    job_relay_unpublished()
    with urllib.request.urlopen(f"{live_server.url}/api/openapi.json", timeout=10) as response:
        assert response.status == 200
    wait_for(
        lambda: Job.objects.filter(id__in=[job.id for job in succeeded], status=S.SUCCEEDED).count() == 5
        and Job.objects.filter(id=dead.id, status=S.DEAD).exists(),
        timeout=90, message="the jobs to finish",
    )  # fmt: skip

    def scraped() -> bool:
        return (
            prometheus.scalar('sum(job_attempts_total{type="jobs.canary", outcome="succeeded"})')
            == before["canary_succeeded"] + 5
            and prometheus.scalar('sum(job_attempts_total{type="tests.always_fails", outcome="dead"})')
            == before["failing_dead"] + 1
            and prometheus.scalar("max(jobs_dead_letter_queue_size)") == 1
        )

    wait_for(scraped, timeout=30, interval=0.5, message="Prometheus to scrape the outcomes")
    assert (
        prometheus.scalar('sum(job_attempts_total{type="tests.always_fails", outcome="retried"})')
        == before["failing_retried"] + 2
    )
    assert prometheus.scalar('sum(jobs_enqueued_total{type="jobs.canary", queue="default"})') == enqueued_before + 5
    assert prometheus.scalar('sum(job_run_seconds_count{type="jobs.canary"})') == before["canary_runs"] + 5
    assert (
        prometheus.scalar('sum(job_queue_wait_seconds_count{type="jobs.canary", queue="default"})')
        == before["canary_waits"] + 5
    )
    p50 = prometheus.scalar('histogram_quantile(0.5, sum by (le) (job_run_seconds_bucket{type="jobs.canary"}))')
    assert p50 is not None and 0.01 <= p50 <= 1
    assert prometheus.scalar("max(jobs_canary_last_success_timestamp_seconds)") == pytest.approx(time.time(), abs=60)
    assert prometheus.scalar('max(jobs_worker_consuming_queue{queue="default"})') == 1
    assert prometheus.scalar('sum(jobs_reaper_rescued_total{result="requeued"})') == rescued_before + 1
    assert prometheus.scalar('sum(jobs_relay_published_total{kind="unpublished"})') >= 1
    assert prometheus.scalar("min(jobs_database_up)") == 1 and prometheus.scalar("min(jobs_broker_up)") == 1
    assert prometheus.query('up{job="jobplatform-web"}') and set(prometheus.query("up").values()) == {1.0}

    # Every metric name the dashboard and the alert rules read exists in what Prometheus scraped.
    wait_for(lambda: prometheus.scalar('sum(jobs_http_requests_total{route="/api/openapi.json"})'), timeout=10,
             message="the API request to be scraped")  # fmt: skip
    exported = set(prometheus.get("/api/v1/label/__name__/values"))
    for expression in dashboard_expressions() + rule_expressions():
        missing = metric_names(expression) - exported
        assert not missing, f"{expression!r} reads metrics nobody exports: {missing}"
    # The rules loaded into the real server and are evaluated.
    groups = prometheus.get("/api/v1/rules")["groups"]
    assert {rule["name"] for group in groups for rule in group["rules"]} >= {"JobsCanaryStale", "JobsQueueBacklog"}
    assert all(rule["health"] == "ok" for group in groups for rule in group["rules"])


def test_metric_names_of_expressions():
    assert metric_names('sum by (type) (rate(job_attempts_total{outcome=~"failed|dead"}[15m])) > 0.05') == {
        "job_attempts_total"
    }
    assert metric_names("max by (queue) (jobs_queue_due) > 0 unless on (queue) max by (queue) (up) == 1") == {
        "jobs_queue_due", "up",
    }  # fmt: skip
    assert metric_names("time() - max(jobs_canary_last_success_timestamp_seconds) > 900") == {
        "jobs_canary_last_success_timestamp_seconds"
    }
