"""gunicorn settings for the web service (``gunicorn -c python:config.gunicorn``): metrics across workers.

Every gunicorn worker records into the service's metrics directory (``PROMETHEUS_MULTIPROC_DIR``),
so ``/metrics`` answers the same sums whichever worker serves the scrape.
"""

import os
import tempfile


def on_starting(server):
    # The master runs before any worker: give them one directory, emptied of an earlier run's files.
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR") or os.environ.get("JOBS_METRICS_PRIVATE_DIR"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="jobplatform-web-metrics-")
    # Workers import the app after the fork: they must all use this directory, not one each.
    os.environ.pop("JOBS_METRICS_PRIVATE_DIR", None)
    from jobs.metrics import metrics_dir_reset

    metrics_dir_reset()


def child_exit(server, worker):
    from jobs.metrics import process_exited

    process_exited(worker.pid)
