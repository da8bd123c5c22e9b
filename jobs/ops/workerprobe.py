"""Is a worker alive and able to work? The probe behind compose's worker healthchecks.

A worker is ready when its node answers a ping over the broker (its main process consumes
messages), the database and the broker answer from its container, and none of its pool
processes reported that it cannot reach the database (``jobs.foundation.dbresilience``).
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import Any

from celery import current_app
from redis import RedisError

from jobs.foundation.dbresilience import describe_database_failures, worker_database_failures
from jobs.ops.health import _check_broker, _check_database


@dataclass(frozen=True)
class ProbeResult:
    node: str
    # check name -> None when it passed, else what failed
    checks: dict[str, str | None]

    @property
    def ok(self) -> bool:
        return not any(self.checks.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "status": "ok" if self.ok else "failing",
            "checks": {name: reason or "ok" for name, reason in self.checks.items()},
        }


def expand_node_name(node: str) -> str:
    """``default@%h`` -> ``default@<this host>``, as ``celery worker -n`` expands it."""
    return node.replace("%h", socket.gethostname()).replace("%n", socket.gethostname().split(".")[0])


def worker_probe(*, node: str, timeout: float = 3.0) -> ProbeResult:
    """Check one worker node: ping, database, broker, and its pool processes' database reports."""
    node = expand_node_name(node)
    checks: dict[str, str | None] = {"database": _check_database(), "broker": _check_broker()}
    if checks["broker"] is None:
        try:
            replies = current_app.control.ping(destination=[node], timeout=timeout)
        except Exception as exc:  # noqa: BLE001 - any broker client error means "could not ask"
            checks["ping"] = f"could not ping {node}: {exc.__class__.__name__}: {exc}"
        else:
            answered = any(node in reply for reply in replies)
            checks["ping"] = None if answered else f"worker {node} did not answer a ping within {timeout:g} s"
        try:
            mine = {process: error for process, error in worker_database_failures().items()
                    if process.rsplit(":", 1)[0] == node}  # fmt: skip
        except RedisError:
            mine = {}
        checks["worker_database"] = describe_database_failures(mine)
    return ProbeResult(node=node, checks=checks)


def queues_consumed(*, timeout: float = 1.0) -> set[str] | None:
    """Queues some answering worker consumes, or None when the workers could not be asked."""
    try:
        replies = current_app.control.inspect(timeout=timeout).active_queues() or {}
    except Exception:  # noqa: BLE001 - broker unreachable: unknown, not "none"
        return None
    return {queue["name"] for queues in replies.values() for queue in queues}
