"""Errors of the emails app: one base, small named subclasses, classified for the jobs platform's retry policy.

Errors a caller of ``email_send`` may get are 4xx-style (``retryable = False``: the same call fails the
same way). Errors raised inside a send job say whether retrying is safe: ``TransientJobError`` ones are
retried with backoff, ``PermanentJobError`` ones fail the job at once.
"""

from __future__ import annotations

from jobs.public import JobsError, PermanentJobError, TransientJobError


class EmailsError(JobsError):
    """Base of every error raised by the emails app."""

    code = "emails_error"


class EmailTemplateUnknown(EmailsError):
    """No email template of that name is declared."""

    code = "email_template_unknown"


class EmailContextInvalid(EmailsError):
    """The context lacks a key the template needs, or holds a value that cannot be stored as JSON."""

    code = "email_context_invalid"


class EmailRecipientInvalid(EmailsError):
    """A recipient (or the sender) is not a well-formed email address; refused before anything is stored."""

    code = "email_recipient_invalid"


class EmailKeyInvalid(EmailsError):
    """The key is empty or longer than 255 characters."""

    code = "email_key_invalid"


class EmailKeyConflict(EmailsError):
    """The key already names an email with a different template, recipients, context or sender."""

    code = "email_key_conflict"


class EmailTemporaryFailure(EmailsError, TransientJobError):
    """The server answered 4xx, refused the connection, timed out or hung up before the message was
    complete: it cannot have accepted it, so trying again later is safe."""

    code = "smtp_temporary_failure"


class EmailPermanentFailure(EmailsError, PermanentJobError):
    """The server refused the message or every recipient with 5xx: sending it again fails the same way."""

    code = "smtp_permanent_failure"


class EmailDeliveryUncertain(EmailsError, PermanentJobError):
    """The whole message reached the server but its answer never came back (or the worker sending it died):
    it may have been delivered. Not retried automatically; an operator resends or dismisses it."""

    code = "email_delivery_uncertain"


class EmailSendingInTransaction(EmailsError):
    """Delivery was called inside a database transaction: its claim must be committed before the SMTP
    conversation starts, or a rollback would forget a message the server already has."""

    code = "email_delivery_in_transaction"
