"""Headless Chromium (Debian's package) driven by Playwright for Python, for pages people look at.

Use the ``browser`` fixture (every test module has it, through ``tests/conftest.py``). Screenshots go to
``var/screenshots/`` (git ignores ``var/``); open them yourself before calling a page done.
Never run ``playwright install``: it downloads a browser, which this project does not do.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.peers import CHROMIUM, CHROMIUM_ARGS, require_executable, require_module

SCREENSHOT_DIR = Path(__file__).resolve().parent.parent / "var" / "screenshots"
DESKTOP = {"width": 1440, "height": 900}
PHONE = {"width": 390, "height": 844}


# One Playwright and one Chromium per test process. Each module importing the fixture gets a
# fixture of its own (pytest keys them by module), and a second sync_playwright() in the same
# session fails ("Sync API inside the asyncio loop"): they all share this, the last one closes it.
_shared: dict[str, object] = {}
_users: list[int] = [0]

# Lets this process' ORM calls through while Playwright's event loop runs on its thread (see ``browser``).
ASYNC_UNSAFE = "DJANGO_ALLOW_ASYNC_UNSAFE"


@contextmanager
def async_unsafe_allowed() -> Iterator[None]:
    """Django's async-safety check off in this process for the block only; the environment as it was after.

    Never for the processes tests start (workers, gunicorn): ``subprocess_env`` leaves it out, so their
    check stays on.
    """
    previous = os.environ.get(ASYNC_UNSAFE)
    os.environ[ASYNC_UNSAFE] = "true"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(ASYNC_UNSAFE, None)
        else:
            os.environ[ASYNC_UNSAFE] = previous


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    """One Chromium for the whole run. Registered once for every module by ``tests/conftest.py``
    (``pytest_plugins``): never import it into a test module, or that module gets a second
    Playwright, which its sync API refuses while one runs ("Sync API inside the asyncio loop")."""
    require_module("playwright", pypi_package="playwright")
    require_executable(os.path.basename(CHROMIUM), debian_package="chromium")
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop running on this thread while it runs, which makes Django
    # refuse ORM calls from the test body ("async context"); the test itself is synchronous.
    with async_unsafe_allowed(), sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield instance
        finally:
            instance.close()


def screenshot(page, name: str) -> Path:
    """Save a full-page screenshot as var/screenshots/<name>.png and return its path."""
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOT_DIR / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def admin_login(page, live_server_url: str, *, username: str, password: str) -> None:
    """Log in through the real admin login form; fail the test at once, saying why, if that did not log in.

    Landing back on the login page is a failure (a wrong password, a throttled login answered 429), not a
    success: the test would otherwise go on logged out and fail later, somewhere that says nothing of it.
    """
    page.goto(f"{live_server_url}/admin/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    with page.expect_navigation(wait_until="domcontentloaded") as navigation:
        page.click("input[type=submit]")
    response = navigation.value
    if urlsplit(page.url).path.startswith("/admin/login/"):
        said = page.locator(".errornote, .errorlist, #content h1, #content p").all_inner_texts()
        status = response.status if response is not None else "no response"
        pytest.fail(
            f"admin login as {username!r} failed: the login page came back (HTTP {status}): "
            f"{' / '.join(text.strip() for text in said if text.strip()) or 'no message'}",
            pytrace=False,
        )
