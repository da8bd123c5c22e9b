"""Email services: every write to the outbox and the suppression list goes through here.

State changes are conditional updates (``UPDATE ... WHERE state IN (...)``): of two processes racing
for one email exactly one moves it. The send path is:

    email_send (caller's transaction: row + job, or neither)
      -> emails.send job -> email_deliver: rate-limit slot, claim (pending -> sending, committed),
         SMTP conversation, outcome (sent / failed / pending again / uncertain)
"""

from __future__ import annotations

import hashlib
import json
import logging
import smtplib
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from email.utils import formataddr, parseaddr
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.db.models import Count, F
from django.utils import timezone

from jobs.public import (
    JobsError,
    RateLimited,
    RateLimiter,
    dead_letter_summary,
    job_audit_record,
    job_enqueue,
    job_get,
)

from .client import SmtpRecorder, smtp_deliver
from .exceptions import (
    EmailDeliveryUncertain,
    EmailKeyConflict,
    EmailKeyInvalid,
    EmailPermanentFailure,
    EmailRecipientInvalid,
    EmailSendingInTransaction,
    EmailTemporaryFailure,
)
from .models import EmailMessage, EmailRecipient, Suppression
from .registry import email_render, email_template_get

logger = logging.getLogger("emails")
State = EmailMessage.State
Delivery = EmailMessage.Delivery

SEND_JOB_TYPE = "emails.send"
RATE_LIMIT_NAME = "email-provider"
TRANSCRIPT_MAX_CHARS = 20_000
# An operator may resend from these states; never from pending/sending (it is on its way) or sent.
RESENDABLE_STATES = (State.FAILED, State.UNCERTAIN, State.SUPPRESSED, State.LIMITED, State.DISMISSED)


# ---------------------------------------------------------------------------
# Enqueue: the API other apps use
# ---------------------------------------------------------------------------


def email_send(
    *, template: str, to: str | Sequence[str], context: dict[str, Any] | None, key: str, from_email: str | None = None
) -> EmailMessage:
    """Render ``template`` with ``context`` and queue it for ``to``, once per ``key``.

    Call it inside your transaction: the email and its send job are written there, and the job is
    published after commit (roll back and no email exists). The same key again returns the existing
    email and sends nothing more; the same key with another template, recipients, context or sender
    raises EmailKeyConflict. Malformed addresses raise EmailRecipientInvalid, an unknown template
    EmailTemplateUnknown, a context missing a required key EmailContextInvalid: nothing is stored then.
    Recipients on the suppression list are left out; if that leaves nobody, the email is ``suppressed``.
    So are recipients already sent EMAILS_PER_RECIPIENT_LIMIT emails in the last
    EMAILS_PER_RECIPIENT_WINDOW_SECONDS: if that leaves nobody, the email is kept unsent as ``limited``,
    with the reason in ``last_error`` and a warning logged.
    """
    if not key or len(key) > 255:
        raise EmailKeyInvalid(f"an email key must be 1-255 characters, got {len(key or '')}", detail={"key": key})
    recipients = _recipients(to)
    sender = _address(from_email or settings.DEFAULT_FROM_EMAIL, role="sender")
    context = dict(context or {})
    spec = email_template_get(template)
    fingerprint = _fingerprint(template=template, to=recipients, context=context, from_email=sender)
    # No look-up first: a key used before is rare, and the insert below finds it (one query less per email).
    rendered = email_render(template=template, context=context)
    suppressed = suppressed_addresses(recipients)
    addresses = [address for address in dict.fromkeys(map(_address_of, recipients)) if address not in suppressed]
    now = timezone.now()
    try:
        # One savepoint (one transaction when the caller has none) for the row and its job: a concurrent
        # caller's row fails only this insert, and an error leaves the caller's transaction usable.
        with transaction.atomic():
            limited = recipients_over_limit(addresses, now=now)
            to_send = [address for address in addresses if address not in limited]
            state = State.PENDING if to_send else State.LIMITED if addresses else State.SUPPRESSED
            email = EmailMessage.objects.create(
                key=key, template=template, delivery=spec.delivery, from_email=sender, to=recipients,
                context=context, fingerprint=fingerprint, subject=rendered.subject, text_body=rendered.text_body,
                html_body=rendered.html_body, message_id=message_id_for(key), state=state,
                suppressed_recipients=sorted(suppressed), limited_recipients=sorted(limited),
                last_error=_recipient_limit_reason(limited), finished_at=None if to_send else now,
            )  # fmt: skip
            if to_send:
                EmailRecipient.objects.bulk_create(
                    [EmailRecipient(email=email, address=address, created_at=now) for address in to_send]
                )
                email.job_id = _enqueue_send(email=email, key=f"emails:email:{email.pk}:send")
                EmailMessage.objects.filter(pk=email.pk).update(job_id=email.job_id)
    except IntegrityError:
        existing = EmailMessage.objects.filter(key=key).first()
        if existing is None:
            raise
        return _same_email(existing, fingerprint)
    if limited:
        logger.warning("email %s (%s) not sent to %s: %s", email.pk, key, ", ".join(sorted(limited)), email.last_error)
    return email


