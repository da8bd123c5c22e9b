"""The outbox: one row per logical email, and the list of addresses no email goes to any more."""

from __future__ import annotations

from django.db import models


class EmailMessage(models.Model):
    """One logical email, unique by its caller-given key, rendered once at enqueue time.

    What is sent is what was rendered here, even if the template changes later. The state only
    moves through ``emails.services`` with conditional updates, so two workers can never both send it.
    """

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        SENDING = "sending", "Sending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"
        # Every recipient is on the suppression list.
        SUPPRESSED = "suppressed", "Suppressed"
        # Every recipient had been sent EMAILS_PER_RECIPIENT_LIMIT emails in the window already (last_error says so).
        LIMITED = "limited", "Not sent: recipient limit"
        # The server may have accepted it, we never heard back: an operator resends or dismisses it.
        UNCERTAIN = "uncertain", "May have been sent"
        DISMISSED = "dismissed", "Dismissed"

    class Delivery(models.TextChoices):
        # An uncertain send waits for an operator / is retried automatically.
        AT_MOST_ONCE = "at_most_once", "At most once"
        AT_LEAST_ONCE = "at_least_once", "At least once"

    key = models.CharField(max_length=255, unique=True, help_text="the caller's key; the same key sends once")
    template = models.CharField(max_length=100)
    delivery = models.CharField(max_length=16, choices=Delivery.choices, default=Delivery.AT_MOST_ONCE)
    from_email = models.CharField(max_length=255)
    to = models.JSONField(help_text="recipient addresses")
    context = models.JSONField(default=dict, blank=True)
    # sha256 of (template, recipients, context, sender): tells a repeated call from a misuse of the key.
    fingerprint = models.CharField(max_length=64)
    subject = models.CharField(max_length=998)
    text_body = models.TextField()
    html_body = models.TextField(blank=True)
    # Derived from the key: a receiving system that deduplicates by Message-ID sees a resend as the same mail.
    message_id = models.CharField(max_length=255, unique=True)
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    # The job currently responsible for sending it (the latest one after a resend).
    job_id = models.CharField(max_length=32, blank=True, db_index=True)
    # "<job id>.<attempt>" of the attempt holding the claim while ``sending``.
    claimed_by = models.CharField(max_length=64, blank=True)
    attempts = models.PositiveIntegerField(default=0, help_text="SMTP conversations started")
    resends = models.PositiveIntegerField(default=0)
    smtp_code = models.PositiveIntegerField(null=True, blank=True)
    smtp_reply = models.TextField(blank=True)
    last_error = models.TextField(blank=True)
    suppressed_recipients = models.JSONField(default=list, blank=True)
    # Recipients left out because they were over EMAILS_PER_RECIPIENT_LIMIT when it was queued (lower-cased).
    limited_recipients = models.JSONField(default=list, blank=True)
    transcript = models.TextField(blank=True, help_text="the SMTP conversations, commands and replies")
    created_at = models.DateTimeField(auto_now_add=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True, help_text="when it became sent, failed, suppressed, ...")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["state", "-created_at"], name="emails_state_created_idx"),
            models.Index(fields=["template", "-created_at"], name="emails_template_created_idx"),
        ]
        permissions = [
            ("resend_emailmessage", "Can resend an email that failed or may have been sent"),
            ("dismiss_emailmessage", "Can dismiss an email that may have been sent"),
        ]

    def __str__(self) -> str:
        return f"{self.key} ({self.state})"


class Suppression(models.Model):
    """An address a server refused permanently (5xx): later emails to it are suppressed, not sent."""

    address = models.CharField(max_length=254, unique=True, help_text="lower-cased")
    smtp_code = models.PositiveIntegerField(null=True, blank=True)
    reason = models.TextField(blank=True)
    # The email whose refusal put the address here (kept if that email is deleted).
    email_key = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.address


class EmailRecipient(models.Model):
    """One address an email was queued for: what EMAILS_PER_RECIPIENT_LIMIT counts, per address and window.

    A row per recipient rather than a look inside ``EmailMessage.to`` (a JSON list, which SQLite cannot
    search by element): the count is one indexed range query on both databases.
    """

    email = models.ForeignKey(EmailMessage, on_delete=models.CASCADE, related_name="+")
    address = models.CharField(max_length=254, help_text="lower-cased")
    created_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["address", "created_at"], name="emails_recipient_window_idx")]

    def __str__(self) -> str:
        return f"{self.address} ({self.created_at:%Y-%m-%d %H:%M:%S})"
