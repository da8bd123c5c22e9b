"""compose.yaml and the Dockerfile, checked by reading them against the project (no Docker engine here).

Commands are parsed by the programs' own parsers (Celery's click CLI, gunicorn's argparse),
so a misspelt option, an unknown queue or a module that does not import fails here.
"""

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import click
import dj_database_url
import pytest
import yaml
from celery import Celery
from celery.app.utils import find_app
from celery.beat import Scheduler
from celery.bin.base import CLIContext
from celery.bin.celery import celery as celery_cli
from django.conf import settings
from django.core.handlers.wsgi import WSGIHandler
from django.core.management import get_commands
from django.urls import resolve
from django.utils.module_loading import import_string
from flower.options import options as flower_options
from gunicorn.config import Config as GunicornConfig
from kombu.utils.imports import symbol_by_name

from config.celery_app import app as project_app
from jobs.ops.health import healthz
from jobs.ops.workerprobe import expand_node_name

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "compose.yaml").read_text())
SERVICES = COMPOSE["services"]
DOCKERFILE = (ROOT / "Dockerfile").read_text() if (ROOT / "Dockerfile").exists() else ""
# One string per instruction: comments dropped, continuation lines joined.
INSTRUCTIONS = re.sub(r"\\\n", " ", re.sub(r"(?m)^\s*#.*\n", "", DOCKERFILE)).splitlines()
WORKERS = sorted(name for name in SERVICES if name.startswith("worker-"))
# Services that run the project's code once migrations are applied.
APP_SERVICES = ["web", "beat", "flower", *WORKERS]
LONG_RUNNING = APP_SERVICES  # they must receive SIGTERM themselves (exec form, no shell)

_VARIABLE = re.compile(r"\$\{(\w+)(?:(:?[-?])([^}]*))?\}")


def interpolate(text: str) -> str:
    """What compose makes of ``text`` with nothing set: defaults apply, required variables get a placeholder."""

    def value(match: re.Match) -> str:
        name, kind, rest = match.groups()
        if kind and kind.endswith("-"):
            return rest
        return f"required-{name.lower()}" if kind else ""

    return _VARIABLE.sub(value, text)


def command_of(name: str) -> list[str]:
    command = SERVICES[name]["command"]
    return [interpolate(part) for part in command] if isinstance(command, list) else interpolate(command).split()


def celery_invocation(name: str) -> tuple[Celery, str, dict]:
    """Parse ``celery -A X <subcommand> ...`` with Celery's CLI: (the app -A finds, subcommand, its parsed options)."""
    command = command_of(name)
    assert command[0] == "celery", name
    position = next(i for i, part in enumerate(command) if part in celery_cli.commands)
    subcommand = command[position]
    try:
        top = celery_cli.make_context("celery", command[1 : position + 1])
        app = find_app(top.params["app"])  # what `celery -A` itself does
        context = CLIContext(app=app, no_color=True, workdir=None)
        params = celery_cli.commands[subcommand].make_context(subcommand, command[position + 1 :], obj=context).params
    except click.ClickException as exc:
        pytest.fail(f"{name}: celery rejects {command}: {exc.format_message()}")
    return app, subcommand, params