def recipients_over_limit(addresses: Sequence[str], *, now: datetime) -> set[str]:
    """The (lower-cased) ``addresses`` already queued EMAILS_PER_RECIPIENT_LIMIT emails in the window before ``now``.

    A count of the outbox's recipient rows, not a Redis limiter: it is what the admin shows, kept per test
    and across a Redis flush. Two emails to one address queued at the same instant by two workers can both
    see the last free place (the count and the insert are not one atomic step), so a burst may pass the
    limit by as many as run at once; that bounds what an abuser gets at the limit plus a few, which is
    what the limit is for, without a lock on every send.
    """
    limit, window = settings.EMAILS_PER_RECIPIENT_LIMIT, settings.EMAILS_PER_RECIPIENT_WINDOW_SECONDS
    if not limit or not addresses:
        return set()
    counts = (EmailRecipient.objects.filter(address__in=addresses, created_at__gt=now - timedelta(seconds=window))
              .values("address").annotate(sent=Count("pk")))  # fmt: skip
    return {row["address"] for row in counts if row["sent"] >= limit}


def _recipient_limit_reason(limited: set[str]) -> str:
    if not limited:
        return ""
    limit, window = settings.EMAILS_PER_RECIPIENT_LIMIT, settings.EMAILS_PER_RECIPIENT_WINDOW_SECONDS
    return f"recipient limit: {limit} per {window} s ({', '.join(sorted(limited))})"


def message_id_for(key: str) -> str:
    """The Message-ID header, the same for every send of one key (a resend is recognisably the same mail)."""
    digest = hashlib.sha256(key.encode()).hexdigest()[:40]
    return f"<{digest}@{settings.EMAILS_MESSAGE_ID_DOMAIN}>"


def _enqueue_send(*, email: EmailMessage, key: str) -> str:
    return job_enqueue(job_type=SEND_JOB_TYPE, payload={"email_id": email.pk}, idempotency_key=key).job.id


def _same_email(existing: EmailMessage, fingerprint: str) -> EmailMessage:
    if existing.fingerprint != fingerprint:
        raise EmailKeyConflict(
            f"email key {existing.key!r} already names an email ({existing.template} to {', '.join(existing.to)}) "
            "with a different template, recipients, context or sender; use a new key for a different email",
            detail={"key": existing.key, "email_id": existing.pk},
        )
    return existing


