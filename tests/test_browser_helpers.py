"""tests/browser.py's helpers fail where the problem is: a login that lands back on the login page (a wrong
password, a throttled login) fails the test at once, saying so, instead of passing and failing later logged out."""

from __future__ import annotations

import pytest

from tests.browser import DESKTOP, admin_login

pytestmark = pytest.mark.django_db(transaction=True)
PASSWORD = "pw-for-tests-only"


@pytest.fixture
def operator(django_user_model, settings, redis_client):
    # redis_client empties the test Redis: no login attempts left over from another test.
    settings.ADMIN_LOGIN_MAX_ATTEMPTS_PER_USER, settings.ADMIN_LOGIN_MAX_ATTEMPTS_PER_ADDRESS = 2, 50
    return django_user_model.objects.create_superuser("operator", password=PASSWORD)


def test_admin_login_logs_in_and_fails_clearly_when_refused_or_throttled(browser, live_server, operator):
    page = browser.new_page(viewport=DESKTOP)
    try:
        admin_login(page, live_server.url, username="operator", password=PASSWORD)
        assert page.url.endswith("/admin/") and page.locator("#user-tools").is_visible()
        page.context.clear_cookies()

        with pytest.raises(pytest.fail.Exception, match=r"admin login as 'operator' failed: .*HTTP 200.*correct"):
            admin_login(page, live_server.url, username="operator", password="wrong")
        admin_login_refused = pytest.raises(pytest.fail.Exception, match=r"HTTP 429.*Too many login attempts")
        with pytest.raises(pytest.fail.Exception):
            admin_login(page, live_server.url, username="operator", password="wrong")
        with admin_login_refused:  # throttled now, even with the right password: a failure, not a pass
            admin_login(page, live_server.url, username="operator", password=PASSWORD)
    finally:
        page.close()
