"""The Celery application: every worker, beat and Flower process loads this module."""

import os

from celery import Celery
from celery.signals import beat_init

from jobs.foundation import kombu_redis_fix
from jobs.worker.drain import HandBackReservedOnDrain

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

# kombu 5.7's Redis transport turns a broker outage into an exit of a busy worker: see the module.
kombu_redis_fix.apply()

app = Celery("jobplatform")
# All CELERY_* Django settings configure the app (see config/settings/base.py), including
# CELERY_DB_REUSE_MAX, which Celery's Django fixup reads to keep a worker's database
# connection between tasks (tests/config/test_settings.py checks it reaches a worker).
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
# A warm shutdown hands back the messages it reserved but has not started, at once (jobs/worker/drain.py).
app.steps["consumer"].add(HandBackReservedOnDrain)


@beat_init.connect  # type: ignore[untyped-decorator]  # celery has no types
def _beat_sends_no_task_sent_events(sender: object = None, **_: object) -> None:
    """Beat only sends housekeeping (relay, reaper, pruner, schedule triggers; the jobs a schedule makes are
    published by the housekeeping worker): its task-sent events would bury real jobs in Flower's task list."""
    app.conf.task_send_sent_event = False


# Worker metrics: a per-service multiprocess directory and its HTTP port (docs/metrics.md).
import jobs.ops.metrics_celery  # noqa: E402, F401
