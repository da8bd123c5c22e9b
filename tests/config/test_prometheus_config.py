"""compose.yaml's metrics wiring: Prometheus' config passes promtool and scrapes every service that exports."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import yaml

from tests.config.test_compose import SERVICES, WORKERS, command_of, interpolate
from tests.peers import require_executable

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "config" / "prometheus" / "prometheus.yml"


def test_prometheus_config_passes_promtool(tmp_path):
    promtool = require_executable("promtool", debian_package="prometheus")
    # The secrets the service writes at start, and the rules file where the service mounts it.
    text = (
        CONFIG.read_text()
        .replace("/prometheus/secrets/", f"{tmp_path}/")
        .replace("/etc/prometheus/alerts.yml", str(ROOT / "config" / "prometheus" / "alerts.yml"))
    )
    (tmp_path / "metrics_token").write_text("token")
    (tmp_path / "flower_password").write_text("password")
    (tmp_path / "prometheus.yml").write_text(text)
    result = subprocess.run([promtool, "check", "config", str(tmp_path / "prometheus.yml")], capture_output=True,
                            text=True, timeout=60)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 8 rules found" in result.stdout


def test_prometheus_scrapes_web_every_worker_and_flower():
    config = yaml.safe_load(CONFIG.read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    targets = {name: [t for group in job["static_configs"] for t in group["targets"]] for name, job in jobs.items()}
    port = interpolate(str(SERVICES["web"]["environment"]["JOBS_WORKER_METRICS_PORT"]))
    assert targets["jobplatform-workers"] == [f"{name}:{port}" for name in WORKERS]
    assert targets["jobplatform-web"] == ["web:8000"] and jobs["jobplatform-web"].get("metrics_path", "/metrics")
    assert jobs["jobplatform-web"]["authorization"]["credentials_file"] == "/prometheus/secrets/metrics_token"
    assert targets["flower"] == ["flower:5555"] and jobs["flower"]["basic_auth"]["username"] == "prometheus"
    mounts = {volume.split(":")[1] for volume in SERVICES["prometheus"]["volumes"]}
    assert {"/etc/prometheus/prometheus.yml", "/etc/prometheus/alerts.yml", "/prometheus"} <= mounts
    script = " ".join(SERVICES["prometheus"]["command"])
    assert "/prometheus/secrets/metrics_token" in script and "/prometheus/secrets/flower_password" in script
    assert re.search(r"exec /bin/prometheus --config.file=/etc/prometheus/prometheus.yml", script)


def test_every_service_keeps_its_metrics_in_its_own_directory_and_web_needs_a_token():
    for name in ["web", *WORKERS]:
        env = SERVICES[name]["environment"]
        assert env["PROMETHEUS_MULTIPROC_DIR"].startswith("/tmp/")  # in the container, not in a shared volume
        assert re.fullmatch(r"\$\{METRICS_TOKEN:\?[^}]+\}", env["METRICS_TOKEN"])
    assert command_of("web")[-2:] == ["--config", "python:config.gunicorn"]


def test_flower_keeps_its_state_in_a_volume_and_lets_prometheus_in():
    command = " ".join(SERVICES["flower"]["command"])
    assert "--persistent=True" in command
    database = re.search(r"--db=(\S+)", command).group(1)
    assert any(database.startswith(volume.split(":")[1] + "/") for volume in SERVICES["flower"]["volumes"])
    assert re.search(r",prometheus:\$\{FLOWER_METRICS_PASSWORD:\?", command)


def test_grafana_dashboard_is_valid_json_with_prometheus_targets():
    dashboard = json.loads((ROOT / "config" / "grafana" / "jobplatform-dashboard.json").read_text())
    assert dashboard["panels"] and all(panel["targets"] for panel in dashboard["panels"])
    assert all(target["datasource"]["type"] == "prometheus" for p in dashboard["panels"] for target in p["targets"])
