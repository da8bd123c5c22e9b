"""The shared browser harness drives Debian's Chromium against the live server."""

import pytest

from tests.browser import DESKTOP, admin_login, screenshot


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
