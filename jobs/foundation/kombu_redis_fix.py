"""Work-arounds for kombu 5.7 and a Redis outage: a worker must not exit, and must be back within seconds.

The bug (issue 24): when a worker's broker connection fails while it holds unacknowledged
messages (prefetched or running), Celery 5.7's consumer calls ``connection.collect()`` and then
``connection.close()``. ``collect()`` clears the transport's ``client`` (the kombu ``Connection``)
even when closing a channel failed half-way, leaving that channel open with its Redis pools
already dropped. The ``close()`` that follows closes the channel again; restoring its unacked
messages rebuilds a pool, ``Channel._connparams`` reads ``self.connection.client.hostname`` of the
cleared client and raises ``AttributeError: 'NoneType' object has no attribute 'hostname'``.
Celery treats only connection errors as recoverable, so the worker logs ``Unrecoverable error``
and exits. An idle worker holds no unacked messages, restores nothing and survives.

The fix here: a channel whose connection is already closed raises a Redis ``ConnectionError``
(what every caller in kombu and Celery already ignores or retries) instead of the
``AttributeError``. The messages it could not restore stay in Redis's unacked set; the
reservation sweep (``jobs.worker.reservations``) or the visibility timeout brings them back.

Second, reconnecting: a worker's consumer and beat retry the broker connection with kombu's default
back-off (2 s, then 2 s more each try, up to 30 s), so after a two-minute outage a worker slept up to
30 s more before noticing Redis was back. Neither Celery setting reaches those intervals; here the
wait between two tries is capped at ``RECONNECT_INTERVAL_MAX_SECONDS`` (a refused connection costs
next to nothing), and ``CELERY_BROKER_CONNECTION_MAX_RETRIES`` (None: forever) keeps them trying.

Applied from ``config/celery_app.py``, so in every process that loads the Celery app. Remove it
once a kombu release fixes ``_connparams`` (``tests/jobs/test_kombu_redis_fix.py`` shows whether
kombu still needs it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import redis
from kombu import connection as kombu_connection
from kombu.transport import redis as kombu_redis

_PATCHED = "_jobs_closed_connection_guard"
# Seconds between two tries to reach the broker again (kombu's default grows to 30).
RECONNECT_INTERVAL_MAX_SECONDS = 2.0
# _ensure_connection(errback, max_retries, interval_start, interval_step, interval_max, ...)
_INTERVAL_START_POSITION = 2
_INTERVAL_MAX_POSITION = 4


def channel_connection_closed(channel: Any) -> bool:
    """True when ``channel``'s transport no longer has its kombu connection (it was closed)."""
    transport = getattr(channel, "connection", None)
    return transport is None or getattr(transport, "client", None) is None


def apply() -> None:
    """Apply both work-arounds (idempotent)."""
    _guard_closed_connection()
    _cap_reconnect_interval()


def _cap_reconnect_interval() -> None:
    connection_class = kombu_connection.Connection
    original: Callable[..., Any] = connection_class._ensure_connection
    if getattr(original, _PATCHED, False):
        return

    def _ensure_connection(self: Any, *args: Any, **kwargs: Any) -> Any:
        if len(args) <= _INTERVAL_MAX_POSITION:  # not given by position
            given = kwargs.get("interval_max")
            kwargs["interval_max"] = min(RECONNECT_INTERVAL_MAX_SECONDS, 30 if given is None else given)
        if len(args) <= _INTERVAL_START_POSITION and "interval_max" in kwargs:
            kwargs["interval_start"] = min(kwargs["interval_max"], kwargs.get("interval_start", 2))
        return original(self, *args, **kwargs)

    setattr(_ensure_connection, _PATCHED, True)
    setattr(connection_class, "_ensure_connection", _ensure_connection)  # noqa: B010 - patching a third party


def _guard_closed_connection() -> None:
    """Make ``Channel._connparams`` raise a connection error on a closed connection."""
    channel_class = kombu_redis.Channel
    original: Callable[..., dict[str, Any]] = channel_class._connparams
    if getattr(original, _PATCHED, False):
        return

    def _connparams(self: Any, asynchronous: bool = False) -> dict[str, Any]:
        if channel_connection_closed(self):
            raise redis.ConnectionError(
                "kombu Redis channel used after its connection was closed (broker connection lost); "
                "its unacked messages stay in Redis and are restored later"
            )
        return original(self, asynchronous=asynchronous)

    setattr(_connparams, _PATCHED, True)
    _connparams.__wrapped__ = original  # type: ignore[attr-defined]  # the unpatched method, for the test
    setattr(channel_class, "_connparams", _connparams)  # noqa: B010 - patching a third party's method
