"""The stock baselines of bench jobs_throughput are a stock Django + Celery project, not this one.

Their worker must run on Django's defaults (no kept connections, no health checks, client-side
binding) and never load ``config`` or ``jobs``: the jobs app's per-task hook sent an extra
``SELECT 1`` for every stock task that stored a result, which slowed the baseline the tracked
jobs are measured against (issue 22, 4.1).
"""

from __future__ import annotations

import importlib.util
import json
import sys

import pytest

from tests.processes import CeleryProcess, wait_for

PROJECT_APPS = {"jobs", "exports", "sync", "emails", "corsheaders", "django_celery_beat"}


def _stock_settings(monkeypatch, *, variant: str, database_url: str):
    monkeypatch.setenv("BENCH_STOCK_VARIANT", variant)
    monkeypatch.setenv("DATABASE_URL", database_url)
    # A fresh module each time: importlib.reload would keep the names an earlier variant set.
    spec = importlib.util.find_spec("bench.stock_settings")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("database_url", ["postgres://postgres@127.0.0.1:5432/jp", "sqlite:////tmp/stock.sqlite3"])
@pytest.mark.parametrize("variant", ["defaults", "results", "results_tuned", "results_late"])
def test_stock_settings_are_djangos_defaults(monkeypatch, variant, database_url):
    stock = _stock_settings(monkeypatch, variant=variant, database_url=database_url)

    assert not PROJECT_APPS & set(stock.INSTALLED_APPS)
    assert "django_celery_results" in stock.INSTALLED_APPS
    database = stock.DATABASES["default"]
    assert database["CONN_MAX_AGE"] == 0
    assert database["CONN_HEALTH_CHECKS"] is False
    assert not database.get("OPTIONS")  # no server-side binding, no prepared statements
    assert stock.DEBUG is False


def test_only_the_tuned_variants_keep_the_workers_connection(monkeypatch):
    url = "postgres://postgres@127.0.0.1:5432/jp"
    results = _stock_settings(monkeypatch, variant="results", database_url=url)
    assert results.CELERY_RESULT_BACKEND == "django-db"
    assert not hasattr(results, "CELERY_DB_REUSE_MAX")  # what a stock user has
    tuned = _stock_settings(monkeypatch, variant="results_tuned", database_url=url)
    assert (tuned.CELERY_RESULT_BACKEND, tuned.CELERY_DB_REUSE_MAX) == ("django-db", 1000)
    late = _stock_settings(monkeypatch, variant="results_late", database_url=url)
    assert late.CELERY_DB_REUSE_MAX == 1000
    assert (late.CELERY_TASK_ACKS_LATE, late.CELERY_WORKER_PREFETCH_MULTIPLIER) == (True, 1)
    defaults = _stock_settings(monkeypatch, variant="defaults", database_url=url)
    assert not hasattr(defaults, "CELERY_RESULT_BACKEND")


def test_a_stock_worker_loads_neither_config_nor_jobs(subprocess_env, redis_client, tmp_path):
    """A real stock worker, started as the benchmark starts it (with the project's settings module in
    its environment), runs a task that reports what its pool process loaded."""
    from django_celery_results.models import TaskResult

    from config.celery_app import app

    queue = "bench-stock-test"
    worker = CeleryProcess(
        name="stock",
        argv=[
            sys.executable, "-m", "celery", "-A", "bench.stockapp", "worker", "-Q", queue, "-P", "prefork",
            "--concurrency", "1", "-n", "stock@%h", "--without-gossip", "--without-mingle", "-l", "info",
            "--include", "tests.bench_stock_probe",
        ],
        env={**subprocess_env, "BENCH_STOCK_VARIANT": "results", "BENCH_PROBE_REDIS_URL": subprocess_env["REDIS_URL"]},
        log_path=tmp_path / "stock.log",
    )  # fmt: skip
    worker.start()
    try:
        worker.wait_ready()
        sent = app.send_task("tests.bench_stock_probe.report", queue=queue)
        row = wait_for(
            lambda: TaskResult.objects.filter(task_id=sent.id, status="SUCCESS").first(),
            timeout=30,
            message=f"the probe's result row\n{worker.log()[-3000:]}",
        )
    finally:
        worker.stop()
    report = json.loads(row.result)

    assert report["project_modules"] == [], report["project_modules"]
    assert report["settings_module"] == "bench.stock_settings"
    assert not PROJECT_APPS & set(report["installed_apps"])
    assert (report["conn_max_age"], report["conn_health_checks"]) == (0, False)
    assert not [name for name in report["task_prerun_receivers"] if name.startswith("jobs.")]
