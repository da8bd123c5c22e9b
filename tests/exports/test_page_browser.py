"""The exports page in a real headless Chromium: log in, request, watch the bar move, download the file."""

from __future__ import annotations

import csv
import io

import pytest

from exports.models import Export
from tests.browser import DESKTOP, PHONE, screenshot

pytestmark = pytest.mark.worker


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_request_watch_and_download_in_chromium(browser, live_server, exports_worker, alice, viewport):
    exports_worker()
    name = "desktop" if viewport is DESKTOP else "phone"
    context = browser.new_context(viewport=viewport, accept_downloads=True)
    page = context.new_page()
    try:
        page.goto(f"{live_server.url}/exports/")
        page.wait_for_url("**/exports/login/**")
        screenshot(page, f"exports-login-{name}")
        page.fill("#id_username", "alice")
        page.fill("#id_password", "pw")
        page.click("button[type=submit]")
        page.wait_for_url(f"{live_server.url}/exports/")
        page.select_option("#source", "slow")
        page.fill("#filter-rows", "4000")
        page.select_option("#format", "csv")
        page.check("#bom")
        screenshot(page, f"exports-form-{name}")

        page.click("#submit")
        # The bar moves: a value strictly between 0 and 100 while the worker writes rows.
        moving = "() => { const v = document.getElementById('current-bar').value; return v > 0 && v < 100; }"
        page.wait_for_function(moving, timeout=60_000)
        screenshot(page, f"exports-progress-{name}")
        page.wait_for_selector("#current-download:not([hidden])", timeout=90_000)
        page.wait_for_selector("#recent a:text('Download')", timeout=10_000)
        screenshot(page, f"exports-ready-{name}")

        with page.expect_download() as download_info:
            page.click("#current-download")
        download = download_info.value
        export = Export.objects.get(owner=alice)
        assert download.suggested_filename == export.file_name
        with open(download.path(), "rb") as handle:
            data = handle.read()
        assert data.startswith(b"\xef\xbb\xbfn,label,at\r\n")
        rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))
        assert len(rows) == 4001 and rows[8] == ["7", "'=formula 7", "2026-03-01T00:00:00+00:00"]
    finally:
        context.close()


def test_failed_request_shows_a_clear_error(browser, live_server, alice, settings, redis_client):
    settings.EXPORTS_MAX_ACTIVE_PER_USER = 0
    context = browser.new_context(viewport=PHONE)
    page = context.new_page()
    try:
        page.goto(f"{live_server.url}/exports/login/")
        page.fill("#id_username", "alice")
        page.fill("#id_password", "pw")
        page.click("button[type=submit]")
        page.wait_for_url(f"{live_server.url}/exports/")
        page.click("#submit")
        page.wait_for_selector("#form-error:not([hidden])")
        assert "limit 0" in page.inner_text("#form-error") and "in about 30s" in page.inner_text("#form-error")
        screenshot(page, "exports-error-phone")
    finally:
        context.close()


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_admin_lists_exports_and_reruns_one(browser, live_server, alice, media_root, redis_client, viewport,
                                            django_user_model):  # fmt: skip
    from exports.services import ExportRequest, export_build, export_create
    from tests.browser import admin_login
    from tests.exports.conftest import make_products

    django_user_model.objects.create_superuser("root", "root@example.com", "pw-for-tests-only")
    make_products(30)
    ready, _ = export_create(owner=alice, wanted=ExportRequest(source="products", format="xlsx", filters={}))
    export_build(export_id=ready.pk, job_id=ready.job_id, progress=lambda *a, **k: None)
    export_create(owner=alice, wanted=ExportRequest(source="jobs", format="csv", filters={}))
    name = "desktop" if viewport is DESKTOP else "phone"
    page = browser.new_page(viewport=viewport)
    try:
        admin_login(page, live_server.url, username="root", password="pw-for-tests-only")
        page.goto(f"{live_server.url}/admin/exports/export/")
        body = page.inner_text("#result_list")
        assert "alice" in body and "products" in body and "Ready to download" in body and "KB" in body
        screenshot(page, f"exports-admin-list-{name}")

        page.check(f"input[name=_selected_action][value='{ready.pk}']")
        page.select_option("select[name=action]", "rerun")
        page.click("button[name=index]")
        page.wait_for_selector("text=Re-run: 1 export(s)")
        screenshot(page, f"exports-admin-confirm-{name}")
        page.click("input[type=submit][value^='Yes']")
        page.wait_for_selector("text=Re-run: 1 export(s).")
        rerun = Export.objects.get(rerun_of=ready)
        assert (rerun.owner_id, rerun.source, rerun.format, rerun.status) == (alice.pk, "products", "xlsx", "queued")
    finally:
        page.close()


# Every time the table is redrawn, what its row for the watched export says next to what the panel says.
RECORD_TABLE_AND_PANEL = """() => {
  window.seen = [];
  new MutationObserver(() => {
    const badge = document.querySelector("#recent tr:first-child [data-label=State]");
    if (badge && !document.getElementById("current").hidden) {
      window.seen.push({table: badge.innerText.trim(), panel: document.getElementById("current-label").innerText});
    }
  }).observe(document.getElementById("recent"), {childList: true, subtree: true, characterData: true});
}"""


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_a_queued_export_says_it_waits_and_the_panel_and_table_agree_on_its_number_and_state(
    browser, live_server, exports_worker, alice, bob, viewport
):
    # Another user's exports come first: their ids must not show through in alice's numbers.
    for _ in range(2):
        Export.objects.create(owner=bob, source="products", format="csv", status=Export.Status.FAILED)
    name = "desktop" if viewport is DESKTOP else "phone"
    context = browser.new_context(viewport=viewport)
    page = context.new_page()
    errors: list[str] = []
    # The browser's own favicon request is not the page's doing.
    page.on("console", lambda message: errors.append(message.text) if message.type == "error"
            and not message.location["url"].endswith("/favicon.ico") else None)  # fmt: skip
    try:
        page.goto(f"{live_server.url}/exports/login/")
        page.fill("#id_username", "alice")
        page.fill("#id_password", "pw")
        page.click("button[type=submit]")
        page.wait_for_url(f"{live_server.url}/exports/")
        page.evaluate(RECORD_TABLE_AND_PANEL)
        page.select_option("#source", "slow")
        page.fill("#filter-rows", "1500")
        page.select_option("#format", "csv")
        page.click("#submit")

        # No worker yet: it waits, and says so (not "0 of about 0 rows").
        page.wait_for_selector("#recent [data-label=State]:has-text('Queued')")
        page.wait_for_selector("#current:not([hidden])")
        panel = page.inner_text("#current")
        assert "0 of about 0" not in panel and "Waiting for a worker" in panel, panel
        assert page.inner_text("#current-label").startswith("Export #1 ")
        assert page.inner_text("#recent tr:first-child [data-label='#']") == "1"
        screenshot(page, f"exports-queued-{name}")

        exports_worker()
        page.wait_for_selector("#current-download:not([hidden])", timeout=90_000)
        page.wait_for_selector("#recent a:text('Download')", timeout=10_000)
        screenshot(page, f"exports-ready-numbered-{name}")
        seen = page.evaluate("window.seen")
        assert any(s["table"].startswith("Running") for s in seen), seen
        disagreeing = [s for s in seen if not s["panel"].endswith(s["table"])]
        assert not disagreeing, disagreeing
        assert not errors, errors
    finally:
        context.close()
