"""
Base settings shared by every environment.

Everything that differs between machines is read from the environment; see the
configuration table in README.md. Per-environment modules (``local``, ``test``,
``production``) only override what they must.
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url
from kombu import Exchange, Queue

BASE_DIR = Path(__file__).resolve().parent.parent.parent


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise RuntimeError(f"Environment variable {name} must be an integer, got {raw!r}") from exc


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


# ---------------------------------------------------------------------------
# Core
# ---------------------------------------------------------------------------
INSECURE_DEFAULT_SECRET_KEY = "django-insecure-dev-only-change-me"
SECRET_KEY = os.environ.get("SECRET_KEY", INSECURE_DEFAULT_SECRET_KEY)
DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_celery_beat",
    "django_celery_results",
    "jobs",
    "exports",
    "sync",
    "emails",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "jobs.metrics_middleware.ApiMetricsMiddleware",
    "jobs.middleware.CorrelationIdMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# ---------------------------------------------------------------------------
# Database: DATABASE_URL (PostgreSQL in production and CI), SQLite by default.
# ---------------------------------------------------------------------------
DEFAULT_SQLITE_PATH = BASE_DIR / "var" / "db.sqlite3"
DATABASE_URL = os.environ.get("DATABASE_URL", "")
# Workers keep their connection between tasks (see CELERY_DB_REUSE_MAX below);
# the web process keeps it for a minute.
CONN_MAX_AGE = env_int("CONN_MAX_AGE", 60)

DATABASES = {
    "default": dj_database_url.parse(
        DATABASE_URL or f"sqlite:///{DEFAULT_SQLITE_PATH}", conn_max_age=CONN_MAX_AGE, conn_health_checks=True
    )
}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    Path(DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    DATABASES["default"]["OPTIONS"] = {
        # Several processes (web, worker, beat) share one file: WAL lets readers run
        # beside one writer, IMMEDIATE takes the write lock at BEGIN so concurrent
        # writers wait on the busy timeout instead of failing with "database is locked".
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = os.environ.get("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "var" / "static"
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", BASE_DIR / "var" / "media"))

# ---------------------------------------------------------------------------
# Redis: broker, locks, rate limits. REDIS_URL is required by every process;
# `make run` / `make test` start an embedded redis-server when it is unset.
# ---------------------------------------------------------------------------
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")

# ---------------------------------------------------------------------------
# Celery
# ---------------------------------------------------------------------------
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", REDIS_URL)
CELERY_RESULT_BACKEND = "django-db"
CELERY_RESULT_EXTENDED = True
CELERY_CACHE_BACKEND = "django-cache"
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = TIME_ZONE
CELERY_ENABLE_UTC = True

# One queue per workload domain, so a flood of exports cannot starve emails.
CELERY_TASK_DEFAULT_QUEUE = "default"
JOB_QUEUES = ("default", "emails", "exports", "sync")
CELERY_TASK_QUEUES = tuple(Queue(name, Exchange(name), routing_key=name) for name in JOB_QUEUES)
# Routing by task name prefix: each domain app's tasks go to its queue.
CELERY_TASK_ROUTES = {
    "emails.*": {"queue": "emails"},
    "exports.*": {"queue": "exports"},
    "sync.*": {"queue": "sync"},
    "jobs.*": {"queue": "default"},
}

# At-least-once: a message is acknowledged after the task ran, and a task whose
# worker process died is re-queued rather than lost. Tasks must be idempotent.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# With acks_late, prefetching many messages only hides them from idle workers.
CELERY_WORKER_PREFETCH_MULTIPLIER = env_int("CELERY_WORKER_PREFETCH_MULTIPLIER", 1)
# Redis redelivers an unacknowledged message after this many seconds. It must be
# longer than the longest task (plus any countdown/ETA), or a long task runs twice.
CELERY_BROKER_VISIBILITY_TIMEOUT = env_int("CELERY_BROKER_VISIBILITY_TIMEOUT", 3600)
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": CELERY_BROKER_VISIBILITY_TIMEOUT}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Publishing from a web request must fail fast when Redis is down (the job row is
# kept and re-published later by the relay), not hang the request.
CELERY_BROKER_CONNECTION_TIMEOUT = env_int("CELERY_BROKER_CONNECTION_TIMEOUT", 2)
CELERY_TASK_PUBLISH_RETRY = False
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 30 * 60)
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 25 * 60)
CELERY_WORKER_SEND_TASK_EVENTS = True
CELERY_TASK_SEND_SENT_EVENT = True
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# Celery's Django fixup closes the DB connection around every task unless this is
# set; reusing it is what keeps tracked jobs cheap.
CELERY_DB_REUSE_MAX = env_int("CELERY_DB_REUSE_MAX", 1000)

# ---------------------------------------------------------------------------
# Jobs platform (see README "Jobs")
# ---------------------------------------------------------------------------
# Same (type, idempotency key) within this window returns the existing job.
JOBS_IDEMPOTENCY_WINDOW_SECONDS = env_int("JOBS_IDEMPOTENCY_WINDOW_SECONDS", 24 * 3600)
# Finished jobs older than this are deleted by jobs.prune_finished.
JOBS_RETENTION_DAYS = env_int("JOBS_RETENTION_DAYS", 30)
# Dead jobs (the dead-letter queue's, and replayed ones) are kept this long instead.
JOBS_DEAD_RETENTION_DAYS = env_int("JOBS_DEAD_RETENTION_DAYS", 90)
# A running job is rescued when its worker stopped answering for this long, or when
# it ran longer than its hard time limit plus this.
JOBS_ORPHAN_GRACE_SECONDS = env_int("JOBS_ORPHAN_GRACE_SECONDS", 60)
# Job types switched off by configuration (comma-separated); the admin has switches too.
JOBS_DISABLED_TYPES = env_list("JOBS_DISABLED_TYPES", [])
# Stored log lines per job attempt.
JOBS_LOG_MAX_LINES = env_int("JOBS_LOG_MAX_LINES", 200)

# The relay publishes jobs whose message never reached the broker (outage at commit
# time) every JOBS_RELAY_INTERVAL_SECONDS, leaving rows younger than the grace alone.
JOBS_RELAY_INTERVAL_SECONDS = env_int("JOBS_RELAY_INTERVAL_SECONDS", 10)
JOBS_RELAY_GRACE_SECONDS = env_int("JOBS_RELAY_GRACE_SECONDS", 10)
# A published job still not started this long after it was due is published again once its
# queue's broker list is empty (its message may be held by a killed worker until the
# visibility timeout, or lost; with messages still waiting, it is only a backlog).
JOBS_REPUBLISH_AFTER_SECONDS = env_int("JOBS_REPUBLISH_AFTER_SECONDS", 600)

# Alert thresholds of the operations overview (GET /api/ops/overview, the admin's "Jobs
# overview"). 0 switches an alert off. Outcomes are counted over the last window.
JOBS_ALERT_WINDOW_SECONDS = env_int("JOBS_ALERT_WINDOW_SECONDS", 3600)
JOBS_ALERT_DEAD_JOBS = env_int("JOBS_ALERT_DEAD_JOBS", 1)
JOBS_ALERT_OLDEST_DUE_SECONDS = env_int("JOBS_ALERT_OLDEST_DUE_SECONDS", 300)
JOBS_ALERT_SUCCESS_PERCENT = env_int("JOBS_ALERT_SUCCESS_PERCENT", 95)
# Fewer ended jobs than this in the window: too few to judge a success rate by.
JOBS_ALERT_MIN_ENDED = env_int("JOBS_ALERT_MIN_ENDED", 20)

# ---------------------------------------------------------------------------
# Metrics (see README "Metrics and alerts")
# ---------------------------------------------------------------------------
# GET /metrics answers only with "Authorization: Bearer <METRICS_TOKEN>"; unset, it answers 503.
METRICS_TOKEN = os.environ.get("METRICS_TOKEN", "")
# false: the platform records nothing (the benchmark compares both); scrapes still answer.
JOBS_METRICS_ENABLED = env_bool("JOBS_METRICS_ENABLED", True)
# A worker's main process serves its service's metrics on this port (0: off) and address.
JOBS_WORKER_METRICS_PORT = env_int("JOBS_WORKER_METRICS_PORT", 0)
JOBS_WORKER_METRICS_ADDR = os.environ.get("JOBS_WORKER_METRICS_ADDR", "0.0.0.0")
# Beat enqueues jobs.canary this often (seconds; 0: no canary schedule).
JOBS_CANARY_INTERVAL_SECONDS = env_int("JOBS_CANARY_INTERVAL_SECONDS", 300)
# The admin links a job to its task in Flower when set (e.g. https://flower.example.com).
FLOWER_URL = os.environ.get("FLOWER_URL", "").rstrip("/")

# Shared secret for POST /api/cron/<name> (external schedulers); unset: endpoint off.
CRON_SECRET = os.environ.get("CRON_SECRET", "")

# Global rate limits shared by every worker (jobs.ratelimit.RateLimiter.named(name)).
JOBS_RATE_LIMITS = {
    "supplier-api": {
        "limit": env_int("SUPPLIER_API_RATE_LIMIT", 60),
        "period": float(os.environ.get("SUPPLIER_API_RATE_PERIOD") or 60),
    },
    "cron-endpoint": {"limit": env_int("CRON_ENDPOINT_RATE_LIMIT", 30), "period": 60},
}

# Periodic work (housekeeping and domain schedules) is declared in code with
# jobs.schedules.declare and written to django-celery-beat's tables by
# `manage.py sync_schedules`; nothing goes through CELERY_BEAT_SCHEDULE, which beat
# would re-apply over operators' edits on every start.
CELERY_BEAT_SCHEDULE: dict = {}

# ---------------------------------------------------------------------------
# Product sync (sync app): the supplier API, its webhooks, freshness hooks
# ---------------------------------------------------------------------------
# The supplier's catalog API; `make run` starts the simulator here.
SUPPLIER_API_URL = os.environ.get("SUPPLIER_API_URL", "http://127.0.0.1:8100")
SUPPLIER_API_KEY = os.environ.get("SUPPLIER_API_KEY", "")
SUPPLIER_PAGE_SIZE = env_int("SUPPLIER_PAGE_SIZE", 100)
SUPPLIER_CONNECT_TIMEOUT = float(os.environ.get("SUPPLIER_CONNECT_TIMEOUT", "3"))
SUPPLIER_READ_TIMEOUT = float(os.environ.get("SUPPLIER_READ_TIMEOUT", "10"))
SUPPLIER_WEBHOOK_SECRET = os.environ.get("SUPPLIER_WEBHOOK_SECRET", "")
SUPPLIER_WEBHOOK_TOLERANCE_SECONDS = env_int("SUPPLIER_WEBHOOK_TOLERANCE_SECONDS", 300)
# How often a running sync's job looks at its pages (it is postponed in between, not sleeping).
SYNC_RUN_POLL_SECONDS = float(os.environ.get("SYNC_RUN_POLL_SECONDS", "5"))
# URLs told when product data changed (e.g. a frontend's revalidation endpoint), with a shared secret.
SYNC_FRESHNESS_HOOKS = [
    {"url": url, "secret": os.environ.get("SYNC_FRESHNESS_HOOK_SECRET", "")}
    for url in env_list("SYNC_FRESHNESS_HOOK_URLS", [])
]

# ---------------------------------------------------------------------------
# Flower
# ---------------------------------------------------------------------------
FLOWER_PORT = env_int("FLOWER_PORT", 5555)

# ---------------------------------------------------------------------------
# Logging: readable lines in development, JSON in production (LOG_FORMAT).
# ---------------------------------------------------------------------------
LOG_LEVEL = os.environ.get("LOG_LEVEL", "INFO")
LOG_FORMAT = os.environ.get("LOG_FORMAT", "text")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"job_context": {"()": "jobs.logging.JobContextFilter"}},
    "formatters": {
        "text": {"()": "jobs.logging.TextFormatter"},
        "json": {"()": "jobs.logging.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["job_context"],
        },
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "celery": {"level": LOG_LEVEL},
    },
}
