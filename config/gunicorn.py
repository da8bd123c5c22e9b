"""gunicorn settings for the web service (``gunicorn -c python:config.gunicorn``): metrics across workers.

Every gunicorn worker records into the service's metrics directory (``PROMETHEUS_MULTIPROC_DIR``),
so ``/metrics`` answers the same sums whichever worker serves the scrape.

Both files a worker writes on every request, its heartbeat (gunicorn touches it each time round its
loop) and its metrics, live in memory where the machine has a writable ``/dev/shm`` (Linux, and every
Docker container): gunicorn's documentation warns that on a disk-backed directory, a container's
overlay filesystem in particular, the heartbeat can block a worker. (On this project's test machines,
whose ``/tmp`` is a plain local disk, it made no measurable difference: bench/README.md, api.)
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import TYPE_CHECKING

from jobs.foundation.processes import memory_tmp_dir

if TYPE_CHECKING:  # gunicorn has no types: these name what the hooks receive (mypy sees Any)
    from gunicorn.arbiter import Arbiter
    from gunicorn.workers.base import Worker

_memory_tmp = memory_tmp_dir()

worker_tmp_dir = _memory_tmp

# Which peers may mark a request as HTTPS with X-Forwarded-Proto (and set the other forwarding headers):
# none unless TRUST_PROXY_HEADERS (read as config/settings/base.py reads it), else FORWARDED_ALLOW_IPS
# (gunicorn's own default, 127.0.0.1 and ::1, when unset). gunicorn's default alone would let any client
# on the machine claim HTTPS, and so receive HSTS and https:// links, whatever the setting says.
_trust_proxy_headers = os.environ.get("TRUST_PROXY_HEADERS", "").strip().lower() in {"1", "true", "yes", "on"}
forwarded_allow_ips = (os.environ.get("FORWARDED_ALLOW_IPS") or "127.0.0.1,::1") if _trust_proxy_headers else ""


# The metrics directory this master created (none configured), removed when it exits.
_created_metrics_dir: list[str] = []


def on_starting(server: Arbiter) -> None:
    # The master runs before any worker: give them one directory, emptied of an earlier run's files.
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR") or os.environ.get("JOBS_METRICS_PRIVATE_DIR"):
        path = tempfile.mkdtemp(prefix="jobplatform-web-metrics-", dir=_memory_tmp)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
        _created_metrics_dir.append(path)
    # Workers import the app after the fork: they must all use this directory, not one each.
    os.environ.pop("JOBS_METRICS_PRIVATE_DIR", None)
    from jobs.foundation.metrics import metrics_dir_reset

    metrics_dir_reset()


def child_exit(server: Arbiter, worker: Worker) -> None:
    from jobs.foundation.metrics import process_exited

    process_exited(worker.pid)


def on_exit(server: Arbiter) -> None:
    # A configured directory (compose's tmpfs) is the operator's; one this master made is its own.
    for path in _created_metrics_dir:
        shutil.rmtree(path, ignore_errors=True)
