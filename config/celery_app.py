"""The Celery application: every worker, beat and Flower process loads this module."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

app = Celery("jobplatform")
# All CELERY_* Django settings configure the app (see config/settings/base.py), including
# CELERY_DB_REUSE_MAX, which Celery's Django fixup reads to keep a worker's database
# connection between tasks (tests/config/test_settings.py checks it reaches a worker).
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Worker metrics: a per-service multiprocess directory and its HTTP port (docs/metrics.md).
import jobs.ops.metrics_celery  # noqa: E402, F401
