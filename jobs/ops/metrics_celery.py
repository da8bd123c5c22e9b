"""Worker-side metrics wiring, by Celery signals (connected when ``config.celery_app`` loads this module).

- ``worker_init`` (the worker's main process, before the pool forks): empty the service's
  metrics directory when it was configured (``PROMETHEUS_MULTIPROC_DIR``), then, when
  ``JOBS_WORKER_METRICS_PORT`` is set, serve every process's samples over HTTP from a thread
  of the main process. Pool children record into the directory; recycled ones leave their
  files, so the endpoint keeps their counts.
- ``worker_ready``: which queues this worker consumes (``jobs_worker_consuming_queue``).
- ``task_success``: a task beat sent (django-celery-beat's ``periodic_task_name`` header) ran,
  so its schedule is alive (``jobs_schedule_last_fired_timestamp_seconds``).
"""

from __future__ import annotations

import logging
from typing import Any

from celery.signals import task_success, worker_init, worker_ready
from django.conf import settings

from jobs.foundation import metrics

logger = logging.getLogger("jobs.metrics")


@worker_init.connect  # type: ignore[untyped-decorator]  # celery has no types
def _serve_worker_metrics(sender: Any = None, **kwargs: Any) -> None:
    metrics.metrics_dir_reset()
    port = int(getattr(settings, "JOBS_WORKER_METRICS_PORT", 0) or 0)
    if not port:
        return
    from prometheus_client import start_http_server

    # Not at module level: config.celery_app loads this module before Django's apps are ready.
    from jobs.ops.metrics_scrape import registry_for_scrape

    address = getattr(settings, "JOBS_WORKER_METRICS_ADDR", "0.0.0.0")
    start_http_server(port, addr=address, registry=registry_for_scrape(with_overview=False))
    logger.info("worker metrics on http://%s:%s/metrics (dir %s)", address, port, metrics.metrics_dir())


@worker_ready.connect  # type: ignore[untyped-decorator]  # celery has no types
def _record_consumed_queues(sender: Any = None, **kwargs: Any) -> None:
    try:
        queues = sorted(sender.app.amqp.queues.consume_from)
    except AttributeError:
        return
    metrics.worker_consumes(queues=queues)


@task_success.connect  # type: ignore[untyped-decorator]  # celery has no types
def _record_schedule_fired(sender: Any = None, **kwargs: Any) -> None:
    request = getattr(sender, "request", None)
    # A worker merges message headers into the request; an eagerly applied task keeps them apart.
    schedule = getattr(request, "periodic_task_name", None) or (getattr(request, "headers", None) or {}).get(
        "periodic_task_name"
    )
    if schedule:
        metrics.schedule_fired(schedule=str(schedule))
