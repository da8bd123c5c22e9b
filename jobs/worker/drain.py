"""A draining worker hands back at once the messages it reserved but has not started (issue 24, item 3).

On a warm shutdown (SIGTERM: a deploy, a scale-down) Celery stops consuming and lets the running
jobs finish, but the messages it had prefetched stay reserved by it until the process exits
("Restoring N unacknowledged message(s)"): with 30-minute jobs running, the short jobs behind them
would wait 30 minutes although other workers are idle. This consumer step runs at the start of the
warm shutdown, before the pool waits for the running jobs (the pool has just dropped the jobs it had
not given to a process): it rejects with requeue every message the consumer holds without a running
request, so they are back on their queue within a second. The running jobs still finish within
their grace.

A job the pool had just written to a process as the drain began may start there and also be taken
by another worker: the attempt guard lets one delivery of an attempt run, the other is skipped.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import bootsteps
from celery.worker import state

logger = logging.getLogger("jobs.worker")


def _running_task_ids() -> set[str]:
    return {request.id for request in (*tuple(state.active_requests), *tuple(state.reserved_requests))}


def reserved_not_started(consumer: Any) -> list[Any]:
    """Messages the consumer holds unacknowledged whose task no pool process runs or will run here."""
    channel = getattr(getattr(consumer, "task_consumer", None), "channel", None)
    delivered = getattr(getattr(channel, "qos", None), "_delivered", None) or {}
    running = _running_task_ids()
    return [
        message for message in list(delivered.values())
        if (message.headers or {}).get("id") not in running and not message.acknowledged
    ]  # fmt: skip


def hand_back_reserved(consumer: Any) -> int:
    """Give the reserved, not started messages back to the broker; how many were handed back.

    By now the pool has dropped the jobs it had not given to a process (its ``close`` runs first in a
    warm shutdown), so what Celery would otherwise restore only at exit is what is left in the
    channel's unacknowledged set without a running request.
    """
    handed_back = 0
    for message in reserved_not_started(consumer):
        try:
            message.reject(requeue=True)
            handed_back += 1
        except Exception:  # noqa: BLE001 - at worst the message comes back at exit, as before
            logger.warning("draining: could not hand back message %s; it returns at exit",
                           message.delivery_tag, exc_info=True)  # fmt: skip
    if handed_back:
        logger.warning("draining: handed back %d reserved message(s) not started; running jobs finish here",
                       handed_back)  # fmt: skip
    return handed_back


class HandBackReservedOnDrain(bootsteps.StartStopStep):  # type: ignore[misc]  # celery has no types
    """Consumer step: on a warm shutdown, hand back reserved messages before the running jobs finish."""

    requires = ("celery.worker.consumer.tasks:Tasks",)

    def close(self, c: Any) -> None:
        # The first thing a warm shutdown does (WorkController.stop -> Consumer.close), before the
        # pool waits for the running jobs; a lost connection restarts the steps without closing them.
        if state.should_stop is None or state.should_stop is False:
            return
        hand_back_reserved(c)
