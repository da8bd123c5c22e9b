"""What a scrape answers: every process's samples of the service, plus (web) the overview's gauges read now."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, multiprocess
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from jobs.foundation.metrics import metrics_dir
from jobs.ops.selectors import concurrency_usage, jobs_overview

logger = logging.getLogger("jobs.metrics")


class OverviewCollector(Collector):
    """Gauges read at scrape time from the operations overview (index-bound counts, broker list lengths).

    A database that does not answer is reported as ``jobs_database_up 0`` rather than a failed scrape,
    so the alert on it can fire.
    """

    def collect(self) -> Iterator[GaugeMetricFamily]:
        started = time.perf_counter()
        database_up = GaugeMetricFamily("jobs_database_up", "1 when the database answered this scrape's queries.")
        try:
            overview = jobs_overview()
        except Exception as error:  # the scrape must still answer, saying what is down
            logger.warning("metrics: the overview could not be read: %s", error)
            database_up.add_metric([], 0)
            yield database_up
            return
        database_up.add_metric([], 1)
        yield database_up
        by_status = GaugeMetricFamily("jobs_current", "Jobs now in each live state.", labels=["status"])
        for status, count in overview.live_counts.items():
            by_status.add_metric([status], count)
        yield by_status
        yield GaugeMetricFamily(
            "jobs_dead_letter_queue_size", "Dead jobs not replayed yet.", value=overview.dead_letter_size
        )
        broker_up = GaugeMetricFamily("jobs_broker_up", "1 when the broker answered this scrape's depth queries.")
        broker_up.add_metric([], 0 if any(queue.broker_depth is None for queue in overview.queues) else 1)
        yield broker_up
        depth = GaugeMetricFamily("jobs_queue_broker_depth", "Messages waiting in the queue's broker list.",
                                  labels=["queue"])  # fmt: skip
        due = GaugeMetricFamily("jobs_queue_due", "Jobs due to run on the queue (type switched on).", labels=["queue"])
        oldest = GaugeMetricFamily("jobs_queue_oldest_due_age_seconds",
                                   "How long the queue's oldest due job has waited (0 when none).",
                                   labels=["queue"])  # fmt: skip
        for queue in overview.queues:
            if queue.broker_depth is not None:
                depth.add_metric([queue.name], queue.broker_depth)
            due.add_metric([queue.name], queue.due_jobs)
            oldest.add_metric([queue.name], queue.oldest_due_seconds or 0.0)
        yield depth
        yield due
        yield oldest
        yield from _concurrency_families()
        yield GaugeMetricFamily(
            "jobs_metrics_overview_seconds", "How long this scrape's overview queries took.",
            value=time.perf_counter() - started,
        )  # fmt: skip


def _concurrency_families() -> Iterator[GaugeMetricFamily]:
    """Per type with a concurrency limit: slots taken, the limit, and the jobs waiting for a slot."""
    running = GaugeMetricFamily(
        "jobs_concurrency_running", "Attempts of a limited type holding a slot.", labels=["type"]
    )
    limit = GaugeMetricFamily(
        "jobs_concurrency_limit", "A type's concurrency limit (all keys together).", labels=["type"]
    )
    waiting = GaugeMetricFamily("jobs_concurrency_waiting", "Jobs waiting for a slot of their type's concurrency limit.",
                                labels=["type"])  # fmt: skip
    for usage in concurrency_usage():
        running.add_metric([usage.job_type], usage.running)
        if usage.limit is not None:
            limit.add_metric([usage.job_type], usage.limit)
        waiting.add_metric([usage.job_type], usage.waiting)
    yield running
    yield limit
    yield waiting


def registry_for_scrape(*, with_overview: bool) -> CollectorRegistry:
    """Every process's samples of this service (from the directory), plus the overview's gauges if asked."""
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=metrics_dir())  # type: ignore[no-untyped-call]  # unannotated in prometheus_client
    if with_overview:
        registry.register(OverviewCollector())
    return registry