def _fingerprint(*, template: str, to: list[str], context: dict[str, Any], from_email: str) -> str:
    canonical = json.dumps([template, to, context, from_email], sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _address(value: str, *, role: str) -> str:
    """``value`` as a well-formed address ("a@b.c" or "Name <a@b.c>"), or EmailRecipientInvalid."""
    if not isinstance(value, str) or "\n" in value or "\r" in value:
        raise EmailRecipientInvalid(f"{role} {value!r} is not an email address", detail={role: repr(value)})
    name, address = parseaddr(value)
    try:
        validate_email(address)
    except ValidationError:
        raise EmailRecipientInvalid(
            f"{role} {value!r} is not a well-formed email address (expected name@domain)", detail={role: value}
        ) from None
    return formataddr((name, address)) if name else address


def _recipients(to: str | Sequence[str]) -> list[str]:
    values = [to] if isinstance(to, str) else list(to)
    if not values:
        raise EmailRecipientInvalid("an email needs at least one recipient", detail={"to": []})
    recipients = [_address(value, role="recipient") for value in values]
    return list(dict.fromkeys(recipients))


def _address_of(recipient: str) -> str:
    return parseaddr(recipient)[1].lower()


# ---------------------------------------------------------------------------
# Suppression list
# ---------------------------------------------------------------------------


def suppressed_addresses(recipients: Sequence[str]) -> set[str]:
    """The (lower-cased) addresses among ``recipients`` that are on the suppression list."""
    addresses = {_address_of(recipient) for recipient in recipients}
    return set(Suppression.objects.filter(address__in=addresses).values_list("address", flat=True))


def suppression_add(*, address: str, smtp_code: int | None, reason: str, email_key: str = "") -> Suppression:
    """Put an address on the suppression list (a server refused it permanently); adding it twice keeps the first."""
    suppression, _ = Suppression.objects.get_or_create(
        address=_address_of(address), defaults={"smtp_code": smtp_code, "reason": reason[:2000], "email_key": email_key}
    )
    return suppression


def suppression_remove(*, suppressions: Sequence[Suppression], actor: Any = None) -> int:
    """Take addresses off the suppression list (they will be mailed again), with an audit entry."""
    addresses = [suppression.address for suppression in suppressions]
    removed, _ = Suppression.objects.filter(address__in=addresses).delete()
    if removed:
        job_audit_record(actor=actor, action="emails.suppression_remove", jobs=[], detail={"addresses": addresses})
    return removed


# ---------------------------------------------------------------------------
# Delivery (inside the emails.send job)
# ---------------------------------------------------------------------------


def email_deliver(*, email_id: int, claim: str) -> dict[str, Any]:
    """Send one email if it is still pending; ``claim`` names this attempt ("<job id>.<attempt>").

    Never sends an email that is sent, failed, suppressed, uncertain or dismissed, or that another
    attempt holds: a duplicate job message, a re-publish or a retry after ``sent`` changes nothing.
    The ``email-provider`` rate-limit slot is taken on the open connection, right before the message.
    Raises EmailTemporaryFailure (retry: the server cannot have accepted it), EmailPermanentFailure
    (5xx), EmailDeliveryUncertain (may have been delivered: an operator decides), or RateLimited
    (no slot free: the claim is released and the job postponed without spending an attempt).
    """
    if connection.in_atomic_block:
        raise EmailSendingInTransaction(
            "email_deliver must run outside a transaction: the claim is committed before the SMTP conversation"
        )
    email = EmailMessage.objects.filter(pk=email_id).first()
    if email is None:
        return {"email_id": email_id, "skipped": "no such email (deleted)"}
    if email.state == State.SENDING:
        if _claim_in_progress(email):
            return {"email_id": email.pk, "skipped": f"being sent by attempt {email.claimed_by}"}
        _abandoned_claim(email)
    if email.state != State.PENDING:
        return {"email_id": email.pk, "state": email.state, "skipped": f"already {email.state}"}
    suppressed = suppressed_addresses(email.to)
    left_out = suppressed | set(email.limited_recipients)
    recipients = [recipient for recipient in email.to if _address_of(recipient) not in left_out]
    if not recipients:
        _move(email, [State.PENDING], State.SUPPRESSED, suppressed_recipients=sorted(suppressed),
              finished_at=timezone.now())  # fmt: skip
        return {"email_id": email.pk, "state": State.SUPPRESSED}
    limiter = RateLimiter.named(RATE_LIMIT_NAME)
    now = timezone.now()
    claimed = EmailMessage.objects.filter(pk=email.pk, state=State.PENDING).update(
        state=State.SENDING, claimed_by=claim, claimed_at=now, attempts=F("attempts") + 1, updated_at=now
    )
    if not claimed:
        return {"email_id": email.pk, "skipped": "claimed by another attempt"}
    email.attempts += 1
    try:
        recorder = smtp_deliver(
            from_email=email.from_email, to=recipients, subject=email.subject, text_body=email.text_body,
            html_body=email.html_body, message_id=email.message_id,
            before_send=lambda: _take_slot(limiter),
        )  # fmt: skip
    except Exception as error:  # classified below; unknown errors are re-raised
        _record_failure(email, claim=claim, error=error, suppressed=suppressed)
        raise
    _record_sent(email, claim=claim, recorder=recorder, suppressed=suppressed)
    return {"email_id": email.pk, "state": State.SENT, "smtp": f"{recorder.reply_code} {recorder.reply_text}"[:200]}


def _take_slot(limiter: RateLimiter) -> str:
    limiter.acquire(max_wait=settings.EMAILS_RATE_MAX_WAIT_SECONDS)
    granted = datetime.fromtimestamp(limiter.last_granted_at or 0.0, tz=UTC)
    # Redis' clock, to the millisecond: when this message's slot of the shared limit was granted.
    return (
        f"{limiter.name} slot granted at {granted:%Y-%m-%d %H:%M:%S.%f}"[:-3]
        + f" UTC ({limiter.limit} per {limiter.period:g}s)"
    )


def _claim_in_progress(email: EmailMessage) -> bool:
    """Whether the attempt holding the claim is still running (another job of the same email, e.g. an
    operator retrying an old job while a resend is out): then it is in progress, not abandoned."""
    job_id, _, attempt = email.claimed_by.rpartition(".")
    try:
        holder = job_get(job_id=job_id)
    except JobsError:
        return False
    return holder.status == "running" and str(holder.attempt) == attempt


def _abandoned_claim(email: EmailMessage) -> None:
    """The email is ``sending`` but no attempt is: the one that claimed it stopped without an outcome
    (its worker was killed, or hit the hard time limit). The server may have accepted the message."""
    note = (f"attempt {email.claimed_by} claimed this email at {email.claimed_at:%Y-%m-%d %H:%M:%S} and stopped "
            "without recording an outcome (worker killed?); the server may have accepted the message")  # fmt: skip
    if email.delivery == Delivery.AT_LEAST_ONCE:
        if _move(email, [State.SENDING], State.PENDING, last_error=note + "; at-least-once: sending again"):
            email.state = State.PENDING
        return
    if _move(email, [State.SENDING], State.UNCERTAIN, last_error=note, finished_at=timezone.now()):
        logger.warning("email %s (%s) may have been sent: %s", email.pk, email.key, note)
        raise EmailDeliveryUncertain(f"email {email.pk} ({email.key}) may have been sent: {note}; "
                                     "resend or dismiss it in the admin", detail={"email_id": email.pk})  # fmt: skip
    email.refresh_from_db()


def _record_sent(email: EmailMessage, *, claim: str, recorder: SmtpRecorder, suppressed: set[str]) -> None:
    refused_permanently = {address: reply for address, reply in recorder.refused.items() if reply[0] >= 500}
    for address, (code, text) in refused_permanently.items():
        suppression_add(address=address, smtp_code=code, reason=text, email_key=email.key)
    now = timezone.now()
    # Also from uncertain: a late attempt that was presumed dead but did get its 250 sets the record straight.
    still_ours = EmailMessage.objects.filter(pk=email.pk, state__in=[State.SENDING, State.UNCERTAIN], claimed_by=claim)
    fields = {
        "state": State.SENT, "sent_at": now, "finished_at": now, "smtp_code": recorder.reply_code,
        "smtp_reply": _reply_summary(recorder), "transcript": _transcript(email, claim, recorder), "last_error": "",
        "suppressed_recipients": sorted(suppressed | {address.lower() for address in refused_permanently}),
        "updated_at": now,
    }  # fmt: skip
    if not _write(lambda: still_ours.update(**fields)):
        logger.error("email %s was sent (%s) but its claim %s was taken from it meanwhile; its row says %s",
                     email.pk, _reply_summary(recorder), claim, EmailMessage.objects.get(pk=email.pk).state)  # fmt: skip
    if recorder.refused:
        logger.warning("email %s sent, but the server refused %s", email.pk, recorder.refused)


def _record_failure(email: EmailMessage, *, claim: str, error: Exception, suppressed: set[str]) -> None:
    """Turn a failed SMTP conversation into the email's next state, and ``error`` into the job's outcome.

    Raises EmailTemporaryFailure / EmailPermanentFailure / EmailDeliveryUncertain from ``error``; returns
    (letting the caller re-raise ``error`` itself) only for an unexpected error, after releasing the claim.
    """
    if isinstance(error, RateLimited):
        # No slot free for long: nothing was sent; the job is postponed without spending an attempt.
        _release(email, claim, attempts=F("attempts") - 1)
        return
    recorder: SmtpRecorder = getattr(error, "smtp_recorder", None) or SmtpRecorder()
    described = f"{error.__class__.__name__}: {error}"[:2000]
    fields: dict[str, Any] = {"transcript": _transcript(email, claim, recorder), "last_error": described,
                              "smtp_code": recorder.reply_code, "smtp_reply": _reply_summary(recorder)}  # fmt: skip
    answered = recorder.reply_code is not None and 400 <= recorder.reply_code < 600
    if recorder.payload_sent and not answered:
        # The whole message reached the server; its answer did not reach us.
        if email.delivery == Delivery.AT_LEAST_ONCE:
            _release(email, claim, **fields)
            raise EmailTemporaryFailure(f"email {email.pk}: no answer after the message was sent ({described}); "
                                        "at-least-once template: sending again") from error  # fmt: skip
        _move(email, [State.SENDING], State.UNCERTAIN, _claim=claim, finished_at=timezone.now(), **fields)
        logger.warning("email %s (%s) may have been sent: %s", email.pk, email.key, described)
        raise EmailDeliveryUncertain(
            f"email {email.pk} ({email.key}): the message was sent but the server's answer never came "
            f"({described}); it may have been delivered. Resend or dismiss it in the admin",
            detail={"email_id": email.pk},
        ) from error
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        refusals = {address: code for address, (code, _text) in error.recipients.items()}
        permanent = {address for address, code in refusals.items() if 500 <= code < 600}
        for address in permanent:
            code, text = error.recipients[address]
            suppression_add(address=address, smtp_code=code,
                            reason=text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text),
                            email_key=email.key)  # fmt: skip
        fields["suppressed_recipients"] = sorted(suppressed | {address.lower() for address in permanent})
        if permanent == set(refusals):
            _fail(email, claim, fields)
            raise EmailPermanentFailure(f"email {email.pk}: every recipient was refused permanently ({refusals}); "
                                        "they are on the suppression list now") from error  # fmt: skip
        _release(email, claim, **fields)
        raise EmailTemporaryFailure(f"email {email.pk}: recipients refused for now ({refusals})") from error
    if isinstance(error, smtplib.SMTPResponseException) and 500 <= error.smtp_code < 600:
        _fail(email, claim, fields)
        raise EmailPermanentFailure(f"email {email.pk}: the server refused it permanently ({described})") from error
    if isinstance(error, (smtplib.SMTPException, OSError)):
        # 4xx, refused or dropped connections, timeouts: all before the end of the message.
        _release(email, claim, **fields)
        raise EmailTemporaryFailure(f"email {email.pk}: {described}; the server cannot have accepted it, "
                                    "retrying") from error  # fmt: skip
    _release(email, claim, **fields)  # an unexpected error (a bug): the email waits, the job fails


