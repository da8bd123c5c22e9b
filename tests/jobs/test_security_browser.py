"""What people see under the new headers, in real Chromium: the admin and /api/docs work under the
Content-Security-Policy (no violation reported), the token admin shows scopes and expiry, and a
throttled login (admin, exports page) says when to retry. Screenshots at desktop and phone widths."""

from __future__ import annotations

import pytest

from jobs.api.tokens import api_token_create
from jobs.coordination.ratelimit import KEY_PREFIX
from tests.browser import DESKTOP, PHONE, admin_login, screenshot

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def root(django_user_model, redis_client):
    for key in redis_client.scan_iter(f"{KEY_PREFIX}*"):
        redis_client.delete(key)
    user = django_user_model.objects.create_superuser("root", password="right-password")
    api_token_create(user=user, name="storefront backend", scopes=["read", "enqueue"])
    return user


def _open(browser, viewport):
    page = browser.new_page(viewport=viewport)
    violations: list[str] = []
    # Chromium reports each CSP violation on the console; a page that works under the policy reports none.
    page.on("console", lambda message: violations.append(message.text) if "Content Security Policy" in message.text
            else None)  # fmt: skip
    page.on("pageerror", lambda error: violations.append(str(error)))
    return page, violations


@pytest.mark.parametrize("viewport, width", [(DESKTOP, "desktop"), (PHONE, "phone")])
def test_admin_and_api_docs_work_under_the_content_security_policy(browser, live_server, root, viewport, width):
    page, violations = _open(browser, viewport)
    admin_login(page, live_server.url, username="root", password="right-password")
    for path, name, ready in [
        ("/admin/", "admin-index", "#content"),
        ("/admin/jobs/apitoken/", "admin-api-tokens", "#result_list"),
        ("/admin/jobs/apitoken/add/", "admin-api-token-add", "#id_scopes"),
        ("/admin/jobs/job/overview/", "admin-jobs-overview", "#content"),
        ("/api/docs", "api-docs", "#ops .op"),
    ]:
        response = page.goto(f"{live_server.url}{path}")
        assert "script-src 'self'" in response.headers["content-security-policy"]
        page.wait_for_selector(ready)
        screenshot(page, f"security-{name}-{width}")
    assert violations == []

    page.goto(f"{live_server.url}/admin/jobs/apitoken/")
    row = page.inner_text("#result_list")
    assert "storefront backend" in row and "read" in row and "enqueue" in row
    page.goto(f"{live_server.url}/admin/jobs/apitoken/add/")
    assert page.is_checked("#id_scopes input[value=read]") and not page.is_checked("#id_scopes input[value=ops]")
    assert page.input_value("#id_expires_at_0")  # the default expiry is filled in
    # The docs page's script (a static file now) ran: it rendered the operations from the document.
    page.goto(f"{live_server.url}/api/docs")
    page.wait_for_selector("#ops .op")
    assert page.locator("#ops .op").count() >= 5


# Every login page goes through the same throttle (issue 22: the exports page's was not), each in its own look.
@pytest.mark.parametrize("app, submit, main", [("admin", "input[type=submit]", "#content"),
                                               ("exports", "button[type=submit]", "main")])  # fmt: skip
@pytest.mark.parametrize("viewport, width", [(DESKTOP, "desktop"), (PHONE, "phone")])
def test_a_throttled_login_says_when_to_retry_and_leads_back(browser, live_server, root, settings, viewport, width,
                                                              app, submit, main):  # fmt: skip
    settings.ADMIN_LOGIN_MAX_ATTEMPTS_PER_USER = 2
    login_url = f"{live_server.url}/{app}/login/"
    page, violations = _open(browser, viewport)
    for _ in range(3):
        page.goto(login_url)
        page.fill("#id_username", "root")
        page.fill("#id_password", "wrong")
        page.click(submit)
        page.wait_for_load_state()
    text = page.inner_text(main)
    assert "Too many login attempts for this username" in text and "Try again in 15 minutes" in text
    screenshot(page, f"security-{app}-login-throttled-{width}")
    page.click("text=Back to the login page")
    page.wait_for_selector("#id_username")
    assert page.url == login_url
    assert violations == []
