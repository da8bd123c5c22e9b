"""Reservation leases: nothing stays stranded behind a dead worker (issue 24, item 2).

A worker's main process reserves messages before any pool process runs them (prefetch). Killed
outright, it leaves them in the broker's unacknowledged set, which Redis gives back only after the
visibility timeout (an hour), and the relay re-publishes them only after
``JOBS_REPUBLISH_AFTER_SECONDS`` with their queue empty. Attempt leases do not cover them: nobody
claimed them yet.

So each worker main process (a *holder*: its node name and pid, since a restarted container keeps
its node name) records in Redis every job message it receives (``task_received``), and a heartbeat
thread renews the holder's *reservation lease* (``JOBS_LEASE_SECONDS``, every
``JOBS_HEARTBEAT_SECONDS``), as the attempt leases are renewed. The reaper's tick
(``reservations_sweep``) looks at the holders whose lease lapsed: every job it had reserved that
still waits for that very attempt is published again, and the holder's entries in the broker's
unacked set are deleted, so they do not pile up. A message whose job moved on needs nothing.
Publishing again is safe: the attempt guard runs one delivery of an attempt.

A holder that lost Redis for longer than its lease is swept too when Redis returns (its messages
may not have been restored: ``jobs.foundation.kombu_redis_fix``); the copies it still holds are
then duplicates, skipped by the attempt guard. A worker that exits cleanly removes its record.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from typing import Any

import redis
from celery.signals import task_received, worker_ready, worker_shutdown
from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from jobs.core.publisher import publish_messages, task_id_for
from jobs.foundation.processes import ProcessThread
from jobs.foundation.redis import get_redis
from jobs.models import WAITING_STATUSES, Job

logger = logging.getLogger("jobs.reservations")

HOLDERS_KEY = "jobs:reservations:holders"
# kombu's Redis transport keeps unacknowledged messages here (its default key names).
UNACKED_KEY = "unacked"
UNACKED_INDEX_KEY = "unacked_index"


def reservations_key(holder: str) -> str:
    return f"jobs:reservations:{holder}"


def lease_key(holder: str) -> str:
    return f"jobs:reservations:lease:{holder}"


def lease_seconds() -> int:
    return max(1, int(getattr(settings, "JOBS_LEASE_SECONDS", 30)))


def heartbeat_seconds() -> float:
    return float(getattr(settings, "JOBS_HEARTBEAT_SECONDS", 5))


class ReservationKeeper:
    """This worker main process's holder name, its records and the thread that renews its lease."""

    def __init__(self) -> None:
        self.holder: str | None = None
        self._heartbeat = ProcessThread(target=self._run, name="jobs-reservation-heartbeat")

    def start(self, node: str) -> None:
        self.holder = f"{node}:{os.getpid()}"
        self.renew_once()
        self._heartbeat.ensure_started()

    def record(self, request: Any) -> None:
        """Note a received job message (job id, attempt, type, queue, delivery tag). Best effort."""
        kwargs = getattr(request, "kwargs", None) or {}
        job_id, attempt = kwargs.get("job_id"), kwargs.get("attempt")
        if self.holder is None or not job_id or not attempt:
            return  # not a job message (housekeeping tasks), or not a worker main process
        delivery = getattr(request, "delivery_info", None) or {}
        message = getattr(request, "message", None)
        entry = {
            "attempt": int(attempt), "type": request.name, "queue": delivery.get("routing_key") or "",
            "tag": getattr(message, "delivery_tag", None), "at": time.time(),
        }  # fmt: skip
        try:
            pipe = get_redis().pipeline(transaction=False)
            pipe.hset(reservations_key(self.holder), job_id, json.dumps(entry))
            pipe.sadd(HOLDERS_KEY, self.holder)
            pipe.execute()
        except redis.RedisError as error:  # the broker delivered it, so Redis is usually up; if not, the relay
            logger.warning("could not record the reservation of job %s (Redis: %s)", job_id, error)

    def renew_once(self) -> bool:
        """One heartbeat: renew the lease, and drop the records of messages this process no longer holds."""
        if self.holder is None:
            return False
        try:
            client = get_redis()
            pipe = client.pipeline(transaction=False)
            pipe.set(lease_key(self.holder), "1", ex=lease_seconds())
            pipe.sadd(HOLDERS_KEY, self.holder)
            pipe.execute()
            self._prune(client)
            return True
        except redis.RedisError as error:
            logger.warning("could not renew the reservation lease (Redis: %s); trying again", error)
            return False

    def _prune(self, client: redis.Redis) -> None:
        """Forget the jobs whose request ended here (Celery forgets a request when it is done)."""
        assert self.holder is not None
        held = set(_known_task_ids())
        settled_before = time.time() - heartbeat_seconds()  # a record newer than a beat may precede its request
        done = [
            job_id for job_id, raw in client.hgetall(reservations_key(self.holder)).items()
            if (entry := json.loads(raw))["at"] < settled_before
            and task_id_for(_text(job_id), entry["attempt"]) not in held
        ]  # fmt: skip
        if done:
            client.hdel(reservations_key(self.holder), *done)

    def forget(self) -> None:
        """A clean exit: the broker got every reserved message back; nothing to sweep."""
        if self.holder is None:
            return
        try:
            get_redis().delete(reservations_key(self.holder), lease_key(self.holder))
            get_redis().srem(HOLDERS_KEY, self.holder)
        except redis.RedisError:
            pass

    def _run(self) -> None:
        stop = threading.Event()  # never set: the thread ends with its process
        while not stop.wait(heartbeat_seconds()):
            self.renew_once()