def _fail(email: EmailMessage, claim: str, fields: dict[str, Any]) -> None:
    _move(email, [State.SENDING], State.FAILED, _claim=claim, finished_at=timezone.now(), **fields)


def _release(email: EmailMessage, claim: str, **fields: Any) -> None:
    _move(email, [State.SENDING], State.PENDING, _claim=claim, claimed_by="", **fields)


def email_give_up(*, email_id: int, error: str) -> None:
    """The send job gave up (attempts exhausted, failed, or buried by the reaper): a still-pending email
    becomes ``failed``; one still ``sending`` (its worker died mid-send on the last attempt) ``uncertain``."""
    email = EmailMessage.objects.filter(pk=email_id).first()
    if email is None:
        return
    now, note = timezone.now(), f"the send job gave up: {error}"[:2000]
    if not _move(email, [State.PENDING], State.FAILED, last_error=note, finished_at=now):
        _move(email, [State.SENDING], State.UNCERTAIN, finished_at=now,
              last_error=f"{note}; it was being sent, the server may have accepted it")  # fmt: skip


def _move(email: EmailMessage, from_states: Sequence[str], to_state: str, **fields: Any) -> bool:
    """Move ``email`` to ``to_state`` if it is in one of ``from_states`` (and, with ``_claim``, still claimed by it)."""
    filters: dict[str, Any] = {"pk": email.pk, "state__in": list(from_states)}
    if "_claim" in fields:
        filters["claimed_by"] = fields.pop("_claim")
    moved = _write(lambda: EmailMessage.objects.filter(**filters).update(state=to_state, updated_at=timezone.now(),
                                                                         **fields))  # fmt: skip
    if moved:
        email.state = to_state
    return bool(moved)


