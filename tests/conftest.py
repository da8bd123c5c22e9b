"""Shared fixtures: real Redis, the test database, and real Celery worker processes."""

from __future__ import annotations

import os

import pytest
import redis as redis_lib
from django.conf import settings
from django.test import override_settings

from tests.peers import require_module
from tests.processes import CeleryProcess, database_url_for_subprocess

# The `browser` fixture (headless Chromium through Playwright) for every test module.
pytest_plugins = ["tests.browser"]


@pytest.fixture(autouse=True)
def _publish_breaker_closed():
    """Each test starts with publishing allowed, whatever broker outage an earlier test staged."""
    from jobs.core.publisher import breaker

    breaker.record_success()


@pytest.fixture
def redis_client():
    """A client on the test Redis, with the database emptied before and after the test."""
    client = redis_lib.Redis.from_url(settings.REDIS_URL)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture
def subprocess_env(transactional_db) -> dict[str, str]:
    """Environment for child processes that must share this test's database and Redis."""
    # Not the browser fixture's exemption from Django's async-safety check (tests.browser.ASYNC_UNSAFE, not
    # imported here: the plugin module would then load before pytest can rewrite it): it is for this process only.
    env = {key: value for key, value in os.environ.items() if key != "DJANGO_ALLOW_ASYNC_UNSAFE"}
    env["DJANGO_SETTINGS_MODULE"] = "config.settings.test"
    env["DATABASE_URL"] = database_url_for_subprocess()
    env["REDIS_URL"] = settings.REDIS_URL
    env["PYTHONUNBUFFERED"] = "1"
    return env


@pytest.fixture
def start_worker(subprocess_env, redis_client, tmp_path):
    """Start real `celery worker` processes; every one started is stopped after the test.

    Usage: ``worker = start_worker(queues="default", concurrency=2, extra_env={...})``.
    """
    started: list[CeleryProcess] = []

    def _start(
        *, queues: str = "default,emails,exports,sync,housekeeping", concurrency: int = 1, extra_env=None, name=None,
        include: str = "tests.jobs.jobtypes",
    ):  # fmt: skip
        env = {**subprocess_env, **(extra_env or {})}
        name = name or f"worker{len(started) + 1}"
        process = CeleryProcess.worker(
            name=name, queues=queues, concurrency=concurrency, env=env, log_path=tmp_path / f"{name}.log",
            include=include,
        )  # fmt: skip
        started.append(process)
        process.start()
        process.wait_ready()
        return process

    yield _start
    for process in started:
        process.stop()


@pytest.fixture
def start_beat(subprocess_env, tmp_path):
    started: list[CeleryProcess] = []

    def _start(*, extra_env=None, name=None):
        name = name or f"beat{len(started) + 1}"
        process = CeleryProcess.beat(
            name=name, env={**subprocess_env, **(extra_env or {})}, log_path=tmp_path / f"{name}.log"
        )
        started.append(process)
        process.start()
        return process

    yield _start
    for process in started:
        process.stop()


@pytest.fixture
def embedded_redis_factory():
    """Throwaway redis-server processes a test may stop (to simulate an outage) and restart."""
    from devtools.devstack import EmbeddedRedis

    servers: list[EmbeddedRedis] = []

    def _start(*, persistent: bool = False) -> EmbeddedRedis:
        # persistent: an append-only file in EMBEDDED_REDIS_DIR (give each test its own directory).
        server = EmbeddedRedis(persistent=persistent)
        server.start()
        servers.append(server)
        return server

    yield _start
    for server in servers:
        server.stop()


@pytest.fixture
def smtp_server():
    """A real SMTP server on a free port, recording what it accepts; faults on demand (see SmtpCatcher)."""
    require_module("aiosmtpd", pypi_package="aiosmtpd")
    from emails.smtp_catcher import SmtpCatcher

    catcher = SmtpCatcher().start()
    # Services called in this process see the same server and generous limits (pytest-django swaps in the
    # locmem backend for every test; these tests want the real one).
    with override_settings(EMAIL_BACKEND="emails.client.RecordingSmtpBackend", EMAIL_HOST=catcher.host, EMAIL_PORT=catcher.port, EMAIL_TIMEOUT=2,
                           JOBS_RATE_LIMITS={"email-provider": {"limit": 1000, "period": 1}}):  # fmt: skip
        yield catcher
    catcher.stop()


def email_env(catcher, **extra: str) -> dict[str, str]:
    """Environment for a worker sending to ``catcher``: short timeouts and backoff, a generous limit."""
    return {
        "EMAIL_HOST": catcher.host, "EMAIL_PORT": str(catcher.port), "EMAIL_TIMEOUT": "1",
        "EMAILS_RETRY_BASE_SECONDS": "0.2", "EMAILS_RETRY_CAP_SECONDS": "1", "EMAILS_SEND_MAX_ATTEMPTS": "4",
        "EMAIL_PROVIDER_RATE_LIMIT": "1000", "EMAIL_PROVIDER_RATE_PERIOD": "1", **extra,
    }  # fmt: skip
