"""`/` is a small landing page linking to where a newcomer goes first, not a 404 listing the URL patterns."""

from __future__ import annotations

import pytest

from tests.browser import DESKTOP, PHONE, screenshot

LINKS = {
    "/exports/": "Exports",
    "/api/docs": "API docs",
    "/admin/": "Admin",
    "/admin/jobs/job/overview/": "Overview and alerts",
}

pytestmark = pytest.mark.django_db


def test_landing_page_links_to_exports_api_docs_admin_and_overview(client):
    response = client.get("/")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    page = response.content.decode()
    for href, text in LINKS.items():
        assert f'<a href="{href}">{text}</a>' in page, href


def test_landing_page_is_for_reading_only(client):
    assert client.post("/").status_code == 405


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_landing_page_in_chromium(browser, live_server, viewport):
    name = "desktop" if viewport is DESKTOP else "phone"
    context = browser.new_context(viewport=viewport)
    try:
        page = context.new_page()
        errors: list[str] = []
        page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
        response = page.goto(f"{live_server.url}/")
        assert response is not None and response.status == 200
        for href, text in LINKS.items():
            link = page.get_by_role("link", name=text, exact=True)
            assert link.get_attribute("href") == href
            assert link.is_visible()
        # Nothing wider than a phone: no sideways scrolling.
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        screenshot(page, f"landing-{name}")
        assert not errors, errors
        page.get_by_role("link", name="API docs", exact=True).click()
        page.wait_for_url(f"{live_server.url}/api/docs")
    finally:
        context.close()
