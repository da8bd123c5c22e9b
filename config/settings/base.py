"""
Base settings shared by every environment.

Everything that differs between machines is read from the environment; see the
configuration reference in docs/configuration.md. Per-environment modules (``local``, ``test``,
``production``) only override what they must.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import dj_database_url
from kombu.entity import Exchange, Queue  # where they are defined (kombu re-exports them lazily)

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
    # Its OpClass in index expressions: the trigram index of the admin's job search (jobs_search_trgm_idx).
    "django.contrib.postgres",
    "django_celery_beat",
    "django_celery_results",
    "corsheaders",
    "jobs",
    "exports",
    "sync",
    "emails",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "jobs.ops.metrics_middleware.ApiMetricsMiddleware",
    "jobs.api.middleware.CorrelationIdMiddleware",
    "corsheaders.middleware.CorsMiddleware",  # before CommonMiddleware, so preflights are answered
    "jobs.api.middleware.SecurityHeadersMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "jobs.api.middleware.LoginThrottleMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES: list[dict[str, Any]] = [
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
# PostgreSQL: parameters bound on the server, and a query a connection has run PREPARED_STATEMENT_THRESHOLD
# times kept prepared, so PostgreSQL stops parsing and planning the hot ones (the token lookup, the status
# poll, the claim) on every run: 0.30 -> 0.07-0.09 ms of its CPU for the token query (bench/README.md, api).
# DATABASE_PREPARED_STATEMENTS=0 goes back to Django's default, client-side binding: needed behind PgBouncer
# older than 1.21 in transaction mode (or without max_prepared_statements), which cannot route prepared
# statements to the server connection that holds them.
DATABASE_PREPARED_STATEMENTS = env_bool("DATABASE_PREPARED_STATEMENTS", True)
PREPARED_STATEMENT_THRESHOLD = 5  # psycopg's default: a query run once (an admin search) is not kept
if DATABASES["default"]["ENGINE"].endswith("postgresql") and DATABASE_PREPARED_STATEMENTS:
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        server_side_binding=True, prepare_threshold=PREPARED_STATEMENT_THRESHOLD
    )
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

# Django's ModelBackend with login attempts throttled (ADMIN_LOGIN_* below): every login page goes through it.
AUTHENTICATION_BACKENDS = ["jobs.api.auth_backends.ThrottledModelBackend"]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
# Timestamps to the second (config/formats/en/formats.py).
FORMAT_MODULE_PATH = ["config.formats"]
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
# The platform's own periodic work (relay, scheduler tick, reaper, pruner, schedule triggers) has its own
# queue and worker, so it never waits behind a backlog of user jobs.
HOUSEKEEPING_QUEUE = "housekeeping"
HOUSEKEEPING_TASKS = (
    "jobs.relay_unpublished", "jobs.publish_due", "jobs.rescue_orphans", "jobs.prune_finished", "jobs.run_schedule",
)  # fmt: skip
CELERY_TASK_QUEUES = tuple(Queue(name, Exchange(name), routing_key=name) for name in (*JOB_QUEUES, HOUSEKEEPING_QUEUE))
# Routing: a job type's task goes to the queue its @job_type declares (the router asks the registry);
# the platform's own tasks by name, then by app prefix (exact names win over patterns).
CELERY_TASK_ROUTES = (
    "jobs.core.registry.route_job_type",
    {
        **{name: {"queue": HOUSEKEEPING_QUEUE} for name in HOUSEKEEPING_TASKS},
        "emails.*": {"queue": "emails"},
        "exports.*": {"queue": "exports"},
        "sync.*": {"queue": "sync"},
        "jobs.*": {"queue": "default"},
    },
)

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
# A worker or beat that lost Redis keeps trying to reach it, every 2 s at most
# (jobs/foundation/kombu_redis_fix.py), for as long as the outage lasts: Celery's default
# of 100 tries would end the process during a long outage.
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
# Publishing from a web request must fail fast when Redis is down (the job row is
# kept and re-published later by the relay), not hang the request.
CELERY_BROKER_CONNECTION_TIMEOUT = env_int("CELERY_BROKER_CONNECTION_TIMEOUT", 2)
# After a failed publish, publishing is skipped for this many seconds (the rows wait for the
# relay): a transaction with many enqueues pays one broker timeout, not one each.
JOBS_PUBLISH_BACKOFF_SECONDS = env_int("JOBS_PUBLISH_BACKOFF_SECONDS", 5)
CELERY_TASK_PUBLISH_RETRY = False
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 30 * 60)
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 25 * 60)
# Task events (received/started/succeeded, three Redis PUBLISHes per task from the worker's
# main process) feed only Flower, which switches them on in every worker it sees
# (`enable_events`), so they are off unless asked for: on, they cost a tracked no-op job
# about a third of the worker's main loop (bench/README.md, jobs_throughput).
CELERY_WORKER_SEND_TASK_EVENTS = env_bool("CELERY_WORKER_SEND_TASK_EVENTS", False)
CELERY_TASK_SEND_SENT_EVENT = True
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# Celery's Django fixup closes the DB connection around every task unless this is
# set; reusing it is what keeps tracked jobs cheap.
CELERY_DB_REUSE_MAX = env_int("CELERY_DB_REUSE_MAX", 1000)

# ---------------------------------------------------------------------------
# Jobs platform (see docs/configuration.md, "Jobs")
# ---------------------------------------------------------------------------
# Same (type, idempotency key) within this window returns the existing job.
JOBS_IDEMPOTENCY_WINDOW_SECONDS = env_int("JOBS_IDEMPOTENCY_WINDOW_SECONDS", 24 * 3600)
# Finished jobs older than this are deleted by jobs.prune_finished.
JOBS_RETENTION_DAYS = env_int("JOBS_RETENTION_DAYS", 30)
# Dead jobs (the dead-letter queue's, and replayed ones) are kept this long instead.
JOBS_DEAD_RETENTION_DAYS = env_int("JOBS_DEAD_RETENTION_DAYS", 90)
# Celery's result rows (one per attempt, linked from the job's admin page) are kept as long
# as the longest-kept job, so an attempt's link never goes blank while its job exists; beat's
# celery.backend_cleanup (daily, 04:00) deletes older ones. Celery's own default is one day.
CELERY_RESULT_EXPIRES = 24 * 3600 * max(JOBS_RETENTION_DAYS, JOBS_DEAD_RETENTION_DAYS)
# Attempt leases: a worker renews the lease of each attempt it runs every JOBS_HEARTBEAT_SECONDS
# (also during a warm shutdown); the reaper (every JOBS_REAPER_INTERVAL_SECONDS) rescues an
# attempt whose lease of JOBS_LEASE_SECONDS ran out: its worker process is gone.
JOBS_LEASE_SECONDS = env_int("JOBS_LEASE_SECONDS", 30)
JOBS_HEARTBEAT_SECONDS = env_int("JOBS_HEARTBEAT_SECONDS", 5)
JOBS_REAPER_INTERVAL_SECONDS = env_int("JOBS_REAPER_INTERVAL_SECONDS", 10)
# Only for a running job claimed before leases existed (no lease): rescued once it ran longer
# than its hard time limit plus this.
JOBS_ORPHAN_GRACE_SECONDS = env_int("JOBS_ORPHAN_GRACE_SECONDS", 60)
# A body that finished records its completion in Redis before its success write; if that write
# fails, the reaper finds it (this long) and records the job succeeded instead of running it again.
JOBS_COMPLETION_TTL_SECONDS = env_int("JOBS_COMPLETION_TTL_SECONDS", 86_400)
# With that record in Redis, a job's success commits without waiting for PostgreSQL's WAL flush
# (~3 ms a job on a plain disk); if a database crash forgets the commit, the reaper or the relay
# finishes the job from the record. Set JOBS_DURABLE_SUCCESS=1 to wait for the flush anyway (for
# example when Redis runs without persistence on the database's machine, so one power cut loses both).
JOBS_DURABLE_SUCCESS = env_bool("JOBS_DURABLE_SUCCESS", False)
# The reaper's tick deletes completion records this old whose success the database shows.
JOBS_COMPLETION_KEEP_SECONDS = env_int("JOBS_COMPLETION_KEEP_SECONDS", 60)
# Such a success is written behind: a worker process' writer thread records the successes of
# JOBS_SUCCESS_BATCH_MS (or JOBS_SUCCESS_BATCH_SIZE of them) in one statement, so a finished job
# reads `running` for up to that long. 0 writes each success before the task returns.
JOBS_SUCCESS_BATCH_MS = env_int("JOBS_SUCCESS_BATCH_MS", 20)
JOBS_SUCCESS_BATCH_SIZE = env_int("JOBS_SUCCESS_BATCH_SIZE", 100)
# Job types switched off by configuration (comma-separated); the admin has switches too.
JOBS_DISABLED_TYPES = env_list("JOBS_DISABLED_TYPES", [])
# Stored log lines per job attempt.
JOBS_LOG_MAX_LINES = env_int("JOBS_LOG_MAX_LINES", 200)

# The relay publishes jobs whose message never reached the broker (outage at commit
# time) every JOBS_RELAY_INTERVAL_SECONDS, leaving rows younger than the grace alone.
JOBS_RELAY_INTERVAL_SECONDS = env_int("JOBS_RELAY_INTERVAL_SECONDS", 10)
JOBS_RELAY_GRACE_SECONDS = env_int("JOBS_RELAY_GRACE_SECONDS", 10)
# Jobs that run later (run_at / delay) are published by the scheduler's tick on the housekeeping queue,
# every JOBS_SCHEDULER_TICK_SECONDS (whole seconds: beat's interval); between ticks it waits for the next
# due time itself. A due time more than JOBS_SCHEDULE_HORIZON_DAYS ahead is refused.
JOBS_SCHEDULER_TICK_SECONDS = env_int("JOBS_SCHEDULER_TICK_SECONDS", 1)
JOBS_SCHEDULE_HORIZON_DAYS = env_int("JOBS_SCHEDULE_HORIZON_DAYS", 365)
# A job over its type's concurrency limit waits unpublished; a freed slot publishes it at once, and should that be
# missed the relay publishes it again after JOBS_CONCURRENCY_RECHECK_SECONDS.
JOBS_CONCURRENCY_RECHECK_SECONDS = env_int("JOBS_CONCURRENCY_RECHECK_SECONDS", 30)
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
# Alert when a queue's oldest due job waited longer than this and no worker consumes the queue (0: off).
JOBS_ALERT_UNCONSUMED_SECONDS = env_int("JOBS_ALERT_UNCONSUMED_SECONDS", 60)
# Alert on running jobs whose lease ran out this long ago and the reaper did not rescue (0: off).
JOBS_ALERT_LEASE_OVERDUE_SECONDS = env_int("JOBS_ALERT_LEASE_OVERDUE_SECONDS", 60)
# Where the overview's alerts link for their runbook: docs/operations.md's page, e.g.
# https://<your git host>/<repo>/blob/main/docs/operations.md (section anchors are added). Empty: the
# admin serves the repository's docs/operations.md itself (/admin/jobs/job/runbook/).
JOBS_RUNBOOK_URL = os.environ.get("JOBS_RUNBOOK_URL", "")
# A worker process's report that it cannot reach the database counts for this long (it clears
# its own report once it reaches the database again; a killed process cannot).
JOBS_WORKER_DB_REPORT_SECONDS = env_int("JOBS_WORKER_DB_REPORT_SECONDS", 120)

# ---------------------------------------------------------------------------
# Metrics (see docs/metrics.md)
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

# Shared secret for POST /api/cron/<name> (external schedulers); unset: endpoint off.
CRON_SECRET = os.environ.get("CRON_SECRET", "")

# Global rate limits shared by every worker (jobs.coordination.ratelimit.RateLimiter.named(name)).
JOBS_RATE_LIMITS = {
    "supplier-api": {
        "limit": env_int("SUPPLIER_API_RATE_LIMIT", 60),
        "period": float(os.environ.get("SUPPLIER_API_RATE_PERIOD") or 60),
    },
    # Per caller address, checked before the secret (so guesses are throttled too).
    "cron-endpoint": {"limit": env_int("CRON_ENDPOINT_RATE_LIMIT", 30), "period": 60},
    # Every email send takes a slot (emails app); set it a few percent under the provider's own limit.
    "email-provider": {
        "limit": env_int("EMAIL_PROVIDER_RATE_LIMIT", 10),
        "period": float(os.environ.get("EMAIL_PROVIDER_RATE_PERIOD") or 1),
    },
}

# ---------------------------------------------------------------------------
# API hardening: abuse limits, tokens, CORS, proxy (see docs/api.md, "API security")
# ---------------------------------------------------------------------------
# Enqueue requests one API token (or one session user) may make per period; over it: 429 + Retry-After. 0: no limit.
JOBS_API_ENQUEUE_RATE_LIMIT = env_int("JOBS_API_ENQUEUE_RATE_LIMIT", 120)
JOBS_API_ENQUEUE_RATE_PERIOD = env_int("JOBS_API_ENQUEUE_RATE_PERIOD", 60)
# New API tokens expire after this many days unless told otherwise (0: never).
JOBS_API_TOKEN_TTL_DAYS = env_int("JOBS_API_TOKEN_TTL_DAYS", 90)
# Login attempts (any login page: the admin's, the exports page's) per username and per client address in
# ADMIN_LOGIN_WINDOW_SECONDS; more are refused (429) unchecked. Counted by the authentication backend.
ADMIN_LOGIN_MAX_ATTEMPTS_PER_USER = env_int("ADMIN_LOGIN_MAX_ATTEMPTS_PER_USER", 5)
ADMIN_LOGIN_MAX_ATTEMPTS_PER_ADDRESS = env_int("ADMIN_LOGIN_MAX_ATTEMPTS_PER_ADDRESS", 20)
ADMIN_LOGIN_WINDOW_SECONDS = env_int("ADMIN_LOGIN_WINDOW_SECONDS", 900)
# Set only when a proxy you run (TLS termination) sits in front of web and sets X-Forwarded-Proto and
# X-Forwarded-For: then those headers are believed (HTTPS detection, client address for limits).
# Left false, a client could claim HTTPS or any address by sending them itself.
TRUST_PROXY_HEADERS = env_bool("TRUST_PROXY_HEADERS", False)
if TRUST_PROXY_HEADERS:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Browser frontends on other origins (e.g. http://localhost:3000 for a Next.js dev server) may call /api/.
CORS_ALLOWED_ORIGINS = env_list("CORS_ALLOWED_ORIGINS", [])
CORS_URLS_REGEX = r"^/api/.*$"
# Cookies (the session) on cross-origin calls: only when asked for; bearer tokens need no credentials.
CORS_ALLOW_CREDENTIALS = env_bool("CORS_ALLOW_CREDENTIALS", False)
CORS_ALLOW_HEADERS = ("accept", "authorization", "content-type", "idempotency-key", "x-csrftoken", "x-request-id")
CORS_EXPOSE_HEADERS = ("Location", "Retry-After", "Idempotent-Replayed", "X-Request-ID")
# Security headers: CSP (the admin and the API docs page use only their own scripts and styles), and
# Permissions-Policy switching off browser features no page here uses.
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
CONTENT_SECURITY_POLICY = os.environ.get(
    "CONTENT_SECURITY_POLICY",
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self'; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'; object-src 'none'",
)
PERMISSIONS_POLICY = os.environ.get(
    "PERMISSIONS_POLICY", "camera=(), microphone=(), geolocation=(), payment=(), usb=(), interest-cohort=()"
)

# Periodic work (housekeeping and domain schedules) is declared in code with
# jobs.delivery.schedules.declare and written to django-celery-beat's tables by
# `manage.py sync_schedules`; nothing goes through CELERY_BEAT_SCHEDULE, which beat
# would re-apply over operators' edits on every start.
CELERY_BEAT_SCHEDULE: dict[str, Any] = {}

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
# Product ids one webhook event may carry (more is refused with 422); a job, not the request, fans them out.
SUPPLIER_WEBHOOK_MAX_PRODUCT_IDS = env_int("SUPPLIER_WEBHOOK_MAX_PRODUCT_IDS", 1000)
# How often a running sync's job looks at its pages (it is postponed in between, not sleeping).
SYNC_RUN_POLL_SECONDS = float(os.environ.get("SYNC_RUN_POLL_SECONDS", "5"))
# URLs told when product data changed (e.g. a frontend's revalidation endpoint), with a shared secret.
SYNC_FRESHNESS_HOOKS = [
    {"url": url, "secret": os.environ.get("SYNC_FRESHNESS_HOOK_SECRET", "")}
    for url in env_list("SYNC_FRESHNESS_HOOK_URLS", [])
]

# ---------------------------------------------------------------------------
# Emails (emails app): Django's SMTP backend, the outbox, the operators' digest
# ---------------------------------------------------------------------------
# Django's SMTP backend with a transcript of each conversation; `make run` points it at a local
# catcher when EMAIL_HOST is unset.
EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND", "emails.client.RecordingSmtpBackend")
EMAIL_HOST = os.environ.get("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", False)
# Seconds per socket operation (connect, each reply): a server that never answers is a retry, not a hang.
EMAIL_TIMEOUT = float(os.environ.get("EMAIL_TIMEOUT") or 10)
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "jobplatform <noreply@jobplatform.localhost>")
SERVER_EMAIL = os.environ.get("SERVER_EMAIL", DEFAULT_FROM_EMAIL)
# Where links in emails point (no trailing slash), e.g. https://shop.example.com.
SITE_URL = os.environ.get("SITE_URL", "http://127.0.0.1:8000")
# The right-hand side of every Message-ID (derived from the email's key).
EMAILS_MESSAGE_ID_DOMAIN = os.environ.get("EMAILS_MESSAGE_ID_DOMAIN") or (
    DEFAULT_FROM_EMAIL.rstrip(">").rsplit("@", 1)[-1] or "jobplatform.localhost"
)
# A send waits this long for a slot of the email-provider limit; longer waits postpone the job instead.
EMAILS_RATE_MAX_WAIT_SECONDS = float(os.environ.get("EMAILS_RATE_MAX_WAIT_SECONDS") or 1)
EMAILS_SEND_MAX_ATTEMPTS = env_int("EMAILS_SEND_MAX_ATTEMPTS", 8)
EMAILS_RETRY_BASE_SECONDS = float(os.environ.get("EMAILS_RETRY_BASE_SECONDS") or 5)
EMAILS_RETRY_CAP_SECONDS = float(os.environ.get("EMAILS_RETRY_CAP_SECONDS") or 600)
EMAILS_SEND_SOFT_TIME_LIMIT = env_int("EMAILS_SEND_SOFT_TIME_LIMIT", 100)
# Emails one address may be sent per window (any template: a user creating exports gets one each); more are
# kept in the outbox unsent, state "limited", with the reason. 0: no limit.
EMAILS_PER_RECIPIENT_LIMIT = env_int("EMAILS_PER_RECIPIENT_LIMIT", 20)
EMAILS_PER_RECIPIENT_WINDOW_SECONDS = env_int("EMAILS_PER_RECIPIENT_WINDOW_SECONDS", 3600)
# Operators mailed the dead-letter digest (comma-separated); empty: no digest.
JOBS_ALERT_EMAILS = env_list("JOBS_ALERT_EMAILS", [])
# The digest runs this often and is sent at most once per window, only while the queue is not empty.
EMAILS_DIGEST_INTERVAL_SECONDS = env_int("EMAILS_DIGEST_INTERVAL_SECONDS", 900)
EMAILS_DIGEST_WINDOW_SECONDS = env_int("EMAILS_DIGEST_WINDOW_SECONDS", 4 * 3600)
# Exports (exports app): sources, storage, download links, retention, limits
# ---------------------------------------------------------------------------
# Export sources by dotted path (see exports/sources.py for what a source declares).
EXPORTS_SOURCES = env_list("EXPORTS_SOURCES", [
    "sync.export_sources.ProductsExport", "exports.sources.JobHistoryExport", "exports.sources.AuditExport",
])  # fmt: skip
# Where files go: the file system under MEDIA_ROOT (default), or S3-compatible storage with EXPORTS_STORAGE=s3
# (bucket AWS_STORAGE_BUCKET_NAME; AWS_S3_ENDPOINT_URL for MinIO, R2, ...; credentials the usual AWS_* variables).
if os.environ.get("EXPORTS_STORAGE", "filesystem") == "s3":
    EXPORTS_STORAGE = {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": {
        "bucket_name": os.environ.get("AWS_STORAGE_BUCKET_NAME", ""),
        "endpoint_url": os.environ.get("AWS_S3_ENDPOINT_URL") or None,
        "region_name": os.environ.get("AWS_S3_REGION_NAME") or None,
        "location": os.environ.get("EXPORTS_S3_PREFIX", ""),
        # Signature v4: every region accepts it, and presigned URLs carry their own signed lifetime.
        "default_acl": None, "file_overwrite": False, "signature_version": "s3v4",
    }}  # fmt: skip
else:
    EXPORTS_STORAGE = {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {}}
# A download link works this long after it was issued; a presigned S3 URL it redirects to, this long.
EXPORTS_LINK_MAX_AGE_SECONDS = env_int("EXPORTS_LINK_MAX_AGE_SECONDS", 15 * 60)
EXPORTS_PRESIGNED_URL_SECONDS = env_int("EXPORTS_PRESIGNED_URL_SECONDS", 60)
# Files are kept this long after they were built, then deleted by the hourly exports.cleanup.
EXPORTS_RETENTION_SECONDS = env_int("EXPORTS_RETENTION_SECONDS", 7 * 24 * 3600)
# Exports one user may have queued or running at once (more: 429 with Retry-After).
EXPORTS_MAX_ACTIVE_PER_USER = env_int("EXPORTS_MAX_ACTIVE_PER_USER", 3)
EXPORTS_LIMIT_RETRY_AFTER_SECONDS = env_int("EXPORTS_LIMIT_RETRY_AFTER_SECONDS", 30)
EXPORTS_MAX_ROWS = env_int("EXPORTS_MAX_ROWS", 10_000_000)
# The longest an export may run (it must stay below CELERY_BROKER_VISIBILITY_TIMEOUT).
EXPORTS_TIME_LIMIT_SECONDS = env_int("EXPORTS_TIME_LIMIT_SECONDS", 3000)
# Production web servers can send the file themselves: "X-Accel-Redirect" (nginx, with
# EXPORTS_SENDFILE_PREFIX the internal location mapped to MEDIA_ROOT) or "X-Sendfile" (Apache); empty: Django streams.
EXPORTS_SENDFILE_HEADER = os.environ.get("EXPORTS_SENDFILE_HEADER", "")
EXPORTS_SENDFILE_PREFIX = os.environ.get("EXPORTS_SENDFILE_PREFIX", "/protected-exports/")

# ---------------------------------------------------------------------------
# Flower
# ---------------------------------------------------------------------------
FLOWER_PORT = env_int("FLOWER_PORT", 5555)
# Where operators open Flower: a job's admin page links each attempt's task there (empty: no links).
FLOWER_URL = os.environ.get("FLOWER_URL", f"http://127.0.0.1:{FLOWER_PORT}").rstrip("/")

# ---------------------------------------------------------------------------
# Logging: readable lines in development, JSON in production (LOG_FORMAT).
# ---------------------------------------------------------------------------
LOG_LEVEL = os.environ.get("LOG_LEVEL", "INFO")
LOG_FORMAT = os.environ.get("LOG_FORMAT", "text")
LOGGING: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "job_context": {"()": "jobs.foundation.logging.JobContextFilter"},
        "deliberate_unavailable": {"()": "jobs.foundation.logging.DeliberateUnavailableFilter"},
    },
    "formatters": {
        "text": {"()": "jobs.foundation.logging.TextFormatter"},
        "json": {"()": "jobs.foundation.logging.JsonFormatter"},
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
        # The API's deliberate 503s (a type switched off) are warnings, not errors.
        "django.request": {"filters": ["deliberate_unavailable"]},
    },
}
