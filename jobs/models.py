"""The job record, its attempts, its log, the operator audit trail, API tokens and type switches."""

from __future__ import annotations

import secrets

from django.conf import settings
from django.contrib.postgres.indexes import GinIndex, OpClass
from django.db import models
from django.db.models import Exists, OuterRef, Q, TextField
from django.db.models.functions import Cast


class JobSearchText(models.Func):
    """``UPPER(error_code || ' ' || error_message || ' ' || payload::text)``: what the admin's search by words reads.

    The separators are SQL literals, not parameters: an index expression matches a query's only when they are
    the same, and a prepared statement's generic plan sees parameters as unknowns (``Value`` would be one).
    Every column is NOT NULL, so no ``COALESCE``; PostgreSQL and SQLite both concatenate with ``||``.
    """

    template = "UPPER(%(expressions)s)"
    arg_joiner = " || ' ' || "
    output_field = TextField()


def job_search_text() -> JobSearchText:
    """The search text's expression, as the trigram index ``jobs_search_trgm_idx`` (PostgreSQL) is built on it:
    ``LIKE '%WORD%'`` on it is answered from the index. A query must use this, not an equivalent spelling."""
    return JobSearchText("error_code", "error_message", Cast("payload", TextField()))


class PostgresOnlyGinIndex(GinIndex):
    """A GIN index on PostgreSQL and none elsewhere: SQLite has no GIN (its search scans, fine at its sizes).

    ``jobs.foundation.schema_operations`` skips it on other databases (``postgresql_only``).
    """

    postgresql_only = True


def new_job_id() -> str:
    # Opaque and URL-safe; 128 bits of randomness so ids cannot be guessed. Never a leading "-"
    # (1 id in 64 had one): command lines take it for an option (`jobs_replay --retry -Xmi...`).
    while True:
        job_id = secrets.token_urlsafe(16)
        if not job_id.startswith("-"):
            return job_id


class JobQuerySet(models.QuerySet["Job"]):
    def dead_letter(self) -> JobQuerySet:
        """The dead-letter queue: dead jobs not yet replayed.

        A replayed job stays ``dead`` (its history is its own) but leaves the queue, so the queue
        drains as operators work through it and nothing is replayed twice by accident.
        """
        replayed = Job.objects.filter(replay_of=OuterRef("pk"))
        return self.filter(status=Job.Status.DEAD).exclude(Exists(replayed))


