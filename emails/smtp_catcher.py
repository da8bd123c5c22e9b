"""A real SMTP server that keeps every message it is given: the local catcher and the tests' peer.

    python -m emails.smtp_catcher --port 1025 [--maildir var/mail]     (`make run` starts it)

Built on aiosmtpd. In a test or benchmark it runs in a thread of the calling process::

    catcher = SmtpCatcher().start()          # a free loopback port: catcher.port
    ...                                      # point EMAIL_HOST/EMAIL_PORT at it
    catcher.count(), catcher.messages        # what it accepted (Message-ID, recipients, time)
    catcher.stop()

Faults, injected for the next ``times`` connections or transactions:

- ``fail_next("temporary")``: answer MAIL FROM with ``421`` (try again later);
- ``reject_recipient(address)``: answer RCPT TO for that address with ``550`` (until reset);
- ``fail_next("drop_mid_data")``: after ``354``, read the first line of the message and hang up
  (the message is never complete, so never accepted);
- ``fail_next("silent")``: accept the TCP connection and never say anything (not even the greeting);
- ``fail_next("hold")``: take the whole message (it counts as received), then hold the ``250`` until
  ``release_held()``: the moment "the server has it, the client does not know yet".
"""

from __future__ import annotations

import argparse
import asyncio
import email
import email.policy
import logging
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

FAULTS = ("temporary", "drop_mid_data", "silent", "hold")


@dataclass(frozen=True)
class ReceivedMessage:
    number: int
    mail_from: str
    rcpt_tos: tuple[str, ...]
    raw: bytes
    # time.time() when the end of the message arrived (the moment a real server queues it).
    received_at: float

    @property
    def parsed(self) -> email.message.EmailMessage:
        return email.message_from_bytes(self.raw, policy=email.policy.default)

    @property
    def message_id(self) -> str:
        return str(self.parsed["Message-ID"] or "")

    @property
    def subject(self) -> str:
        return str(self.parsed["Subject"] or "")


