"""Products synced from the supplier, and the record of each sync run and page."""

from __future__ import annotations

from django.db import models
from django.db.models import Q


class Product(models.Model):
    """A product as the shop knows it, keyed by the supplier's id."""

    supplier_id = models.CharField(max_length=64, unique=True)
    sku = models.CharField(max_length=64)
    name = models.CharField(max_length=255)
    description = models.TextField(blank=True)
    price = models.DecimalField(max_digits=12, decimal_places=2)
    currency = models.CharField(max_length=3)
    stock = models.PositiveIntegerField()
    supplier_active = models.BooleanField(default=True, help_text="what the supplier says")
    # False once the product vanished upstream (set only after a complete full run).
    is_active = models.BooleanField(default=True)
    supplier_updated_at = models.DateTimeField(null=True, blank=True)
    # Digest of the supplier's record: an unchanged record is not written again.
    content_hash = models.CharField(max_length=32)
    first_seen_at = models.DateTimeField(auto_now_add=True)
    last_changed_at = models.DateTimeField()
    deactivated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["is_active", "supplier_id"], name="sync_product_active_idx")]

    def __str__(self) -> str:
        return f"{self.supplier_id} {self.name}"


class SyncRun(models.Model):
    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        COMPLETED = "completed", "Completed (every page synced)"
        PARTIAL = "partial", "Partial (some pages failed)"
        FAILED = "failed", "Failed"

    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    full = models.BooleanField(default=True, help_text="a full run may mark vanished products inactive")
    job_id = models.CharField(max_length=32, blank=True, db_index=True, help_text="the jobs.Job driving this run")
    page_size = models.PositiveIntegerField()
    total_pages = models.PositiveIntegerField(default=0)
    catalog_total = models.PositiveIntegerField(default=0)
    pages_done = models.PositiveIntegerField(default=0)
    pages_failed = models.PositiveIntegerField(default=0)
    products_created = models.PositiveIntegerField(default=0)
    products_updated = models.PositiveIntegerField(default=0)
    products_unchanged = models.PositiveIntegerField(default=0)
    records_rejected = models.PositiveIntegerField(default=0)
    products_deactivated = models.PositiveIntegerField(default=0)
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at"]
        constraints = [
            # Runs never overlap: the database refuses a second running run.
            models.UniqueConstraint(fields=["status"], condition=Q(status="running"), name="sync_one_running_run"),
        ]

    def __str__(self) -> str:
        return f"sync run {self.pk} ({self.status}, {self.pages_done}/{self.total_pages} pages)"

    @property
    def progress_percent(self) -> int:
        if not self.total_pages:
            return 0
        return int(100 * (self.pages_done + self.pages_failed) / self.total_pages)


class SyncPage(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        DONE = "done", "Done"
        FAILED = "failed", "Failed (its job is in the dead-letter queue)"

    run = models.ForeignKey(SyncRun, on_delete=models.CASCADE, related_name="pages")
    number = models.PositiveIntegerField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    fetched_at = models.DateTimeField(null=True, blank=True)
    created = models.PositiveIntegerField(default=0)
    updated = models.PositiveIntegerField(default=0)
    unchanged = models.PositiveIntegerField(default=0)
    rejected = models.PositiveIntegerField(default=0)
    # [{"supplier_id": ..., "reason": ...}] for records that failed validation.
    rejections = models.JSONField(default=list, blank=True)
    # Supplier ids this page listed: a complete run deactivates products none listed.
    seen_ids = models.JSONField(default=list, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["run", "number"]
        constraints = [models.UniqueConstraint(fields=["run", "number"], name="sync_page_unique")]

    def __str__(self) -> str:
        return f"run {self.run_id} page {self.number} ({self.status})"


class WebhookEvent(models.Model):
    """A supplier webhook delivery we accepted; the unique id makes redeliveries no-ops."""

    event_id = models.CharField(max_length=128, unique=True)
    event_type = models.CharField(max_length=64)
    signed_at = models.DateTimeField()
    received_at = models.DateTimeField(auto_now_add=True)
    payload = models.JSONField()
    jobs_enqueued = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.event_type} {self.event_id}"