def _write(update: Callable[[], int], *, tries: int = 3) -> int:
    """An outcome write; a database hiccup right after a send is retried before it is given up."""
    for attempt in range(1, tries + 1):
        try:
            return update()
        except DatabaseError:
            if attempt == tries:
                raise
            time.sleep(0.2 * attempt)
    return 0


def _reply_summary(recorder: SmtpRecorder) -> str:
    if recorder.reply_code is None:
        return ""
    return f"{recorder.reply_code} {recorder.reply_text}"[:2000]


def _transcript(email: EmailMessage, claim: str, recorder: SmtpRecorder) -> str:
    header = f"--- attempt {claim} at {timezone.now():%Y-%m-%d %H:%M:%S} UTC ---"
    text = "\n".join(part for part in (email.transcript, header, recorder.transcript or "(nothing recorded)") if part)
    return text[-TRANSCRIPT_MAX_CHARS:]


# ---------------------------------------------------------------------------
# Operator actions (admin)
# ---------------------------------------------------------------------------


def email_resend(*, email: EmailMessage, actor: Any = None) -> bool:
    """Queue a failed, uncertain, suppressed, limited or dismissed email again (never a sent one), audited.

    The same rendered message goes out with the same Message-ID. Suppressed recipients stay left out;
    recipients the per-recipient limit left out are sent to (an operator's resend is not limited).
    """
    if email.state not in RESENDABLE_STATES:
        return False
    with transaction.atomic():
        resends = email.resends + 1
        previous = email.state
        if not _move(email, RESENDABLE_STATES, State.PENDING, claimed_by="", resends=resends, finished_at=None,
                     limited_recipients=[]):  # fmt: skip
            return False
        email.resends = resends
        email.job_id = _enqueue_send(email=email, key=f"emails:email:{email.pk}:resend-{resends}")
        EmailMessage.objects.filter(pk=email.pk).update(job_id=email.job_id)
        job_audit_record(actor=actor, action="emails.resend", jobs=[email.job_id],
                         detail={"email_id": email.pk, "key": email.key, "from_state": previous})  # fmt: skip
    return True