def _known_task_ids() -> list[str]:
    """The ids of the requests this worker process holds (reserved, running or scheduled)."""
    from celery.worker import state

    for _ in range(5):
        try:
            return list(state.requests)
        except RuntimeError:  # changed size while copied (the event loop thread): try again
            continue
    return []


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


keeper = ReservationKeeper()


@worker_ready.connect  # type: ignore[untyped-decorator]  # celery has no types
def _start_keeping(sender: Any = None, **_: Any) -> None:
    keeper.start(getattr(sender, "hostname", None) or socket.gethostname())


@task_received.connect  # type: ignore[untyped-decorator]  # celery has no types
def _record_received(request: Any = None, **_: Any) -> None:
    if request is not None:
        keeper.record(request)


@worker_shutdown.connect  # type: ignore[untyped-decorator]  # celery has no types
def _forget_on_exit(**_: Any) -> None:
    keeper.forget()


def reservations_sweep(*, limit_holders: int = 100) -> list[str]:
    """Publish again the waiting jobs of holders whose reservation lease lapsed; the ids published."""
    client = get_redis()
    published: list[str] = []
    holders = [_text(holder) for holder in client.smembers(HOLDERS_KEY)]
    for holder in holders[:limit_holders]:
        if client.exists(lease_key(holder)):
            continue
        raw = client.hgetall(reservations_key(holder))
        entries = {_text(job_id): json.loads(value) for job_id, value in raw.items()}
        published += _publish_still_waiting(holder, entries)
        _forget_unacked([entry["tag"] for entry in entries.values() if entry.get("tag")])
        client.delete(reservations_key(holder))
        client.srem(HOLDERS_KEY, holder)
    return published


def _publish_still_waiting(holder: str, entries: dict[str, dict[str, Any]]) -> list[str]:
    if not entries:
        return []
    now = timezone.now()
    rows = Job.objects.filter(id__in=list(entries), status__in=WAITING_STATUSES).exclude(
        Q(next_retry_at__gt=now)
    ).values_list("id", "type", "queue", "attempt", "correlation_id")  # fmt: skip
    # Only a job still waiting for the very attempt the dead holder had reserved.
    refs = [
        (job_id, type_, queue, attempt + 1, cid)
        for job_id, type_, queue, attempt, cid in rows
        if entries[job_id]["attempt"] == attempt + 1
    ]  # fmt: skip
    if not refs:
        return []
    # publish_messages stamps only rows not marked published: clear the stamp first, as the relay does.
    Job.objects.filter(id__in=[ref[0] for ref in refs]).update(published_at=None)
    count = publish_messages(refs)
    logger.warning("worker %s is gone (its reservation lease lapsed): published %d of its %d reserved job(s) again",
                   holder, count, len(refs))  # fmt: skip
    return [ref[0] for ref in refs] if count else []


def _forget_unacked(tags: list[str]) -> None:
    """Delete the dead holder's entries from kombu's unacked set (the broker Redis)."""
    if not tags:
        return
    broker_url = getattr(settings, "CELERY_BROKER_URL", None) or settings.REDIS_URL
    client = get_redis() if broker_url == settings.REDIS_URL else redis.Redis.from_url(broker_url)
    try:
        pipe = client.pipeline(transaction=False)
        pipe.hdel(UNACKED_KEY, *tags)
        pipe.zrem(UNACKED_INDEX_KEY, *tags)
        pipe.execute()
    finally:
        if client is not get_redis():
            client.close()
