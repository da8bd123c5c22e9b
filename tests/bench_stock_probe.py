"""A task loaded into a stock benchmark worker (``--include tests.bench_stock_probe``) by
tests/test_bench_stock.py: it reports what the worker's pool process has loaded and how its
database connection is configured. Imports nothing of this project."""

from __future__ import annotations

import sys
import weakref
from typing import Any

from celery import shared_task

PROJECT_PACKAGES = {"config", "jobs", "exports", "sync", "emails"}


@shared_task(name="tests.bench_stock_probe.report")
def report() -> dict:
    from celery.signals import task_prerun
    from django.conf import settings
    from django.db import connection

    return {
        "project_modules": sorted(name for name in sys.modules if name.split(".")[0] in PROJECT_PACKAGES),
        "settings_module": settings.SETTINGS_MODULE,
        "installed_apps": list(settings.INSTALLED_APPS),
        "conn_max_age": connection.settings_dict["CONN_MAX_AGE"],
        "conn_health_checks": connection.settings_dict["CONN_HEALTH_CHECKS"],
        "task_prerun_receivers": sorted(
            f"{getattr(receiver, '__module__', '?')}.{getattr(receiver, '__qualname__', receiver)}"
            for receiver in map(_live, (entry for _key, entry in task_prerun.receivers))
            if receiver is not None
        ),
    }


def _live(receiver: Any) -> Any:
    return receiver() if isinstance(receiver, weakref.ReferenceType) else receiver
