"""gunicorn settings for the web service (``gunicorn -c python:config.gunicorn``): metrics across workers.

Every gunicorn worker records into the service's metrics directory (``PROMETHEUS_MULTIPROC_DIR``),
so ``/metrics`` answers the same sums whichever worker serves the scrape.
"""

import os
import tempfile


def on_starting(server):
    # The master runs before any worker: give them one directory, emptied of an earlier run's files.
    os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="jobplatform-web-metrics-"))
    from jobs.metrics import metrics_dir_reset

    metrics_dir_reset()


def child_exit(server, worker):
    from jobs.metrics import process_exited

    process_exited(worker.pid)
