"""/api/docs renders the Markdown of the OpenAPI descriptions (it showed the raw text), safely: in real Chromium,
the document's own descriptions come out as paragraphs, `code`, **bold** and lists, and a hostile description's
HTML stays text and its javascript: link is no link."""

from __future__ import annotations

import json

import pytest

from tests.browser import DESKTOP, PHONE, SCREENSHOT_DIR, screenshot

pytestmark = pytest.mark.django_db


def _open(browser, viewport):
    page = browser.new_page(viewport=viewport)
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    return page, problems


@pytest.mark.parametrize("viewport, width", [(DESKTOP, "desktop"), (PHONE, "phone")])
def test_descriptions_are_rendered_as_markdown(browser, live_server, viewport, width):
    page, problems = _open(browser, viewport)
    try:
        page.goto(f"{live_server.url}/api/docs")
        page.wait_for_selector("#ops .op")
        intro = page.locator("#intro")
        assert intro.locator("p").count() >= 4  # the document's intro has five paragraphs
        assert "Auth" in intro.locator("strong").all_inner_texts()
        assert "Authorization: Bearer <token>" in intro.locator("code").all_inner_texts()
        assert "**" not in intro.inner_text() and "`" not in intro.inner_text()
        # An operation's description: `Idempotent-Replayed: true` is code, not backticks.
        enqueue = page.locator("#ops .op", has_text="Enqueue a job").first
        assert "Idempotent-Replayed: true" in enqueue.locator(".desc code").all_inner_texts()
        assert "`" not in enqueue.locator(".desc").inner_text()
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
        screenshot(page, f"api-docs-markdown-{width}")
        page.screenshot(path=str(SCREENSHOT_DIR / f"api-docs-markdown-{width}-first-screen.png"))  # the intro, legible
        assert problems == []
    finally:
        page.close()


HOSTILE = {
    "openapi": "3.1.0",
    "info": {
        "title": "t",
        "version": "1",
        "description": (
            'First <img src="x" onerror="window.pwned = 1"> paragraph with `<b>code</b>` and **bold <i>x</i>**.\n\n'
            "- a [safe link](https://example.com/a)\n"
            "- a [bad link](javascript:window.pwned=2)\n"
            "  continued\n\n"
            "1. one\n2. two"
        ),
    },
    "servers": [{"url": "/api"}],
    "paths": {},
    "components": {"schemas": {}},
}


def test_html_in_a_description_is_shown_as_text_never_run(browser, live_server):
    page, problems = _open(browser, DESKTOP)
    try:
        page.route("**/api/openapi.json", lambda route: route.fulfill(
            status=200, content_type="application/json", body=json.dumps(HOSTILE)))  # fmt: skip
        page.goto(f"{live_server.url}/api/docs")
        page.wait_for_selector("#intro p")
        intro = page.locator("#intro")
        assert intro.locator("img, b, i, script").count() == 0
        text = intro.inner_text()
        assert '<img src="x" onerror="window.pwned = 1">' in text
        assert intro.locator("code").all_inner_texts() == ["<b>code</b>"]
        assert intro.locator("strong").all_inner_texts() == ["bold <i>x</i>"]
        assert intro.locator("ul > li").count() == 2 and intro.locator("ol > li").count() == 2
        links = intro.locator("a")
        assert links.count() == 1 and links.get_attribute("href") == "https://example.com/a"
        assert "[bad link](javascript:window.pwned=2) continued" in intro.locator("ul > li").nth(1).inner_text()
        assert page.evaluate("window.pwned") is None
        assert problems == []
    finally:
        page.close()
