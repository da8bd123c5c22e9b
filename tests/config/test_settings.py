"""Settings come from the environment; production refuses development defaults."""

import os
import subprocess
import sys

import pytest
from django.conf import settings

from config.celery_app import app
from tests.processes import BASE_DIR


def django_python(code: str, **env) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "DATABASE_URL", "DJANGO_SETTINGS_MODULE"}}
    return subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {code}"],
        cwd=BASE_DIR, env={**clean, **env}, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


@pytest.mark.parametrize("secret", [None, "django-insecure-dev-only-change-me"])
def test_production_refuses_the_default_secret_key(secret):
    env = {"DJANGO_SETTINGS_MODULE": "config.settings.production"}
    if secret:
        env["SECRET_KEY"] = secret
    result = django_python("print('started')", **env)
    assert result.returncode != 0
    assert "SECRET_KEY is unset or still the development default" in result.stderr


def test_production_starts_with_a_real_secret_key(tmp_path):
    result = django_python(
        "from django.conf import settings; print(settings.DEBUG, settings.LOG_FORMAT)",
        DJANGO_SETTINGS_MODULE="config.settings.production", SECRET_KEY="x" * 50,
        DATABASE_URL=f"sqlite:///{tmp_path}/db.sqlite3",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "json"]


def test_database_url_chooses_the_engine(tmp_path):
    code = "from django.db import connection; print(connection.vendor)"
    postgres = django_python(code, DJANGO_SETTINGS_MODULE="config.settings.local",
                             DATABASE_URL="postgres://u:p@db.example:5432/app")  # fmt: skip
    sqlite = django_python(code, DJANGO_SETTINGS_MODULE="config.settings.local",
                           DATABASE_URL=f"sqlite:///{tmp_path}/x.sqlite3")  # fmt: skip
    assert (postgres.stdout.strip(), sqlite.stdout.strip()) == ("postgresql", "sqlite")


def test_sqlite_runs_in_wal_mode(tmp_path):
    result = django_python(
        "from django.db import connection; c = connection.cursor(); c.execute('PRAGMA journal_mode'); print(c.fetchone()[0])",
        DJANGO_SETTINGS_MODULE="config.settings.local", DATABASE_URL=f"sqlite:///{tmp_path}/wal.sqlite3",
    )  # fmt: skip
    assert result.stdout.strip() == "wal", result.stderr


def test_celery_settings_in_effect():
    conf = app.conf
    assert conf.task_acks_late is True and conf.task_reject_on_worker_lost is True
    assert conf.worker_prefetch_multiplier == 1
    assert conf.broker_transport_options["visibility_timeout"] == settings.CELERY_BROKER_VISIBILITY_TIMEOUT
    assert [queue.name for queue in conf.task_queues] == ["default", "emails", "exports", "sync"]
    assert conf.task_routes["exports.*"] == {"queue": "exports"} and conf.task_routes["emails.*"] == {"queue": "emails"}
    assert conf.result_backend == "django-db"
    assert conf.beat_scheduler == "django_celery_beat.schedulers:DatabaseScheduler"
    # Celery's Django fixup reads this literal key; without it every task reconnects.
    assert conf.get("CELERY_DB_REUSE_MAX") == settings.CELERY_DB_REUSE_MAX > 0
