"""The process's Redis client for locks and rate limits (not the broker's connection)."""

from __future__ import annotations

import os

import redis
from django.conf import settings

_clients: dict[int, redis.Redis] = {}


def get_redis() -> redis.Redis:
    """A client for REDIS_URL, one per process.

    Keyed by pid: Celery's prefork pool forks workers, and a connection pool created
    before the fork must not be shared by the children.
    """
    pid = os.getpid()
    client = _clients.get(pid)
    if client is None:
        client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=5)
        _clients.clear()
        _clients[pid] = client
    return client
