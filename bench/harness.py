"""Shared plumbing for benchmarks: a throwaway database, worker processes, timing."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent
READY_FLAG = "BENCH_DATABASE_READY"


def ensure_bench_database(module: str, argv: list[str]) -> int | None:
    """Re-run this benchmark against a fresh database of its own, never the dev one.

    With DATABASE_URL set (PostgreSQL), a database named ``<name>_bench`` is recreated
    beside it; without it, a temporary SQLite file is used. Returns the child's exit code,
    or None when already running inside the prepared environment.
    """
    if os.environ.get(READY_FLAG) == "1":
        return None
    env = dict(os.environ)
    base_url = os.environ.get("DATABASE_URL")
    if base_url and not base_url.startswith("sqlite"):
        cfg = dj_database_url.parse(base_url)
        bench_name = f"{cfg['NAME']}_bench"
        admin_url = base_url.rsplit("/", 1)[0] + "/postgres"
        _psql(admin_url, f'DROP DATABASE IF EXISTS "{bench_name}" WITH (FORCE)')
        _psql(admin_url, f'CREATE DATABASE "{bench_name}"')
        env["DATABASE_URL"] = base_url.rsplit("/", 1)[0] + "/" + bench_name
    else:
        env["DATABASE_URL"] = f"sqlite:///{tempfile.mkdtemp(prefix='bench-')}/bench.sqlite3"
    env[READY_FLAG] = "1"
    env.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
    env["LOG_LEVEL"] = env.get("LOG_LEVEL", "WARNING")
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=BASE_DIR, env=env, check=True)
    return subprocess.run([sys.executable, "-m", "bench", module, *argv], cwd=BASE_DIR, env=env).returncode


def _psql(url: str, sql: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(sql)


def setup_django() -> None:
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
    django.setup()


def database_label() -> str:
    from django.db import connection

    return f"{connection.vendor} ({connection.settings_dict['NAME']})"
