"""Issue 22, security item 3: gunicorn believes X-Forwarded-Proto only when TRUST_PROXY_HEADERS says so.

gunicorn's own default (forwarded_allow_ips "127.0.0.1,::1") let any client on the machine claim HTTPS
with a header even with TRUST_PROXY_HEADERS=false: the probe got an HSTS header and https:// URLs.
Tested under a real gunicorn with production settings, as compose runs it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request

import pytest

from tests.jobs.metrics_helpers import free_port
from tests.processes import BASE_DIR, wait_for


@pytest.fixture
def start_gunicorn(subprocess_env, tmp_path):
    started: list[subprocess.Popen] = []

    def _start(**extra_env: str) -> str:
        port = free_port()
        env = {key: value for key, value in subprocess_env.items() if key != "FORWARDED_ALLOW_IPS"}
        env.update(DJANGO_SETTINGS_MODULE="config.settings.production", SECRET_KEY="s" * 50,
                   ALLOWED_HOSTS="127.0.0.1", **extra_env)  # fmt: skip
        log_path = tmp_path / f"gunicorn-{port}.log"
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "config.wsgi:application", "--bind", f"127.0.0.1:{port}",
                 "--workers", "1", "--config", "python:config.gunicorn"],
                cwd=BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        started.append(process)

        def healthy() -> bool:
            assert process.poll() is None, log_path.read_text()[-3000:]
            try:
                return urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2).status == 200
            except OSError:
                return False

        wait_for(healthy, timeout=60, interval=0.3, message="gunicorn to answer")
        return f"http://127.0.0.1:{port}"

    yield _start
    for process in started:
        process.terminate()
        process.wait(timeout=20)


def fetch_with_spoofed_proto(url: str) -> tuple[dict[str, str], str]:
    """GET the OpenAPI document (its server URL is absolute) from 127.0.0.1, claiming HTTPS in a header."""
    request = urllib.request.Request(f"{url}/api/openapi.json", headers={"X-Forwarded-Proto": "https"})
    with urllib.request.urlopen(request, timeout=10) as response:
        headers = {name.lower(): value for name, value in response.headers.items()}
        return headers, json.load(response)["servers"][0]["url"]


def test_a_spoofed_forwarded_proto_from_loopback_is_ignored_without_trusted_proxy_headers(start_gunicorn,
                                                                                         redis_client):  # fmt: skip
    # before: strict-transport-security was sent and the server URL was https://127.0.0.1:.../api
    url = start_gunicorn(TRUST_PROXY_HEADERS="false")
    headers, server_url = fetch_with_spoofed_proto(url)
    assert "strict-transport-security" not in headers
    assert server_url == f"{url}/api"


def test_with_trusted_proxy_headers_the_forwarded_proto_is_honoured(start_gunicorn, redis_client):
    url = start_gunicorn(TRUST_PROXY_HEADERS="true")
    headers, server_url = fetch_with_spoofed_proto(url)
    assert headers["strict-transport-security"].startswith("max-age=")
    assert server_url == url.replace("http://", "https://") + "/api"


@pytest.mark.parametrize("environment, expected", [
    ({"TRUST_PROXY_HEADERS": "false"}, ""),
    ({}, ""),
    ({"TRUST_PROXY_HEADERS": "true"}, "127.0.0.1,::1"),
    ({"TRUST_PROXY_HEADERS": "true", "FORWARDED_ALLOW_IPS": "10.0.0.0/8"}, "10.0.0.0/8"),
    ({"TRUST_PROXY_HEADERS": "false", "FORWARDED_ALLOW_IPS": "10.0.0.0/8"}, ""),
])  # fmt: skip
def test_forwarded_allow_ips_follows_trust_proxy_headers(environment, expected):
    code = "import config.gunicorn as g; print(repr(g.forwarded_allow_ips))"
    env = {"PATH": "/usr/bin:/bin", **environment}
    printed = subprocess.run([sys.executable, "-c", code], cwd=BASE_DIR, env=env, capture_output=True, text=True,
                             check=True).stdout.strip()  # fmt: skip
    assert printed == repr(expected)
