"""The SMTP provider: Django's SMTP email backend, recording what happened on the wire.

Django's backend does the talking (TLS/SSL, login, timeouts, from the ``EMAIL_*`` settings).
This module adds what the outbox needs to decide a send's outcome honestly:

- a transcript of the conversation (commands and replies; the message body as its size only,
  the AUTH exchange masked);
- whether the end of the message (the lone ``.``) was handed to the socket: until then the
  server cannot have accepted it, so any failure is safe to retry; after it, a missing reply
  means the message *may* have been delivered;
- the server's answer to the message, and recipients refused while others were accepted
  (Django's backend drops that part of ``sendmail``'s result).
"""

from __future__ import annotations

import smtplib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.core.mail.backends.smtp import EmailBackend

TRANSCRIPT_LINE_MAX = 500


@dataclass
class SmtpRecorder:
    """What one send's SMTP conversation said, filled in by the connection as it goes."""

    lines: list[str] = field(default_factory=list)
    # The whole message, its terminating "." included, was handed to the socket.
    payload_sent: bool = False
    # The server answered the message with 250.
    accepted: bool = False
    reply_code: int | None = None
    reply_text: str = ""
    # Recipients refused at RCPT while at least one other was accepted: {address: (code, text)}.
    refused: dict[str, tuple[int, str]] = field(default_factory=dict)

    def note(self, direction: str, text: str) -> None:
        self.lines.append(f"{direction} {text[:TRANSCRIPT_LINE_MAX]}")

    @property
    def transcript(self) -> str:
        return "\n".join(self.lines)


if TYPE_CHECKING:
    from _typeshed import SizedBuffer

    _SMTPBase = smtplib.SMTP  # what the mixin is mixed into, so its super() calls are checked
else:
    _SMTPBase = object


class _RecordingMixin(_SMTPBase):
    """Hooks on smtplib's command, reply and data calls; behaviour is otherwise smtplib's own."""

    recorder: SmtpRecorder
    _in_auth: bool

    def putcmd(self, cmd: str, args: str = "") -> None:
        shown = f"{cmd} {args}".strip()
        if cmd.lower() == "auth" or self._in_auth:
            shown = f"{cmd.split(' ')[0]} ***" if cmd.lower() == "auth" else "***"
        self.recorder.note("C:", shown)
        super().putcmd(cmd, args)

    def getreply(self) -> tuple[int, bytes]:
        try:
            code, text = super().getreply()
        except smtplib.SMTPServerDisconnected as error:
            self.recorder.note("--", f"connection closed by the server: {error}")
            raise
        except OSError as error:
            self.recorder.note("--", f"no reply: {error.__class__.__name__}: {error}")
            raise
        self.recorder.note("S:", f"{code} {text.decode('utf-8', 'replace')}")
        return code, text

    def auth(self, mechanism: str, authobject: Any, *, initial_response_ok: bool = True) -> tuple[int, bytes]:
        self._in_auth = True
        try:
            return super().auth(mechanism, authobject, initial_response_ok=initial_response_ok)
        finally:
            self._in_auth = False

    # Narrower than smtplib's (bytes only): smtplib.sendmail hands data() the message already encoded.
    def data(self, msg: bytes) -> tuple[int, bytes]:  # type: ignore[override]
        # smtplib's data(), with a mark between "the whole message is on the wire" and the reply.
        self.putcmd("data")
        code, reply = self.getreply()
        if code != 354:
            raise smtplib.SMTPDataError(code, reply)
        quoted = smtplib._quote_periods(msg)  # type: ignore[attr-defined]  # smtplib's private helper; not in typeshed
        if quoted[-2:] != smtplib.bCRLF:
            quoted += smtplib.bCRLF
        quoted += b"." + smtplib.bCRLF
        self.recorder.note("C:", f"<message, {len(quoted)} bytes, ending with '.'>")
        self.send(quoted)
        self.recorder.payload_sent = True
        code, reply = self.getreply()
        self.recorder.reply_code, self.recorder.reply_text = code, reply.decode("utf-8", "replace")
        self.recorder.accepted = code == 250
        return code, reply

    def sendmail(
        self,
        from_addr: str,
        to_addrs: str | Sequence[str],
        msg: SizedBuffer | str,
        mail_options: Sequence[str] = (),
        rcpt_options: Sequence[str] = (),
    ) -> dict[str, tuple[int, bytes]]:
        refused = super().sendmail(from_addr, to_addrs, msg, mail_options, rcpt_options)
        self.recorder.refused = {
            address: (code, text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text))
            for address, (code, text) in refused.items()
        }
        return refused


class RecordingSMTP(_RecordingMixin, smtplib.SMTP):
    def __init__(self, *args: Any, recorder: SmtpRecorder, **kwargs: Any) -> None:
        self.recorder, self._in_auth = recorder, False
        super().__init__(*args, **kwargs)


class RecordingSMTP_SSL(_RecordingMixin, smtplib.SMTP_SSL):  # smtplib's own naming
    def __init__(self, *args: Any, recorder: SmtpRecorder, **kwargs: Any) -> None:
        self.recorder, self._in_auth = recorder, False
        super().__init__(*args, **kwargs)


class RecordingSmtpBackend(EmailBackend):
    """Django's SMTP backend whose connections record into ``self.recorder`` (one per backend instance)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.recorder = SmtpRecorder()

    @property
    def connection_class(self) -> Any:
        cls = RecordingSMTP_SSL if self.use_ssl else RecordingSMTP

        def connect(*args: Any, **kwargs: Any) -> smtplib.SMTP:
            self.recorder.note("--", f"connecting to {self.host}:{self.port}{' (SSL)' if self.use_ssl else ''}")
            return cls(*args, recorder=self.recorder, **kwargs)

        return connect


def smtp_deliver(
    *,
    from_email: str,
    to: list[str],
    subject: str,
    text_body: str,
    html_body: str,
    message_id: str,
    before_send: Callable[[], str] | None = None,
) -> SmtpRecorder:
    """Send one message through ``settings.EMAIL_BACKEND`` on a connection of its own.

    ``before_send`` runs once the connection is open, right before the message is sent (the rate-limit
    slot is taken there: the server counts messages, so the slot is taken as close to it as possible);
    what it returns goes into the transcript.

    Returns the recorder; raises whatever the backend raised, with the recorder attached to the
    exception as ``error.smtp_recorder`` so the caller can tell a safe failure from an uncertain one.
    A backend other than ``RecordingSmtpBackend`` (console, locmem) records nothing: its failures
    count as happening before the message was complete.
    """
    backend = get_connection(fail_silently=False)
    recorder: SmtpRecorder = getattr(backend, "recorder", None) or SmtpRecorder()
    message = EmailMultiAlternatives(
        subject=subject, body=text_body, from_email=from_email, to=to, connection=backend,
        headers={"Message-ID": message_id},
    )  # fmt: skip
    if html_body:
        message.attach_alternative(html_body, "text/html")
    try:
        try:
            backend.open()
            if before_send is not None:
                recorder.note("--", before_send())
            sent = message.send(fail_silently=False)
        finally:
            backend.close()
    except Exception as error:  # every failure is classified by the caller, with the recorder
        if recorder.accepted:
            return recorder  # hanging up after a 250 does not unsend the message
        error.smtp_recorder = recorder  # type: ignore[attr-defined]
        raise
    if not isinstance(backend, RecordingSmtpBackend) and sent:
        recorder.payload_sent = recorder.accepted = True
        recorder.reply_code, recorder.reply_text = 250, f"accepted by {settings.EMAIL_BACKEND}"
    return recorder