class SmtpCatcher:
    """An SMTP server on ``host:port`` (a free port when 0) recording what it accepts, with faults on demand."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, maildir: Path | None = None, echo: bool = False):
        self.host = host
        self.port = port or _free_port(host)
        self.maildir = maildir
        self.echo = echo
        self._lock = threading.Lock()
        self._messages: list[ReceivedMessage] = []
        self._faults: dict[str, int] = dict.fromkeys(FAULTS, 0)
        self._rejected: dict[str, str] = {}
        self._released = threading.Event()
        self.connections = 0
        self.faults_injected: dict[str, int] = dict.fromkeys([*FAULTS, "rejected_recipient"], 0)
        self.holding = 0
        self._controller: Controller | None = None

    # -- lifecycle -------------------------------------------------------------

    def start(self) -> Self:
        catcher = self

        class _Controller(Controller):
            def factory(self) -> SMTP:
                return _FaultySMTP(self.handler, catcher=catcher, **self.SMTP_kwargs)

        logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd logs every command at INFO
        self._controller = _Controller(_Handler(self), hostname=self.host, port=self.port, ready_timeout=10)
        self._controller.start()
        self.connections = 0  # the controller's own readiness probe is not a client
        return self

    def stop(self) -> None:
        self.release_held()
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what was received -----------------------------------------------------

    @property
    def messages(self) -> list[ReceivedMessage]:
        with self._lock:
            return list(self._messages)

    def count(self, *, message_id: str | None = None) -> int:
        """Messages accepted so far (with that Message-ID only, if given)."""
        messages = self.messages
        return len(messages) if message_id is None else sum(1 for m in messages if m.message_id == message_id)

    def wait_for_count(self, count: int, *, timeout: float) -> list[ReceivedMessage]:
        deadline = time.monotonic() + timeout
        while len(self.messages) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"the SMTP catcher received {len(self.messages)} message(s), expected {count} "
                                     f"within {timeout}s")  # fmt: skip
            time.sleep(0.05)
        return self.messages

    # -- faults ------------------------------------------------------------------

    def fail_next(self, kind: str, times: int = 1) -> None:
        if kind not in FAULTS:
            raise ValueError(f"unknown fault {kind!r}; one of {FAULTS}")
        with self._lock:
            self._faults[kind] += times
            if kind == "hold":
                self._released.clear()

    def reject_recipient(self, address: str, *, reply: str | None = None) -> None:
        with self._lock:
            self._rejected[address.lower()] = (
                reply or f"550 5.1.1 <{address}>: Recipient address rejected: no such user"
            )

    def release_held(self) -> None:
        self._released.set()

    def reset(self) -> None:
        """Forget messages, faults and rejections."""
        with self._lock:
            self._messages.clear()
            self._faults = dict.fromkeys(FAULTS, 0)
            self._rejected.clear()
        self._released.set()

    def _take(self, kind: str) -> bool:
        with self._lock:
            if self._faults[kind] > 0:
                self._faults[kind] -= 1
                self.faults_injected[kind] += 1
                return True
            return False

    def _record(self, envelope: Envelope) -> ReceivedMessage:
        raw = envelope.original_content or b""
        with self._lock:
            message = ReceivedMessage(number=len(self._messages) + 1, mail_from=str(envelope.mail_from),
                                      rcpt_tos=tuple(envelope.rcpt_tos), raw=raw, received_at=time.time())  # fmt: skip
            self._messages.append(message)
        if self.maildir is not None:
            self.maildir.mkdir(parents=True, exist_ok=True)
            (self.maildir / f"{int(message.received_at * 1000)}-{message.number}.eml").write_bytes(raw)
        if self.echo:
            print(f"[smtp-catcher] #{message.number} {message.mail_from} -> {', '.join(message.rcpt_tos)}: "
                  f"{message.subject!r} {message.message_id}", flush=True)  # fmt: skip
        return message


class _Handler:
    def __init__(self, catcher: SmtpCatcher):
        self.catcher = catcher

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          mail_options: list[str]) -> str:  # fmt: skip
        if self.catcher._take("temporary"):
            return "421 4.3.2 Service temporarily unavailable, try again later"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 Ok"

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          rcpt_options: list[str]) -> str:  # fmt: skip
        rejection = self.catcher._rejected.get(address.lower())
        if rejection:
            self.catcher.faults_injected["rejected_recipient"] += 1
            return rejection
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        message = self.catcher._record(envelope)
        if self.catcher._take("hold"):
            self.catcher.holding += 1
            try:
                while not self.catcher._released.is_set():
                    await asyncio.sleep(0.02)
            finally:
                self.catcher.holding -= 1
        return f"250 2.0.0 Ok: queued as {message.number}"


class _FaultySMTP(SMTP):
    def __init__(self, handler: Any, *, catcher: SmtpCatcher, **kwargs: Any):
        super().__init__(handler, **kwargs)
        self.catcher = catcher

    async def _handle_client(self) -> None:
        self.catcher.connections += 1
        if self.catcher._take("silent"):
            await asyncio.sleep(3600)  # cancelled when the client gives up and hangs up
            return
        await super()._handle_client()

    async def smtp_DATA(self, arg: str) -> None:
        if self.envelope is not None and self.envelope.rcpt_tos and self.catcher._take("drop_mid_data"):
            await self.push("354 End data with <CR><LF>.<CR><LF>")
            await self._reader.readuntil(b"\r\n")  # the first line of the message, then hang up
            if isinstance(self.transport, asyncio.Transport):  # a socket's transport, the one that can abort
                self.transport.abort()
            return
        await super().smtp_DATA(arg)


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m emails.smtp_catcher", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1025)
    parser.add_argument("--maildir", type=Path, default=None, help="also write each message there as a .eml file")
    args = parser.parse_args(argv)
    catcher = SmtpCatcher(host=args.host, port=args.port, maildir=args.maildir, echo=True).start()
    print(f"[smtp-catcher] listening on {args.host}:{catcher.port}; every message is kept, none is delivered",
          flush=True)  # fmt: skip
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    signal.signal(signal.SIGINT, lambda signum, frame: stop.set())
    try:
        while not stop.wait(0.5):
            pass
    finally:
        catcher.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
