"""Real peers the tests drive (Chromium, promtool/Prometheus, an SMTP server, an S3 server).

A test that needs a peer calls ``require_peer``: on a developer's machine without it the
test is skipped with a message naming what to install; under CI (``JOBPLATFORM_REQUIRE_PEERS=1``,
set by ``.ci/run``) a missing peer fails the test instead, so CI can never pass by skipping.
"""

from __future__ import annotations

import importlib.util
import os
import shutil

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def require_peer(available: bool, *, what: str, install: str) -> None:
    """Skip (developer machine) or fail (CI) unless ``available``."""
    if available:
        return
    message = f"{what} is not available; install it with: {install}"
    if os.environ.get("JOBPLATFORM_REQUIRE_PEERS") == "1":
        pytest.fail(f"{message} (CI requires every peer; a skip would hide this)")
    pytest.skip(message)


def require_executable(name: str, *, debian_package: str) -> str:
    path = shutil.which(name)
    require_peer(path is not None, what=f"`{name}`", install=f"apt-get install -y {debian_package}")
    assert path is not None
    return path


def require_module(module: str, *, pypi_package: str) -> None:
    require_peer(
        importlib.util.find_spec(module) is not None,
        what=f"Python module `{module}`",
        install=f"pip install {pypi_package}",
    )


def require_writable_directory(path: str, *, what: str, install: str) -> None:
    """Skip (developer machine) or fail (CI) unless this process may write in ``path``."""
    require_peer(os.access(path, os.W_OK), what=what, install=install)
