"""Log lines carry the correlation id and, inside a job, the job's fields; JSON in production."""

import json
import logging

import pytest

from jobs.foundation.context import JobLogContext, correlation_scope, job_scope
from jobs.foundation.logging import JobContextFilter, JsonFormatter, TextFormatter


def make_record(message="job finished", **extra) -> logging.LogRecord:
    record = logging.LogRecord("jobs.run", logging.INFO, __file__, 1, message, None, None)
    for key, value in extra.items():
        setattr(record, key, value)
    JobContextFilter().filter(record)
    return record


def test_json_lines_carry_job_fields_and_duration():
    with (
        correlation_scope("req-9"),
        job_scope(JobLogContext(job_id="j1", job_type="exports.csv", queue="exports", attempt=2)),
    ):
        record = make_record(duration_ms=12, outcome="succeeded")

    line = json.loads(JsonFormatter().format(record))

    assert line["message"] == "job finished" and line["level"] == "INFO"
    assert {k: line[k] for k in ("correlation_id", "job_id", "job_type", "queue", "attempt", "duration_ms", "outcome")} == {
        "correlation_id": "req-9", "job_id": "j1", "job_type": "exports.csv", "queue": "exports", "attempt": 2,
        "duration_ms": 12, "outcome": "succeeded",
    }  # fmt: skip


def test_text_lines_are_readable_and_omit_empty_fields():
    with correlation_scope("req-9"):
        record = make_record("hello")

    text = TextFormatter().format(record)

    assert text.endswith("INFO    jobs.run: hello [correlation_id=req-9]")


def test_unsafe_correlation_ids_are_replaced():
    with correlation_scope("bad id\nwith newline") as value:
        assert value != "bad id\nwith newline" and len(value) == 32


@pytest.mark.django_db
def test_a_deliberate_503_of_the_api_is_a_warning_and_a_failing_health_check_an_error(client, staff, settings, caplog):
    from jobs.foundation.logging import DeliberateUnavailableFilter
    from tests.jobs.test_api import bearer, post_job

    settings.JOBS_DISABLED_TYPES = ["jobs.canary"]
    with caplog.at_level(logging.INFO, logger="django.request"):
        assert post_job(client, {"type": "jobs.canary"}, **bearer(staff)).status_code == 503
    (record,) = [r for r in caplog.records if r.name == "django.request"]
    assert (record.levelname, record.status_code) == ("WARNING", 503)

    health = logging.LogRecord("django.request", logging.ERROR, __file__, 1, "Service Unavailable: %s", ("/healthz",),
                               None)  # fmt: skip
    health.status_code, health.request = 503, type("Request", (), {"path": "/healthz"})()
    DeliberateUnavailableFilter().filter(health)
    assert health.levelname == "ERROR"
