"""Log formatting: every line carries the correlation id and, inside a job, the job's fields."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

from jobs.foundation.context import get_correlation_id, get_job_context

_CONTEXT_FIELDS = ("correlation_id", "job_id", "job_type", "queue", "attempt")


class JobContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "correlation_id", None):
            record.correlation_id = get_correlation_id()
        job = get_job_context()
        for field in ("job_id", "job_type", "queue", "attempt"):
            if not hasattr(record, field):
                setattr(record, field, getattr(job, field) if job else None)
        return True


class DeliberateUnavailableFilter(logging.Filter):
    """A 503 the API answers on purpose (a type switched off, the cron endpoint off) is a WARNING.

    Django logs every 5xx response at ERROR; these are answers the platform chose, with
    ``Retry-After``, not failures. Other 503s (``/healthz`` with the broker down) stay errors.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        request = getattr(record, "request", None)
        path = getattr(request, "path", "") or ""
        if record.levelno == logging.ERROR and getattr(record, "status_code", None) == 503 and path.startswith("/api/"):
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        base = f"{self.formatTime(record)} {record.levelname:<7} {record.name}: {record.getMessage()}"
        extras = " ".join(
            f"{field}={getattr(record, field)}" for field in _CONTEXT_FIELDS if getattr(record, field, None) is not None
        )
        duration = getattr(record, "duration_ms", None)
        if duration is not None:
            extras += f" duration_ms={duration}"
        line = f"{base} [{extras}]" if extras else base
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload = {
            "ts": datetime.fromtimestamp(record.created, tz=UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for field in (*_CONTEXT_FIELDS, "duration_ms", "outcome"):
            value = getattr(record, field, None)
            if value is not None:
                payload[field] = value
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str)