def duration_seconds(text: str) -> float:
    """Compose durations: '31m', '1h30m', '90s'."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", text)
    assert parts and "".join(n + u for n, u in parts) == text, f"not a duration: {text!r}"
    return sum(float(number) * units[unit] for number, unit in parts)


def test_every_process_has_its_service():
    expected = {"postgres", "redis", "migrate", "web", "beat", "flower"}
    expected |= {f"worker-{queue}" for queue in ("default", "emails", "exports", "sync", "housekeeping")}
    assert expected <= set(SERVICES)


def test_every_queue_is_consumed_by_exactly_its_own_worker_service():
    consumed = {}
    for name in WORKERS:
        app, subcommand, params = celery_invocation(name)
        assert subcommand == "worker", name
        consumed[name] = list(params["queues"])
    every_queue = [queue.name for queue in project_app.conf.task_queues]
    assert sorted(queue for queues in consumed.values() for queue in queues) == sorted(every_queue)
    assert settings.HOUSEKEEPING_QUEUE in every_queue
    assert consumed == {name: [name.removeprefix("worker-")] for name in WORKERS}


@pytest.mark.parametrize("name", WORKERS)
def test_each_worker_sizes_its_pool_from_its_own_variable(name):
    queue = name.removeprefix("worker-")
    raw = SERVICES[name]["command"]
    assert re.fullmatch(rf"\$\{{WORKER_{queue.upper()}_CONCURRENCY:-[1-9]\d*\}}", raw[raw.index("--concurrency") + 1])
    assert celery_invocation(name)[2]["concurrency"] >= 1


@pytest.mark.parametrize("name", WORKERS)
def test_only_the_worker_of_short_jobs_reserves_messages_ahead(name):
    # Prefetching holds messages back from other workers: fine for short jobs, not for an export.
    prefetch, raw = celery_invocation(name)[2]["prefetch_multiplier"], SERVICES[name]["command"]
    if name == "worker-default":
        assert raw[raw.index("--prefetch-multiplier") + 1] == "${WORKER_DEFAULT_PREFETCH:-4}"
        assert prefetch == 4
    else:
        assert "--prefetch-multiplier" not in raw and prefetch == 1  # CELERY_WORKER_PREFETCH_MULTIPLIER's default


@pytest.mark.parametrize("name", WORKERS)
def test_workers_get_time_to_finish_their_tasks_on_warm_shutdown(name):
    # Celery's warm shutdown (SIGTERM) waits for running tasks; none runs past the hard time limit.
    assert SERVICES[name].get("stop_signal", "SIGTERM") == "SIGTERM"
    assert duration_seconds(SERVICES[name]["stop_grace_period"]) > settings.CELERY_TASK_TIME_LIMIT


@pytest.mark.parametrize("name", [name for name in SERVICES if SERVICES[name].get("command", [""])[0] == "celery"])
def test_celery_commands_load_the_project_app(name):
    app, _, _ = celery_invocation(name)
    assert isinstance(app, Celery) and app is project_app


@pytest.mark.parametrize("name", LONG_RUNNING)
def test_long_running_processes_receive_signals_directly(name):
    # A shell in between would swallow the SIGTERM that starts a graceful shutdown.
    command = SERVICES[name]["command"]
    assert isinstance(command, list) and command[0] not in {"sh", "bash"}, name


def test_beat_uses_the_database_scheduler():
    _, subcommand, params = celery_invocation("beat")
    assert subcommand == "beat"
    scheduler = symbol_by_name(params["scheduler"])
    assert issubclass(scheduler, Scheduler)
    assert params["scheduler"] == settings.CELERY_BEAT_SCHEDULER == "django_celery_beat.schedulers:DatabaseScheduler"


def test_flower_requires_basic_auth_from_the_environment():
    _, subcommand, params = celery_invocation("flower")
    assert subcommand == "flower"
    # Flower hands its options to tornado, which refuses names it does not define.
    given = {argument.split("=", 1)[0].lstrip("-") for argument in params["tornado_argv"]}
    assert given <= set(flower_options._options), given - set(flower_options._options)
    assert re.search(r"--basic-auth=\$\{FLOWER_BASIC_AUTH:\?", " ".join(SERVICES["flower"]["command"]))
    assert "--port=5555" in params["tornado_argv"] and any(p.endswith(":5555") for p in SERVICES["flower"]["ports"])


def test_web_serves_the_wsgi_application_with_gunicorn():
    command = command_of("web")
    assert command[0] == "gunicorn"
    try:
        options = GunicornConfig().parser().parse_args(command[1:])
    except SystemExit:
        pytest.fail(f"gunicorn rejects {command}")
    (target,) = options.args
    module, attribute = target.split(":")
    assert isinstance(import_string(f"{module}.{attribute}"), WSGIHandler)
    assert options.bind == ["0.0.0.0:8000"] and any(p.endswith(":8000") for p in SERVICES["web"]["ports"])


def test_management_commands_named_exist():
    scripts = [" ".join(command_of(name)) for name in SERVICES if "command" in SERVICES[name]] + [DOCKERFILE]
    named = {command for script in scripts for command in re.findall(r"manage\.py\s+([\w-]+)", script)}
    assert {"migrate", "collectstatic"} <= named
    assert named <= set(get_commands()), named - set(get_commands())
    migrate = " ".join(command_of("migrate"))
    assert re.search(r"manage\.py migrate --noinput", migrate)


@pytest.mark.parametrize(
    "name, probe", [("postgres", "pg_isready"), ("redis", "redis-cli ping"), ("web", "http://127.0.0.1:8000/healthz")]
)
def test_stores_and_web_have_healthchecks(name, probe):
    test = SERVICES[name]["healthcheck"]["test"]
    assert test[0] in {"CMD", "CMD-SHELL"} and probe in " ".join(test[1:])


@pytest.mark.parametrize("name", WORKERS)
def test_each_worker_is_probed_by_its_own_node_name(name):
    # The probe pings exactly the node this service starts, and fails on a lost database or broker.
    _, _, params = celery_invocation(name)
    test = SERVICES[name]["healthcheck"]["test"]
    assert test[:4] == ["CMD", "python", "manage.py", "jobs_worker_probe"] and "jobs_worker_probe" in get_commands()
    # Celery's CLI expands %h in -n; the probe expands it the same way.
    assert expand_node_name(test[test.index("--node") + 1]) == params["hostname"]
    check = SERVICES[name]["healthcheck"]
    assert duration_seconds(check["timeout"]) < duration_seconds(check["interval"])


def test_web_healthcheck_calls_the_health_view_on_an_allowed_host():
    url = re.search(r"http://([\d.]+):8000(/\w+)", " ".join(SERVICES["web"]["healthcheck"]["test"]))
    assert resolve(url.group(2)).func is healthz
    assert url.group(1) in interpolate(SERVICES["web"]["environment"]["ALLOWED_HOSTS"]).split(",")


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_services_wait_for_healthy_stores_and_finished_migrations(name):
    assert SERVICES[name]["depends_on"] == {
        "postgres": {"condition": "service_healthy"},
        "redis": {"condition": "service_healthy"},
        "migrate": {"condition": "service_completed_successfully"},
    }


def test_migrate_runs_once_after_the_stores_are_healthy():
    assert SERVICES["migrate"]["depends_on"] == {
        "postgres": {"condition": "service_healthy"},
        "redis": {"condition": "service_healthy"},
    }
    assert SERVICES["migrate"]["restart"] == "no"


@pytest.mark.parametrize("name", ["migrate", *APP_SERVICES])
def test_app_services_point_production_settings_at_the_compose_stores(name):
    env = SERVICES[name]["environment"]
    assert env["DJANGO_SETTINGS_MODULE"] == "config.settings.production"
    assert re.fullmatch(r"\$\{SECRET_KEY:\?[^}]+\}", env["SECRET_KEY"])
    assert interpolate(env["ALLOWED_HOSTS"])
    database = dj_database_url.parse(interpolate(env["DATABASE_URL"]))
    postgres = {key: interpolate(value) for key, value in SERVICES["postgres"]["environment"].items()}
    assert (database["ENGINE"], database["HOST"], database["NAME"], database["USER"], database["PASSWORD"]) == (
        "django.db.backends.postgresql", "postgres", postgres["POSTGRES_DB"], postgres["POSTGRES_USER"],
        postgres["POSTGRES_PASSWORD"],
    )  # fmt: skip
    assert re.fullmatch(r"redis://redis:6379/\d+", interpolate(env["REDIS_URL"]))


def test_production_settings_read_the_compose_environment():
    # The variable names must be the ones settings read: start Django with exactly this environment.
    env = {key: interpolate(str(value)) for key, value in SERVICES["web"]["environment"].items()}
    code = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.DATABASES['default']['HOST'], s.CELERY_BROKER_URL, s.REDIS_URL, ','.join(s.ALLOWED_HOSTS))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    host, broker, redis_url, allowed = result.stdout.split()
    assert (host, broker, redis_url) == ("postgres", env["REDIS_URL"], env["REDIS_URL"])
    assert allowed == env["ALLOWED_HOSTS"]


def test_redis_keeps_the_queue_on_disk():
    command = command_of("redis")
    assert command[command.index("--appendonly") + 1] == "yes"
    assert any(volume.endswith(":/data") for volume in SERVICES["redis"]["volumes"])
    assert any(volume.endswith(":/var/lib/postgresql/data") for volume in SERVICES["postgres"]["volumes"])


@pytest.mark.parametrize("name", ["migrate", *APP_SERVICES])
def test_app_services_are_built_from_the_dockerfile(name):
    build = SERVICES[name]["build"]
    assert (ROOT / build["context"] / build.get("dockerfile", "Dockerfile")).resolve() == ROOT / "Dockerfile"
    assert DOCKERFILE, "Dockerfile is missing"


def test_dockerfile_copies_what_the_image_needs_and_nothing_local():
    copied = {source.rstrip("/") for line in INSTRUCTIONS if line.startswith("COPY ") for source in line.split()[1:-1]}
    local_apps = {app for app in settings.INSTALLED_APPS if (ROOT / app).is_dir()}
    readme = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["readme"]  # `pip install .` needs it
    needed = {"config", "templates", "manage.py", "pyproject.toml", readme, *local_apps}
    assert needed <= copied, needed - copied
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines() if line.strip()}
    assert {"var", ".env", ".venv", ".git"} <= ignored and not ignored & copied


def test_dockerfile_builds_a_non_root_image_with_static_files():
    assert [line.split()[1] for line in INSTRUCTIONS if line.startswith("FROM ")] == ["python:3.11-slim"]
    # The image installs the hashed production lock, then the project without resolving anything again.
    (install,) = [line for line in INSTRUCTIONS if line.startswith("RUN ") and "pip install" in line]
    assert re.search(r"\bpip install --require-hashes -r requirements/app\.txt\b", install)
    assert re.search(r"\bpip install --no-deps --no-build-isolation \.(\s|$)", install)
    assert "requirements/app.txt" in {
        source for line in INSTRUCTIONS if line.startswith("COPY ") for source in line.split()[1:-1]
    }
    users = [line.split()[1] for line in INSTRUCTIONS if line.startswith("USER ")]
    assert users and users[-1].split(":")[0] not in {"root", "0"}
    # Production settings refuse the development key, so collectstatic needs a build-only one.
    (collectstatic,) = [line for line in INSTRUCTIONS if line.startswith("RUN ") and "collectstatic" in line]
    key = re.search(r"SECRET_KEY=(\S+)", collectstatic)
    assert key and key.group(1) != settings.INSECURE_DEFAULT_SECRET_KEY
    assert "DJANGO_SETTINGS_MODULE=config.settings.production" in collectstatic


# Variables whose default only suits a developer machine, or that switch a feature on per deployment:
# compose must pass each to the app services (an empty value then switches the feature off on purpose).
DEPLOYMENT_VARIABLES = {
    "SECRET_KEY", "DATABASE_URL", "REDIS_URL", "ALLOWED_HOSTS", "CSRF_TRUSTED_ORIGINS", "CRON_SECRET",
    "SUPPLIER_API_URL", "SUPPLIER_API_KEY", "SUPPLIER_WEBHOOK_SECRET", "SYNC_FRESHNESS_HOOK_URLS",
    "SYNC_FRESHNESS_HOOK_SECRET", "CORS_ALLOWED_ORIGINS", "CORS_ALLOW_CREDENTIALS", "TRUST_PROXY_HEADERS",
}  # fmt: skip
_ENV_READ = re.compile(r'(?:os\.environ\.get|env_int|env_bool|env_list)\(\s*"([A-Z][A-Z0-9_]*)"\s*(,|\)\s*or\b|\))')
_ENV_INDEXED = re.compile(r'os\.environ\[\s*"([A-Z][A-Z0-9_]*)"\s*\]')


def _production_reads() -> dict[str, bool]:
    """Every variable the production settings read (base included), and whether the read has a default."""
    reads: dict[str, bool] = {}
    for module in ("base.py", "production.py"):
        text = (ROOT / "config" / "settings" / module).read_text()
        for name, after in _ENV_READ.findall(text):
            reads[name] = reads.get(name, True) and after != ")"  # "," or ") or <default>"
        for name in _ENV_INDEXED.findall(text):
            reads[name] = False
    return reads


@pytest.mark.parametrize("name", APP_SERVICES)
def test_every_setting_production_reads_is_defaulted_or_passed(name):
    passed = set(SERVICES[name]["environment"])
    reads = _production_reads()
    assert {"SECRET_KEY", "SUPPLIER_WEBHOOK_SECRET", "TRUST_PROXY_HEADERS"} <= set(reads)  # the scan finds reads
    assert not [var for var, defaulted in reads.items() if not defaulted and var not in passed]
    assert not DEPLOYMENT_VARIABLES - passed, "compose must pass these (the defaults suit a developer machine only)"
    # Read outside the settings: Django's and prometheus_client's own variables (jobs.foundation.metrics, config/gunicorn.py).
    read_elsewhere = {"DJANGO_SETTINGS_MODULE", "PROMETHEUS_MULTIPROC_DIR"}
    assert not passed - set(reads) - read_elsewhere, "compose passes a variable no setting reads"


def test_proxy_headers_are_believed_only_when_the_setting_says_so():
    code = "import django; django.setup(); from django.conf import settings as s; print(s.SECURE_PROXY_SSL_HEADER)"
    env = {"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "config.settings.production", "SECRET_KEY": "x" * 50}
    outputs = [
        subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**env, **extra}, capture_output=True, text=True,
                       timeout=120).stdout.strip()
        for extra in ({}, {"TRUST_PROXY_HEADERS": "true"})
    ]  # fmt: skip
    assert outputs == ["None", "('HTTP_X_FORWARDED_PROTO', 'https')"]


def test_flower_is_published_on_loopback_unless_told_otherwise():
    (port,) = SERVICES["flower"]["ports"]
    assert interpolate(port).startswith("127.0.0.1:")


@pytest.mark.parametrize("name", APP_SERVICES)
def test_metrics_files_are_written_to_memory_not_the_container_disk(name):
    # Every request and job writes them: memory, not the container's overlay filesystem (config/gunicorn.py).
    environment = SERVICES[name]["environment"]
    assert environment["PROMETHEUS_MULTIPROC_DIR"] in SERVICES[name].get("tmpfs", []), name
