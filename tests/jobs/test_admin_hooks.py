"""A domain app's admin hooks (jobs.public.job_admin_hooks_register): read per job type, and never break a page."""

from __future__ import annotations

from jobs.core import admin_hooks
from jobs.public import AdminLink, ReplayAdvice, job_admin_hooks_register


def test_hooks_are_per_type_and_a_failing_hook_is_logged_not_raised(caplog):
    def broken(job_id, payload):
        raise KeyError("run_id")

    job_admin_hooks_register(job_type="tests.hooked", record_link=lambda job_id, payload: AdminLink(job_id, "/x/"),
                             replay_advice=lambda payloads: ReplayAdvice(f"{len(payloads)} would do nothing"))  # fmt: skip
    job_admin_hooks_register(job_type="tests.broken_hook", record_link=broken)
    try:
        assert admin_hooks.record_link(job_type="tests.hooked", job_id="j1", payload={}) == AdminLink("j1", "/x/")
        advice = admin_hooks.replay_advice(job_type="tests.hooked", payloads=[{}, {}])
        assert advice == ReplayAdvice("2 would do nothing")
        assert admin_hooks.record_link(job_type="tests.unhooked", job_id="j1", payload={}) is None
        assert admin_hooks.replay_advice(job_type="tests.broken_hook", payloads=[{}]) is None
        assert admin_hooks.record_link(job_type="tests.broken_hook", job_id="j2", payload={}) is None
        assert "record_link hook of tests.broken_hook failed for job j2" in caplog.text
    finally:
        admin_hooks._hooks.pop("tests.hooked", None)
        admin_hooks._hooks.pop("tests.broken_hook", None)
