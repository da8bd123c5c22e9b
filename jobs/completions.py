"""Completions recorded where they survive a database fault: a body that finished is never run again.

A worker whose job body returned writes the completion (job id, attempt, result, time) to Redis
before it writes ``succeeded`` to the database, and deletes it once that write is through. When the
database write fails (the connection dropped and stayed down, the process was killed between the
two) the attempt's lease runs out and the reaper takes it for lost; ``job_rescue_lost_attempt``
then finds the completion here and finishes the job as succeeded instead of running its body again.

Best effort on the Redis side: when Redis is unreachable the completion is not recorded and the job
is at-least-once, as before. A record lives ``JOBS_COMPLETION_TTL_SECONDS`` (a day by default), far
longer than a lease, so a reaper that was down for a while still finds it.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.utils.dateparse import parse_datetime
from redis import RedisError

from .redis import get_redis

logger = logging.getLogger("jobs.completions")


@dataclass(frozen=True)
class Completion:
    """What a finished body returned, and when."""

    attempt: int
    result: Any
    finished_at: datetime


def _key(job_id: str) -> str:
    return f"jobs:completed:{job_id}"


def completion_record(*, job_id: str, attempt: int, result: Any, finished_at: datetime) -> bool:
    """Remember that ``attempt`` of ``job_id`` finished its body with ``result``. False when Redis is unreachable."""
    value = json.dumps({"attempt": attempt, "result": result, "finished_at": finished_at.isoformat()})
    ttl = int(getattr(settings, "JOBS_COMPLETION_TTL_SECONDS", 86_400))
    try:
        get_redis().set(_key(job_id), value, ex=ttl)
        return True
    except RedisError as error:
        logger.warning("could not record the completion of job %s attempt %s in Redis (%s); a failed success "
                       "write would run its body again", job_id, attempt, error)  # fmt: skip
        return False


def completion_forget(*, job_id: str) -> None:
    """The success is in the database: the record is no longer needed (best effort; it expires anyway)."""
    try:
        get_redis().delete(_key(job_id))
    except RedisError:
        logger.debug("could not delete the completion record of job %s; it expires", job_id, exc_info=True)


def completion_find(*, job_id: str, attempt: int) -> Completion | None:
    """The recorded completion of ``attempt`` of ``job_id``, if its body finished.

    Raises RedisError when Redis cannot say: the caller must not take "unknown" for "not finished".
    """
    raw = get_redis().get(_key(job_id))
    if raw is None:
        return None
    data = json.loads(raw)
    finished_at = parse_datetime(data["finished_at"])
    if data.get("attempt") != attempt or finished_at is None:
        return None
    return Completion(attempt=attempt, result=data.get("result"), finished_at=finished_at)
