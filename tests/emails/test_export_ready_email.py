"""The "your export is ready" email says what is ready (source, format, rows), in its subject, its text and
its HTML as Chromium shows it, and never the export's global id."""

from __future__ import annotations

import pytest

from emails.registry import email_render
from tests.browser import DESKTOP, PHONE, screenshot

READY = {"export_id": "4711", "exports_url": "https://shop.example/exports/", "recipient_name": "Ada",
         "what": "Products", "format": "CSV.gz", "rows": "1,500 rows"}  # fmt: skip


def test_the_subject_and_text_name_the_source_format_and_rows_not_the_id():
    rendered = email_render(template="export_ready", context=READY)

    assert rendered.subject == "Your export is ready: Products, CSV.gz, 1,500 rows"
    assert "  Products\n  CSV.gz, 1,500 rows\n" in rendered.text_body
    assert "4711" not in rendered.subject + rendered.text_body + rendered.html_body


def test_without_the_details_it_still_reads_well():
    rendered = email_render(template="export_ready", context={**READY, "what": "", "format": "", "rows": ""})

    assert rendered.subject == "Your export is ready"
    assert "Your export is ready. Download it from your exports page:" in rendered.text_body


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_the_html_shows_what_is_ready_in_chromium(browser, viewport):
    rendered = email_render(template="export_ready", context=READY)
    page = browser.new_page(viewport=viewport)
    try:
        page.set_content(rendered.html_body)
        shown = page.inner_text("body")
        assert "Your export is ready" in shown and "Products" in shown and "CSV.gz" in shown and "1,500 rows" in shown
        assert page.get_by_role("link", name="Open my exports").is_visible()
        screenshot(page, f"email-export-ready-{'desktop' if viewport is DESKTOP else 'phone'}")
    finally:
        page.close()
