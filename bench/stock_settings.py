"""Django settings of the stock baselines in bench jobs_throughput: a user's own project, not this one.

What ``django-admin startproject`` writes (its apps, ``USE_TZ``, the default connection options:
``CONN_MAX_AGE = 0``, no health checks, client-side parameter binding), minus what a worker never
reads (middleware, URLs, templates, password validators, static files), plus django-celery-results
and the ``CELERY_*`` settings the Celery docs tell a Django user to write. ``DEBUG`` is off, as in
any deployment (the project's workers run with ``DEBUG=0`` in the benchmark too).

Nothing here imports this project: no ``config``, no ``jobs`` (tests/test_bench_stock.py checks
a real stock worker). The database and the broker are the benchmark's (``DATABASE_URL``, the
throwaway database bench/harness.py made; ``REDIS_URL``).

``BENCH_STOCK_VARIANT`` picks the Celery settings:

- ``defaults``: a broker URL and nothing else (no result backend, early acks, prefetch 4);
- ``results``: plus ``CELERY_RESULT_BACKEND = "django-db"``, nothing else: with Django's
  ``CONN_MAX_AGE = 0`` Celery's Django fixup closes the connection before and after every task,
  so each task opens a new one (what a stock user gets);
- ``results_tuned``: plus ``CELERY_DB_REUSE_MAX = 1000``, which keeps the worker's connection
  for 1,000 tasks (the setting a user has to know about);
- ``results_late``: ``results_tuned`` plus ``acks_late`` and a prefetch multiplier of 1.
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url

VARIANTS = ("defaults", "results", "results_tuned", "results_late")
VARIANT = os.environ.get("BENCH_STOCK_VARIANT", "defaults")
if VARIANT not in VARIANTS:
    raise RuntimeError(f"BENCH_STOCK_VARIANT must be one of {VARIANTS}, got {VARIANT!r}")

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = "django-insecure-stock-bench-only"  # noqa: S105 - never serves a request
DEBUG = False
ALLOWED_HOSTS: list[str] = []

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_celery_results",
]

# dj_database_url's defaults are Django's: CONN_MAX_AGE 0, CONN_HEALTH_CHECKS False, no OPTIONS.
DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL") or f"sqlite:///{BASE_DIR / 'var' / 'stock-bench.sqlite3'}"
    )
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

CELERY_BROKER_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
if VARIANT != "defaults":
    CELERY_RESULT_BACKEND = "django-db"
if VARIANT in ("results_tuned", "results_late"):
    CELERY_DB_REUSE_MAX = 1000
if VARIANT == "results_late":
    CELERY_TASK_ACKS_LATE = True
    CELERY_WORKER_PREFETCH_MULTIPLIER = 1