class Job(models.Model):
    """One unit of background work and everything known about it.

    State changes only through ``jobs.core.lifecycle`` (conditional updates), so two workers
    can never both move the same job.
    """

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        RETRYING = "retrying", "Retrying"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        DEAD = "dead", "Dead (retries exhausted)"
        CANCELLED = "cancelled", "Cancelled"

    id = models.CharField(primary_key=True, max_length=32, default=new_job_id, editable=False)
    type = models.CharField(max_length=100)
    queue = models.CharField(max_length=50)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    # Attempts started so far; the message for the next attempt carries attempt + 1.
    attempt = models.PositiveIntegerField(default=0)
    max_attempts = models.PositiveIntegerField(default=1)
    # Indexed by (owner, -created_at) below; a second single-column index would only slow inserts.
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="jobs", db_index=False
    )
    idempotency_key = models.CharField(max_length=255, null=True, blank=True)
    idempotency_expires_at = models.DateTimeField(null=True, blank=True)
    payload = models.JSONField(default=dict, blank=True)
    # sha256 of the canonical payload: tells an Idempotency-Key replay from a misuse.
    payload_fingerprint = models.CharField(max_length=64, blank=True)
    correlation_id = models.CharField(max_length=128, blank=True)
    progress = models.PositiveSmallIntegerField(default=0)
    progress_message = models.CharField(max_length=255, blank=True)
    result = models.JSONField(null=True, blank=True)
    error_code = models.CharField(max_length=64, blank=True)
    error_message = models.TextField(blank=True)
    error_traceback = models.TextField(blank=True)
    cancel_requested = models.BooleanField(default=False)
    # Indexed by a partial index below: only replays carry it, most jobs are not one.
    replay_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="replays", db_index=False
    )
    # Set when the message for the current attempt reached the broker; the relay
    # publishes due jobs where it is still null (broker down at commit time).
    published_at = models.DateTimeField(null=True, blank=True)
    worker = models.CharField(max_length=255, blank=True)
    celery_task_id = models.CharField(max_length=255, blank=True)

    created_at = models.DateTimeField(auto_now_add=True)
    enqueued_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    next_retry_at = models.DateTimeField(null=True, blank=True)
    # A job that runs later: its due time. It stays queued and unpublished until the scheduler's tick
    # (``jobs.delivery.scheduled``) publishes it at or after this time; kept afterwards (lateness = start - due).
    run_at = models.DateTimeField(
        null=True, blank=True, help_text="Due time of a job that runs later; published only once it is due."
    )
    # While running: the attempt's lease, renewed by its worker's heartbeat. Past it, the
    # reaper takes the attempt for lost, whatever the time limit (NULL: claimed before leases).
    lease_expires_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="While running: renewed by the worker's heartbeat; once past, the reaper rescues the attempt.",
    )
    updated_at = models.DateTimeField(auto_now=True)
    # Types with a concurrency limit: the key its attempt counts against (set when it claims a slot or waits for
    # one; "" when the type has no per-key limit). Null otherwise. Not null and unpublished: waiting for a slot.
    concurrency_key = models.CharField(max_length=255, null=True, blank=True, editable=False)

    objects = JobQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            # Every index is paid for on each insert and state change: only what the admin,
            # the API and the housekeeping tasks filter on.
            # Partial where most rows would hold NULL (no owner, not finished yet, not a replay):
            # enqueue and the publish stamp then write three index entries fewer per job, and
            # every query on these columns names a value, which implies NOT NULL.
            models.Index(fields=["status", "type"], name="jobs_status_type_idx"),
            models.Index(
                fields=["owner", "-created_at"], name="jobs_owner_created_idx", condition=Q(owner__isnull=False)
            ),
            models.Index(fields=["correlation_id"], name="jobs_correlation_idx"),
            models.Index(fields=["-created_at"], name="jobs_created_idx"),
            models.Index(fields=["finished_at"], name="jobs_finished_idx", condition=Q(finished_at__isnull=False)),
            models.Index(fields=["replay_of"], name="jobs_replay_of_idx", condition=Q(replay_of__isnull=False)),
            # The relay's and the reaper's scans: only live jobs, so the index stays small.
            models.Index(
                fields=["status", "published_at"],
                name="jobs_unpublished_idx",
                condition=Q(status__in=["queued", "retrying"]),
            ),
            models.Index(fields=["started_at"], name="jobs_running_idx", condition=Q(status="running")),
            # The admin's search by words in the error or the payload (pg_trgm; see job_search_text).
            PostgresOnlyGinIndex(OpClass(job_search_text(), name="gin_trgm_ops"), name="jobs_search_trgm_idx"),
            # The scheduler's tick: jobs that run later, not published yet, by due time. A job leaves the
            # index once published, so it holds only what still waits for its time.
            models.Index(
                fields=["run_at"],
                name="jobs_due_idx",
                condition=Q(status="queued", published_at__isnull=True, run_at__isnull=False),
            ),
        ]
        constraints = [
            # Idempotency is enforced by the database: concurrent enqueues with one key
            # cannot both insert. An expired key is cleared before it is reused.
            models.UniqueConstraint(
                fields=["type", "idempotency_key"],
                condition=Q(idempotency_key__isnull=False),
                name="jobs_unique_idempotency_key",
            ),
            models.CheckConstraint(condition=Q(progress__lte=100), name="jobs_progress_lte_100"),
        ]
        permissions = [
            ("retry_job", "Can retry failed or dead jobs"),
            ("replay_job", "Can replay finished jobs as new jobs"),
            ("cancel_job", "Can cancel jobs"),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.id} ({self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED_STATUSES


# The two named sets of the lifecycle: jobs waiting for a worker, and jobs that ended.
WAITING_STATUSES = frozenset({Job.Status.QUEUED, Job.Status.RETRYING})
FINISHED_STATUSES = frozenset({Job.Status.SUCCEEDED, Job.Status.FAILED, Job.Status.DEAD, Job.Status.CANCELLED})


class DeadJob(Job):
    """The dead-letter queue: jobs whose retries ran out and that were not replayed yet, shown on
    their own in the admin."""

    class Meta:
        proxy = True
        verbose_name = "dead job"
        verbose_name_plural = "dead-letter queue"


class JobAttempt(models.Model):
    """One execution of a job: when, where, how it ended."""

    class Outcome(models.TextChoices):
        SUCCEEDED = "succeeded", "Succeeded"
        RETRY = "retry", "Failed, will retry"
        FAILED = "failed", "Failed permanently"
        DEAD = "dead", "Failed, retries exhausted"
        CANCELLED = "cancelled", "Cancelled"
        SNOOZED = "snoozed", "Postponed (rate limit or switched off), attempt not spent"
        LOST = "lost", "Worker lost (rescued by the reaper)"
        SKIPPED = "skipped", "Skipped (singleton already running)"
        SUPERSEDED = "superseded", "Ended after the job had moved on (rescued); its outcome was not applied"

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="attempts")
    number = models.PositiveIntegerField()
    outcome = models.CharField(max_length=16, choices=Outcome.choices)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField()
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    worker = models.CharField(max_length=255, blank=True)
    celery_task_id = models.CharField(max_length=255, blank=True)
    error_code = models.CharField(max_length=64, blank=True)
    error_message = models.TextField(blank=True)
    error_traceback = models.TextField(blank=True)
    # For an attempt that will be retried: the backoff delay drawn for the next one.
    retry_delay_ms = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["job", "finished_at", "id"]
        indexes = [models.Index(fields=["celery_task_id"], name="jobs_attempt_task_idx")]

    def __str__(self) -> str:
        return f"{self.job_id} attempt {self.number}: {self.outcome}"


class JobLogLine(models.Model):
    """A line a job wrote through its context logger (bounded per job)."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="log_lines")
    attempt = models.PositiveIntegerField()
    logged_at = models.DateTimeField()
    level = models.CharField(max_length=10)
    message = models.TextField()

    class Meta:
        ordering = ["job", "logged_at", "id"]


class JobTypeSwitch(models.Model):
    """A feature flag per job type: switched off, enqueue is refused and queued jobs wait."""

    type = models.CharField(max_length=100, unique=True)
    enabled = models.BooleanField(default=True)
    reason = models.CharField(max_length=255, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "job type switch"
        verbose_name_plural = "job type switches"

    def __str__(self) -> str:
        return f"{self.type}: {'on' if self.enabled else 'off'}"


class JobAuditEntry(models.Model):
    """Who did what to which jobs, from the admin, the API or a management command.

    An event anyone can cause (a throttled login) is one row per client address and window that counts
    its repeats (``occurrences``, ``last_seen_at``; ``jobs.core.audit.audit_record_counted``), so nobody can fill
    the trail by repeating it.
    """

    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)

    class Action(models.TextChoices):
        RETRY = "retry", "Retry"
        REPLAY = "replay", "Replay"
        BULK_REPLAY_DEAD = "bulk_replay_dead", "Replay the dead-letter queue"
        CANCEL = "cancel", "Cancel"
        ENABLE_TYPE = "enable_type", "Switch a job type on"
        DISABLE_TYPE = "disable_type", "Switch a job type off"
        # Any login (the admin's, the exports page's): the value keeps its first name, from when only the admin's was.
        ADMIN_LOGIN_THROTTLED = "admin_login_throttled", "Login throttled"

    actor_label = models.CharField(max_length=150, blank=True)
    action = models.CharField(max_length=50, choices=Action.choices)
    job_ids = models.JSONField(default=list)
    job_count = models.PositiveIntegerField(default=0)
    detail = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # How many events the row stands for (1 unless counted), and when the last one happened.
    occurrences = models.PositiveIntegerField(default=1)
    last_seen_at = models.DateTimeField(null=True, blank=True)
    # Counted rows only: "<action>:<window start>:<address digest>"; later events in the window find the row by it.
    aggregation_key = models.CharField(max_length=100, null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "job audit entries"
        constraints = [
            models.UniqueConstraint(fields=["aggregation_key"], condition=models.Q(aggregation_key__isnull=False),
                                    name="jobs_audit_aggregation_key_uniq"),
        ]  # fmt: skip

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.actor_label} {self.action} ({self.job_count} jobs)"


def default_token_scopes() -> list[str]:
    return ["read", "enqueue"]


class ApiToken(models.Model):
    """A bearer token for server-side API callers. Only its sha256 is stored.

    Scopes limit what the token may do (``read`` jobs, ``enqueue``/cancel jobs, ``ops`` overview);
    the user's own permissions still apply on top. ``expires_at`` null: never expires.
    """

    class Scope(models.TextChoices):
        READ = "read", "read: list and get jobs"
        ENQUEUE = "enqueue", "enqueue: enqueue and cancel jobs"
        OPS = "ops", "ops: the operations overview"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=12, db_index=True)
    token_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    scopes = models.JSONField(default=default_token_scopes, help_text="any of: read, enqueue, ops")
    expires_at = models.DateTimeField(null=True, blank=True, help_text="empty: never expires")

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…) for {self.user}"


class DeclaredScheduleState(models.Model):
    """What ``sync_schedules`` last wrote for a schedule declared in code.

    Comparing the beat row with ``row_digest`` tells whether an operator edited it since.
    """

    name = models.CharField(max_length=200, unique=True)
    code_digest = models.CharField(max_length=32)
    row_digest = models.CharField(max_length=32)
    synced_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return self.name
