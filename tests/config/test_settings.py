"""Settings come from the environment; production refuses development defaults; Celery gets them all."""

import os
import subprocess
import sys

import pytest
from django.conf import settings

from config.celery_app import app
from tests.processes import BASE_DIR

DJANGO_SETUP = "import django\ndjango.setup()\n"


def run_python(code: str, **env: str) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter whose environment is only PATH and ``env`` (nothing leaks from the test)."""
    return subprocess.run(
        [sys.executable, "-c", code], cwd=BASE_DIR, env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


@pytest.mark.parametrize(
    "secret_key", [None, "", settings.INSECURE_DEFAULT_SECRET_KEY], ids=["unset", "empty", "development-default"]
)
def test_production_refuses_to_start_without_a_real_secret_key(tmp_path, secret_key):
    env = {"DJANGO_SETTINGS_MODULE": "config.settings.production", "DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3"}
    if secret_key is not None:
        env["SECRET_KEY"] = secret_key

    result = run_python(DJANGO_SETUP + "print('started')", **env)

    assert result.returncode != 0 and "started" not in result.stdout
    assert "ImproperlyConfigured: SECRET_KEY is unset or still the development default" in result.stderr


def test_production_starts_with_a_real_secret_key(tmp_path):
    result = run_python(
        DJANGO_SETUP + "from django.conf import settings\nprint(settings.SECRET_KEY, settings.DEBUG)",
        DJANGO_SETTINGS_MODULE="config.settings.production", SECRET_KEY="k" * 50,
        DATABASE_URL=f"sqlite:///{tmp_path}/db.sqlite3",
    )  # fmt: skip

    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ["k" * 50, "False"]


@pytest.mark.parametrize(
    "database_url, engine, name",
    [
        ("postgres://app:secret@db.example:5432/jobs", "django.db.backends.postgresql", "jobs"),
        (None, "django.db.backends.sqlite3", str(BASE_DIR / "var" / "db.sqlite3")),
    ],
    ids=["postgres", "unset-sqlite"],
)
def test_database_url_selects_the_engine(database_url, engine, name):
    env = {"DJANGO_SETTINGS_MODULE": "config.settings.local"}
    if database_url:
        env["DATABASE_URL"] = database_url
    code = (
        DJANGO_SETUP
        + "from django.db import connection as c\nprint(c.settings_dict['ENGINE'], c.settings_dict['NAME'])"
    )

    result = run_python(code, **env)

    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == [engine, name]


@pytest.mark.parametrize(
    "switch, binding",
    [(None, "server 5"), ("1", "server 5"), ("0", "client None"), ("off", "client None")],
    ids=["default", "on", "0", "off"],
)
def test_postgresql_binds_on_the_server_and_prepares_unless_switched_off(switch, binding):
    # The connection's options as psycopg gets them (Django's get_connection_params), no server needed.
    env = {"DJANGO_SETTINGS_MODULE": "config.settings.local", "DATABASE_URL": "postgres://app:secret@db.example/jobs"}
    if switch is not None:
        env["DATABASE_PREPARED_STATEMENTS"] = switch
    code = DJANGO_SETUP + "\n".join([
        "import psycopg",
        "from django.db import connection",
        "params = connection.get_connection_params()",
        "client = issubclass(params['cursor_factory'], psycopg.ClientCursor)",
        "print('client' if client else 'server', params['prepare_threshold'])",
    ])  # fmt: skip

    result = run_python(code, **env)

    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == binding


def test_sqlite_uses_wal_and_takes_the_write_lock_when_a_transaction_begins(tmp_path):
    path = tmp_path / "wal.sqlite3"
    code = DJANGO_SETUP + "\n".join([
        "import sqlite3",
        "from django.db import connection, transaction",
        "with connection.cursor() as cursor:",
        "    cursor.execute('PRAGMA journal_mode')",
        "    print(cursor.fetchone()[0])",
        "with transaction.atomic():",
        # IMMEDIATE: the write lock is held from BEGIN, before any write, so a second writer waits.
        f"    other = sqlite3.connect({str(path)!r}, timeout=0)",
        "    try:",
        "        other.execute('BEGIN IMMEDIATE')",
        "        print('unlocked')",
        "    except sqlite3.OperationalError as exc:",
        "        print(str(exc).replace(' ', '-'))",
    ])  # fmt: skip

    result = run_python(code, DJANGO_SETTINGS_MODULE="config.settings.local", DATABASE_URL=f"sqlite:///{path}")

    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ["wal", "database-is-locked"]


def test_celery_app_runs_with_the_reliability_settings():
    conf = app.conf
    assert conf.task_acks_late is True
    assert conf.task_reject_on_worker_lost is True
    assert conf.worker_prefetch_multiplier == 1
    # An unacknowledged message is redelivered after visibility_timeout: it must outlast any task.
    visibility_timeout = conf.broker_transport_options["visibility_timeout"]
    assert visibility_timeout == settings.CELERY_BROKER_VISIBILITY_TIMEOUT > conf.task_time_limit
    assert conf.result_backend == "django-db"
    assert conf.beat_scheduler == "django_celery_beat.schedulers:DatabaseScheduler"


def test_celery_app_has_one_queue_per_domain_and_routes_by_task_name():
    assert [queue.name for queue in app.conf.task_queues] == ["default", "emails", "exports", "sync", "housekeeping"]
    assert app.conf.task_default_queue == "default"
    routed = {name: app.amqp.router.route({}, name)["queue"].name for name in [
        "emails.send_welcome", "exports.build_csv", "sync.pull_supplier", "jobs.ping", "unprefixed_task",
        "jobs.relay_unpublished", "jobs.rescue_orphans", "jobs.prune_finished", "jobs.run_schedule",
    ]}  # fmt: skip
    assert routed == {
        "emails.send_welcome": "emails", "exports.build_csv": "exports", "sync.pull_supplier": "sync",
        "jobs.ping": "default", "unprefixed_task": "default",
        # Housekeeping never waits behind user jobs.
        "jobs.relay_unpublished": "housekeeping", "jobs.rescue_orphans": "housekeeping",
        "jobs.prune_finished": "housekeeping", "jobs.run_schedule": "housekeeping",
    }  # fmt: skip


def test_job_types_route_to_their_declared_queue_without_the_deprecated_task_attribute(tmp_path):
    # Celery warns that the `queue` task attribute has no effect from 6.0; job types route through task_routes.
    # A fresh interpreter, so the tasks are bound (and would warn) as a worker binds them.
    code = "\n".join([
        "import warnings",
        "warnings.simplefilter('error')",
        "import django; django.setup()",
        "from config.celery_app import app",
        "app.loader.import_default_modules()",
        "import tests.jobs.jobtypes",
        "names = ['sync.notify_freshness', 'sync.fetch_page', 'emails.export_ready', 'exports.build', 'jobs.canary']",
        "tasks = [app.tasks[name] for name in names]",
        "assert not [task.name for task in tasks if 'queue' in type(task).__dict__]",
        "print(' '.join(app.amqp.router.route({}, name)['queue'].name for name in names))",
    ])  # fmt: skip
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.test"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    # sync.notify_freshness is declared on "default": the "sync.*" prefix must not win over its declaration.
    assert result.stdout.split() == ["default", "sync", "emails", "exports", "default"]


def test_workers_reuse_their_database_connection(tmp_path):
    # Celery's Django fixup reads the literal key CELERY_DB_REUSE_MAX from app.conf when the
    # worker starts; unset, it closes the connection around every task. Build a worker
    # (without starting it) and read what the fixup got.
    code = "\n".join([
        "from celery.fixups.django import DjangoFixup",
        "from config.celery_app import app",
        "worker = app.WorkController(pool_cls='solo', concurrency=1, without_mingle=True, without_gossip=True,",
        "                            without_heartbeat=True)",
        "(fixup,) = [fixup for fixup in app._fixups if isinstance(fixup, DjangoFixup)]",
        "assert fixup.worker_fixup.worker is worker",
        "print(app.conf.get('CELERY_DB_REUSE_MAX'), fixup.worker_fixup.db_reuse_max)",
    ])  # fmt: skip
    env = {
        "DJANGO_SETTINGS_MODULE": "config.settings.local", "DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3",
        "REDIS_URL": "redis://127.0.0.1:9/0",  # never contacted: the worker is built, not started
    }  # fmt: skip

    default = run_python(code, **env)
    configured = run_python(code, **env, CELERY_DB_REUSE_MAX="7")

    assert default.returncode == 0 and configured.returncode == 0, default.stderr[-3000:] + configured.stderr[-3000:]
    in_conf, in_fixup = default.stdout.split()
    assert in_conf == in_fixup and int(in_fixup) > 0
    assert configured.stdout.split() == ["7", "7"]


def test_task_events_are_off_unless_asked_for(tmp_path):
    # Flower switches events on in the workers it sees (enable_events); nothing else reads them,
    # and sending them costs the worker's main loop three Redis PUBLISHes per task.
    code = "from config.celery_app import app\nprint(app.conf.worker_send_task_events)"
    env = {
        "DJANGO_SETTINGS_MODULE": "config.settings.local", "DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3",
        "REDIS_URL": "redis://127.0.0.1:9/0",  # never contacted
    }  # fmt: skip

    default = run_python(code, **env)
    asked = run_python(code, **env, CELERY_WORKER_SEND_TASK_EVENTS="1")

    assert (default.stdout.split(), asked.stdout.split()) == (["False"], ["True"]), default.stderr + asked.stderr
