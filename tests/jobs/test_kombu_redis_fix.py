"""jobs.foundation.kombu_redis_fix: kombu 5.7's Redis transport after a lost connection (issue 24, item 1)."""

from __future__ import annotations

import pytest
import redis
from django.conf import settings
from kombu import Connection
from kombu.transport import redis as kombu_redis

import config  # noqa: F401 - loading the Celery app applies the work-arounds, as in every process
from devtools.devstack import free_port
from jobs.foundation import kombu_redis_fix


def closed_channel() -> kombu_redis.Channel:
    """A Redis channel left open on a connection whose client kombu cleared (Connection.collect, then close)."""
    connection = Connection(settings.REDIS_URL)
    channel = connection.channel()
    channel._disconnect_pools()  # what its half-done close did
    connection.transport.client = None  # what collect() did
    return channel


def test_kombu_still_raises_attribute_error_on_a_channel_of_a_closed_connection():
    # When this fails, kombu fixed _connparams: drop the guard (and this test).
    original = kombu_redis.Channel._connparams.__wrapped__
    with pytest.raises(AttributeError, match="'NoneType' object has no attribute 'hostname'"):
        original(closed_channel())


def test_the_guard_turns_it_into_a_connection_error_that_celery_recovers_from():
    channel = closed_channel()
    with pytest.raises(redis.ConnectionError, match="after its connection was closed"):
        with channel.conn_or_acquire():
            pass
    assert redis.ConnectionError in Connection("redis://").transport.connection_errors


def test_a_lost_broker_is_tried_again_every_two_seconds_at_most():
    waits: list[float] = []
    connection = Connection(f"redis://127.0.0.1:{free_port()}/0", connect_timeout=0.2)
    with pytest.raises(Exception):  # noqa: B017 - kombu re-raises the refusal as its OperationalError
        # As a worker's consumer and beat call it: errback and max_retries only (kombu would wait 2, 4, 6, 8 s).
        connection.ensure_connection(lambda exc, interval: waits.append(interval), 4)
    assert waits and max(waits) <= kombu_redis_fix.RECONNECT_INTERVAL_MAX_SECONDS, waits