def email_dismiss(*, email: EmailMessage, actor: Any = None) -> bool:
    """Close an email that may have been sent without sending it again (e.g. the recipient confirmed it)."""
    with transaction.atomic():
        if not _move(email, [State.UNCERTAIN], State.DISMISSED):
            return False
        job_audit_record(actor=actor, action="emails.dismiss", jobs=[],
                         detail={"email_id": email.pk, "key": email.key})  # fmt: skip
    return True


# ---------------------------------------------------------------------------
# Built-in emails
# ---------------------------------------------------------------------------


def email_export_ready(
    *, export_id: int | str, user_id: int, what: str = "", file_format: str = "", rows: int | None = None
) -> EmailMessage:
    """Tell a user which export is ready (``what``: the source's title, ``file_format``, ``rows``), with a link
    to the exports page (the signed file link never goes in mail). Without them it says "your export"."""
    user = get_user_model().objects.filter(pk=user_id).first()
    if user is None or not getattr(user, "email", ""):
        raise EmailRecipientInvalid(
            f"user {user_id} {'does not exist' if user is None else 'has no email address'}; "
            f"export {export_id} cannot be announced by email", detail={"user_id": user_id, "export_id": export_id},
        )  # fmt: skip
    name = (user.get_full_name() if hasattr(user, "get_full_name") else "") or user.get_username()
    return email_send(
        template="export_ready", to=user.email, key=f"exports:export:{export_id}:ready",
        context={"export_id": str(export_id), "exports_url": f"{settings.SITE_URL.rstrip('/')}/exports/",
                 "recipient_name": name, "what": what, "format": file_format,
                 "rows": "" if rows is None else f"{rows:,} row{'' if rows == 1 else 's'}"},
    )  # fmt: skip


def dead_letter_digest_send(*, now: datetime | None = None) -> EmailMessage | None:
    """Mail the operators (``JOBS_ALERT_EMAILS``) a digest of the dead-letter queue, if it holds anything.

    At most once per ``EMAILS_DIGEST_WINDOW_SECONDS``: the key names the window, so a second run in the
    same window returns the first email. None when nobody is configured or the queue is empty.
    """
    recipients = list(settings.JOBS_ALERT_EMAILS)
    if not recipients:
        return None
    summary = dead_letter_summary()
    if summary.size == 0:
        return None
    window = int(settings.EMAILS_DIGEST_WINDOW_SECONDS)
    window_index = int((now or timezone.now()).timestamp() // window)
    context = {
        "dead_count": summary.size,
        "by_type": [{"type": name, "count": count} for name, count in summary.by_type.items()],
        "oldest": summary.oldest_finished_at.strftime("%Y-%m-%d %H:%M") if summary.oldest_finished_at else "",
        "admin_url": f"{settings.SITE_URL.rstrip('/')}/admin/jobs/deadjob/",
        "window_seconds": window,
    }
    key = f"emails:digest:{window_index}:dead_letter"
    existing = EmailMessage.objects.filter(key=key).first()
    if existing is not None:
        return existing  # this window's digest went out already (the queue may have changed since: no matter)
    return email_send(template="dead_letter_digest", to=recipients, context=context, key=key)
