"""Declared retry policy: which errors retry, which fail at once, how long to wait."""

from __future__ import annotations

import random
import socket
from dataclasses import dataclass, field

from celery.exceptions import SoftTimeLimitExceeded
from django.db import InterfaceError as DatabaseInterfaceError
from django.db import OperationalError as DatabaseOperationalError

from jobs.foundation.exceptions import PermanentJobError, TransientJobError

# Errors that are usually about the moment, not the input: retry them by default.
DEFAULT_RETRY_ON: tuple[type[BaseException], ...] = (
    TransientJobError,
    TimeoutError,
    ConnectionError,
    socket.timeout,
    DatabaseOperationalError,
    DatabaseInterfaceError,
    SoftTimeLimitExceeded,
)
# Errors that will fail the same way every time: never retry them.
DEFAULT_FAIL_ON: tuple[type[BaseException], ...] = (PermanentJobError,)


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with full jitter, capped.

    delay(n) is drawn uniformly from [0, min(cap, base * factor ** (n - 1))], so many
    workers failing together spread their retries instead of stampeding.
    """

    base_seconds: float = 2.0
    factor: float = 2.0
    cap_seconds: float = 300.0
    # At least this long, so a retry never lands before the failure is recorded.
    min_seconds: float = 0.1

    def ceiling(self, attempt: int) -> float:
        return min(self.cap_seconds, self.base_seconds * self.factor ** max(0, attempt - 1))

    def delay(self, attempt: int, *, rng: random.Random | None = None) -> float:
        ceiling = self.ceiling(attempt)
        draw = (rng or random).uniform(0, ceiling)
        return max(min(self.min_seconds, ceiling), draw)


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    backoff: Backoff = field(default_factory=Backoff)
    retry_on: tuple[type[BaseException], ...] = DEFAULT_RETRY_ON
    fail_on: tuple[type[BaseException], ...] = DEFAULT_FAIL_ON

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {self.max_attempts}")

    def is_retryable(self, error: BaseException) -> bool:
        # A declared permanent error wins over a broader transient class it may inherit from.
        if isinstance(error, self.fail_on):
            return False
        if isinstance(error, TransientJobError):
            return True
        return isinstance(error, self.retry_on)
