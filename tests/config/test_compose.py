"""compose.yaml is for users (no Docker engine here): check it by reading it against the project."""

import importlib
import re
from pathlib import Path

import pytest
import yaml
from celery import Celery
from django.conf import settings
from django.core.management import get_commands
from django.utils.module_loading import import_string

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "compose.yaml").read_text())
SERVICES = COMPOSE["services"]
WORKERS = {name: spec for name, spec in SERVICES.items() if name.startswith("worker-")}


def command_of(name: str) -> list[str]:
    command = SERVICES[name]["command"]
    return command if isinstance(command, list) else command.split()


def option(command: list[str], flag: str) -> str:
    return command[command.index(flag) + 1]


def test_every_process_has_its_service():
    assert {"postgres", "redis", "migrate", "web", "beat", "flower"} <= set(SERVICES)
    assert set(WORKERS) == {f"worker-{queue}" for queue in settings.JOB_QUEUES}


@pytest.mark.parametrize("name", sorted(WORKERS))
def test_each_worker_consumes_its_own_queue_with_its_own_concurrency(name):
    command = command_of(name)
    queue = name.removeprefix("worker-")
    assert command[:4] == ["celery", "-A", "config", "worker"]
    assert option(command, "-Q") == queue and queue in settings.JOB_QUEUES
    assert re.fullmatch(rf"\$\{{WORKER_{queue.upper()}_CONCURRENCY:-\d+\}}", option(command, "--concurrency"))
    assert WORKERS[name]["stop_grace_period"]


@pytest.mark.parametrize("name", ["worker-default", "beat", "flower"])
def test_celery_app_named_by_commands_is_a_celery_app(name):
    command = command_of(name)
    module = importlib.import_module(option(command, "-A"))
    assert isinstance(module.celery_app, Celery)


def test_beat_uses_the_database_scheduler():
    scheduler = option(command_of("beat"), "-S")
    assert scheduler == settings.CELERY_BEAT_SCHEDULER
    assert import_string(scheduler.replace(":", "."))


def test_web_runs_the_wsgi_application_with_a_health_check():
    command = command_of("web")
    module_name, attribute = command[1].split(":")
    assert command[0] == "gunicorn" and callable(getattr(importlib.import_module(module_name), attribute))
    assert "/healthz" in " ".join(SERVICES["web"]["healthcheck"]["test"])


def test_migrate_runs_commands_that_exist():
    script = " ".join(command_of("migrate"))
    named = re.findall(r"manage\.py (\w+)", script)
    assert named == ["migrate", "sync_schedules"]
    assert all(name in get_commands() for name in named)


def test_services_wait_for_healthy_dependencies():
    for name in ("web", "beat", "flower", *WORKERS):
        depends = SERVICES[name]["depends_on"]
        assert depends["postgres"]["condition"] == "service_healthy", name
        assert depends["redis"]["condition"] == "service_healthy", name
        assert depends["migrate"]["condition"] == "service_completed_successfully", name
    for name in ("postgres", "redis", "web"):
        assert SERVICES[name]["healthcheck"]["test"], name


def test_redis_persists_the_queue():
    assert "--appendonly" in SERVICES["redis"]["command"]
    assert SERVICES["redis"]["command"][SERVICES["redis"]["command"].index("--appendonly") + 1] == "yes"


def test_secrets_come_from_the_environment():
    env = SERVICES["web"]["environment"]
    assert env["SECRET_KEY"].startswith("${SECRET_KEY:?")
    assert env["DJANGO_SETTINGS_MODULE"] == "config.settings.production"
    assert "--basic-auth=${FLOWER_BASIC_AUTH:?" in " ".join(command_of("flower"))


def test_image_is_built_from_the_dockerfile_with_every_app():
    build = SERVICES["web"]["build"]
    dockerfile = (ROOT / build["context"] / build["dockerfile"]).read_text()
    for app in ("config", "jobs", "exports", "sync", "emails", "templates"):
        assert f"COPY {app} ./{app}" in dockerfile
