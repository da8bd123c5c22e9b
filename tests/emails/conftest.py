"""Emails tests: a real SMTP server (emails.smtp_catcher on aiosmtpd) in the test process, and workers pointed at it."""

from __future__ import annotations

import pytest

import tests.emails.emailtypes  # noqa: F401 - declares the test templates in this process too
from emails.models import EmailMessage
from tests.conftest import email_env  # with the smtp_server fixture, shared with tests outside emails/
from tests.processes import wait_for

WORKER_INCLUDE = "tests.jobs.jobtypes,tests.emails.emailtypes"
FINAL_STATES = ("sent", "failed", "suppressed", "uncertain", "dismissed")


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
