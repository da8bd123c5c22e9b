"""Emails tests: a real SMTP server (emails.smtp_catcher on aiosmtpd) in the test process, and workers pointed at it."""

from __future__ import annotations

import pytest
from django.test import override_settings

import tests.emails.emailtypes  # noqa: F401 - declares the test templates in this process too
from emails.models import EmailMessage
from tests.peers import require_module
from tests.processes import wait_for

WORKER_INCLUDE = "tests.jobs.jobtypes,tests.emails.emailtypes"
FINAL_STATES = ("sent", "failed", "suppressed", "uncertain", "dismissed")


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


@pytest.fixture
def email_worker(start_worker, smtp_server):
    """Start a worker on the emails queue sending to the test's SMTP server."""

    def _start(*, concurrency: int = 1, name: str | None = None, **extra: str):
        return start_worker(queues="emails,default", concurrency=concurrency, name=name,
                            extra_env=email_env(smtp_server, **extra), include=WORKER_INCLUDE)  # fmt: skip

    return _start


def wait_for_state(email: EmailMessage, states: tuple[str, ...] = FINAL_STATES, *, timeout: float = 30) -> EmailMessage:
    return wait_for(lambda: EmailMessage.objects.filter(pk=email.pk, state__in=states).first(), timeout=timeout,
                    interval=0.1, message=f"email {email.pk} to reach {states}")  # fmt: skip
