"""Stock Celery for bench jobs_throughput: the app a Django user writes from Celery's docs.

Configured from ``BENCH_STOCK_VARIANT``, not from the project's settings:

- ``defaults``: a broker URL and nothing else (no result backend, early acks, prefetch 4,
  no task events);
- ``results``: plus django-celery-results (``CELERY_RESULT_BACKEND = "django-db"``) and
  ``CELERY_DB_REUSE_MAX`` so the worker keeps its database connection between tasks;
- ``results_late``: plus ``acks_late`` and a prefetch multiplier of 1.

Django is set up with the project's settings only for the database and installed apps, and with
Django's default connection options (client-side parameter binding, no prepared statements), as a
user's own project would have them.
"""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
os.environ["DATABASE_PREPARED_STATEMENTS"] = "0"  # Django's defaults, not this project's (config/settings/base.py)

VARIANTS = ("defaults", "results", "results_late")
VARIANT = os.environ.get("BENCH_STOCK_VARIANT", "defaults")
if VARIANT not in VARIANTS:
    raise RuntimeError(f"BENCH_STOCK_VARIANT must be one of {VARIANTS}, got {VARIANT!r}")


class StockSettings:
    """What ``app.config_from_object("django.conf:settings", namespace="CELERY")`` would read."""

    CELERY_BROKER_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    if VARIANT != "defaults":
        CELERY_RESULT_BACKEND = "django-db"
        CELERY_DB_REUSE_MAX = 1000
    if VARIANT == "results_late":
        CELERY_TASK_ACKS_LATE = True
        CELERY_WORKER_PREFETCH_MULTIPLIER = 1


app = Celery("stock")
app.config_from_object(StockSettings, namespace="CELERY")


@app.task(name="bench.stock_noop")
def stock_noop(index: int = 0) -> None:
    """The no-op every variant runs."""


import bench.drainprobe  # noqa: F401, E402 - the same timing probe as every other variant (after the app exists)
