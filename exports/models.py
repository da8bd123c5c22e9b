"""Export requests: one file built in the background by one tracked job, downloadable until it expires."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q


class Export(models.Model):
    """A user's request for a file; status and progress mirror its job (``job_id``)."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Ready to download"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"
        EXPIRED = "expired", "Expired (file deleted)"

    class Format(models.TextChoices):
        CSV = "csv", "CSV"
        XLSX = "xlsx", "Excel (XLSX)"
        JSONL = "jsonl", "JSON Lines"

    ACTIVE = (Status.QUEUED, Status.RUNNING)

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="exports")
    source = models.CharField(max_length=64)
    format = models.CharField(max_length=8, choices=Format.choices)
    gzip = models.BooleanField(default=False)
    bom = models.BooleanField(default=False, help_text="CSV only: a UTF-8 byte order mark for spreadsheet programs")
    filters = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    progress = models.PositiveSmallIntegerField(default=0)
    rows_estimated = models.PositiveBigIntegerField(default=0)
    row_count = models.PositiveBigIntegerField(default=0)
    byte_size = models.PositiveBigIntegerField(default=0)
    sha256 = models.CharField(max_length=64, blank=True)
    storage_key = models.CharField(max_length=512, blank=True, help_text="set only once the whole file is stored")
    file_name = models.CharField(max_length=255, blank=True)
    job_id = models.CharField(max_length=32, blank=True, db_index=True, help_text="the jobs.Job building this file")
    idempotency_key = models.CharField(max_length=200, blank=True)
    rerun_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="reruns")
    error_code = models.CharField(max_length=64, blank=True)
    error_message = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True, help_text="the file is deleted after this")
    expired_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["owner", "-created_at"], name="exports_owner_recent_idx"),
            models.Index(fields=["expires_at"], name="exports_expiry_idx", condition=Q(status="succeeded")),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["owner", "idempotency_key"], condition=~Q(idempotency_key=""), name="exports_one_per_key"
            ),
        ]

    def __str__(self) -> str:
        return f"export {self.pk} ({self.source}.{self.format}, {self.status})"

    @property
    def is_active(self) -> bool:
        return self.status in self.ACTIVE
