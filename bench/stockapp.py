"""Stock Celery for bench jobs_throughput: the app a Django user writes from Celery's docs.

Django is set up with ``bench.stock_settings`` (a stock project's settings, the Celery variant
picked by ``BENCH_STOCK_VARIANT``), never with this project's: the benchmark's environment carries
``DJANGO_SETTINGS_MODULE=config.settings.local`` for the project's own workers, so it is replaced
here rather than defaulted. A stock worker loads neither ``config`` nor ``jobs`` (whose per-task
connection hooks and settings are the project's, not a stock user's); tests/test_bench_stock.py
checks it on a real worker.
"""

from __future__ import annotations

import os

from celery import Celery

# Before the app exists: Celery's Django fixup reads it when the app is created.
os.environ["DJANGO_SETTINGS_MODULE"] = "bench.stock_settings"

app = Celery("stock")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.task(name="bench.stock_noop")  # type: ignore[untyped-decorator]  # celery has no types
def stock_noop(index: int = 0) -> None:
    """The no-op every variant runs."""


import bench.drainprobe  # noqa: F401, E402 - the same timing probe as every other variant (after the app exists)
