"""The shared browser harness drives Debian's Chromium against the live server."""

import os

import pytest

from tests.browser import ASYNC_UNSAFE, DESKTOP, admin_login, async_unsafe_allowed, screenshot


@pytest.mark.django_db(transaction=True)
def test_admin_login_in_real_chromium(browser, live_server, django_user_model):
    django_user_model.objects.create_superuser("ops", "ops@example.com", "pw-for-tests-only")
    page = browser.new_page(viewport=DESKTOP)
    try:
        admin_login(page, live_server.url, username="ops", password="pw-for-tests-only")
        assert "Site administration" in page.inner_text("body")
        assert screenshot(page, "admin-index").stat().st_size > 1000
    finally:
        page.close()


@pytest.mark.django_db(transaction=True)
def test_processes_tests_start_keep_djangos_async_safety_check_while_chromium_runs(browser, subprocess_env):
    # The exemption is for this process (Playwright's loop runs on its thread); a worker inheriting it would
    # hide a real "async context" bug in the code under test.
    assert os.environ.get(ASYNC_UNSAFE) == "true"
    assert ASYNC_UNSAFE not in subprocess_env


def test_the_async_safety_exemption_ends_with_its_block(monkeypatch):
    monkeypatch.delenv(ASYNC_UNSAFE, raising=False)
    with async_unsafe_allowed():
        assert os.environ[ASYNC_UNSAFE] == "true"
    assert ASYNC_UNSAFE not in os.environ

    monkeypatch.setenv(ASYNC_UNSAFE, "1")  # a developer's own setting is left as it was
    with async_unsafe_allowed():
        pass
    assert os.environ[ASYNC_UNSAFE] == "1"
