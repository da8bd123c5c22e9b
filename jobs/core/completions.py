"""Completions recorded where they survive a database fault: a body that finished is never run again.

A worker whose job body returned writes the completion (job id, attempt, result, time) to Redis
before it writes ``succeeded`` to the database. When the database write fails (the connection
dropped and stayed down, the process was killed between the two) the attempt's lease runs out and
the reaper takes it for lost; ``job_rescue_lost_attempt`` then finds the completion here and
finishes the job as succeeded instead of running its body again.

The record also covers a success written without waiting for the WAL flush (the default on
PostgreSQL, see ``JOBS_DURABLE_SUCCESS``): a database crash can forget such a commit for a moment
after it was made. So the record is not deleted right after the write but listed in a sorted set
by time; ``completions_prune`` (the reaper's tick) deletes records older than
``JOBS_COMPLETION_KEEP_SECONDS`` whose job the database shows succeeded by then. A record whose
job is not shown succeeded stays for the reaper (lost attempt) or the relay (lost claim) to find.

Best effort on the Redis side: when Redis is unreachable the completion is not recorded, the
success write waits for the flush, and the job is at-least-once, as before. A record lives
``JOBS_COMPLETION_TTL_SECONDS`` at most (a day by default), far longer than a lease, so a reaper
that was down for a while still finds it.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.utils.dateparse import parse_datetime
from redis import RedisError

from jobs.foundation.redis import get_redis

logger = logging.getLogger("jobs.completions")


@dataclass(frozen=True)
class Completion:
    """What a finished body returned, and when."""

    attempt: int
    result: Any
    finished_at: datetime


# Sorted set of job ids with a recorded completion, scored by when it was recorded (epoch seconds).
INDEX_KEY = "jobs:completed"


def _key(job_id: str) -> str:
    return f"jobs:completed:{job_id}"


def completion_record(*, job_id: str, attempt: int, result: Any, finished_at: datetime) -> bool:
    """Remember that ``attempt`` of ``job_id`` finished its body with ``result``. False when Redis is unreachable."""
    value = json.dumps({"attempt": attempt, "result": result, "finished_at": finished_at.isoformat()})
    ttl = int(getattr(settings, "JOBS_COMPLETION_TTL_SECONDS", 86_400))
    try:
        # One round trip; no MULTI: an index entry without its record is pruned as gone.
        pipe = get_redis().pipeline(transaction=False)
        pipe.set(_key(job_id), value, ex=ttl)
        pipe.zadd(INDEX_KEY, {job_id: finished_at.timestamp()})
        pipe.execute()
        return True
    except RedisError as error:
        logger.warning("could not record the completion of job %s attempt %s in Redis (%s); a failed success "
                       "write would run its body again", job_id, attempt, error)  # fmt: skip
        return False


def completion_forget(*, job_id: str) -> None:
    """The success is in the database: the record is no longer needed (best effort; it expires anyway)."""
    try:
        pipe = get_redis().pipeline(transaction=False)
        pipe.delete(_key(job_id))
        pipe.zrem(INDEX_KEY, job_id)
        pipe.execute()
    except RedisError:
        logger.debug("could not delete the completion record of job %s; it expires", job_id, exc_info=True)


def completion_find(*, job_id: str, attempt: int) -> Completion | None:
    """The recorded completion of ``attempt`` of ``job_id``, if its body finished.

    Raises RedisError when Redis cannot say: the caller must not take "unknown" for "not finished".
    """
    return _parse(get_redis().get(_key(job_id)), attempt=attempt)


def _parse(raw: bytes | str | None, *, attempt: int) -> Completion | None:
    """The record ``raw`` if it is one of ``attempt``'s."""
    if raw is None:
        return None
    data = json.loads(raw)
    finished_at = parse_datetime(data["finished_at"])
    if data.get("attempt") != attempt or finished_at is None:
        return None
    return Completion(attempt=attempt, result=data.get("result"), finished_at=finished_at)


def completions_find_many(refs: list[tuple[str, int]]) -> dict[str, Completion]:
    """The recorded completions of many (job id, attempt) pairs, by job id, in one round trip.

    Raises RedisError when Redis cannot say (see ``completion_find``).
    """
    if not refs:
        return {}
    raws = get_redis().mget([_key(job_id) for job_id, _ in refs])
    parsed = {job_id: _parse(raw, attempt=attempt) for (job_id, attempt), raw in zip(refs, raws, strict=True)}
    return {job_id: completion for job_id, completion in parsed.items() if completion is not None}


def completions_prune(*, is_settled: Callable[[dict[str, int]], set[str]], now: float | None = None,
                      batch: int = 1000, max_batches: int = 20) -> int:  # fmt: skip
    """Delete records older than ``JOBS_COMPLETION_KEEP_SECONDS`` whose success the database holds.

    ``is_settled`` gets {job id: recorded attempt} and returns the ids whose job the database shows
    succeeded in that attempt (or gone): their records are deleted. The others (a success lost in
    a crash, a write that failed) stay for the reaper or the relay. Returns how many were deleted.
    """
    keep = float(getattr(settings, "JOBS_COMPLETION_KEEP_SECONDS", 60))
    cutoff = (time.time() if now is None else now) - keep
    client = get_redis()
    deleted = 0
    offset = 0
    for _ in range(max_batches):
        members: list[bytes] = client.zrangebyscore(INDEX_KEY, "-inf", cutoff, start=offset, num=batch)  # type: ignore[assignment]
        ids = [member.decode() for member in members]
        if not ids:
            break
        raws = client.mget([_key(job_id) for job_id in ids])
        gone = [job_id for job_id, raw in zip(ids, raws, strict=True) if raw is None]  # expired or forgotten
        attempts = {job_id: json.loads(raw).get("attempt") for job_id, raw in zip(ids, raws, strict=True) if raw}
        settled = is_settled(attempts) if attempts else set()
        pipe = client.pipeline(transaction=False)
        for job_id in settled:
            pipe.delete(_key(job_id))
        if gone or settled:
            pipe.zrem(INDEX_KEY, *gone, *settled)
        pipe.execute()
        deleted += len(settled)
        offset += len(ids) - len(gone) - len(settled)  # the ones kept stay in the range
        if len(ids) < batch:
            break
    return deleted
