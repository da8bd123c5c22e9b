"""Transactional email through the outbox: achieved rate against the email-provider limit, duplicates, enqueue cost.

    make bench BENCH_ARGS="emails --count 10000 --limit 100"

Starts the SMTP catcher (emails.smtp_catcher, a real SMTP server) in this process, queues
``count`` emails with ``email_send`` (in transactions of ``--batch``; the workers are not running
yet, so the enqueue is timed alone), then starts 2 workers x 2 processes on the emails queue and
waits until the server has them all. Reports:
- enqueue cost per email (rendering, the outbox row, the job row, publishing after commit), and
  beside it the cost of sending one inline with Django's send_mail (what a request handler
  would otherwise spend);
- the achieved rate at the server (messages per second from the first to the last) as a
  fraction of the limit, and the most the server saw in any 1-second window;
- the delay from each email's rate-limit slot (Redis' clock, from its transcript) to its arrival at
  the server: median, 95th percentile and the most (the suite asserts only that the slots keep the limit);
- duplicates at the server (messages received minus distinct Message-IDs), and emails not sent.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from bench.harness import ensure_bench_database, setup_django

WORKERS, PROCESSES_PER_WORKER = 2, 2


def main(argv: list[str]) -> int:
    exit_code = ensure_bench_database("emails", argv)
    if exit_code is not None:
        return exit_code
    parser = argparse.ArgumentParser(prog="bench emails")
    parser.add_argument("--count", type=int, default=10_000, help="emails to send")
    parser.add_argument("--limit", type=int, default=100, help="email-provider limit: emails per period")
    parser.add_argument("--period", type=float, default=1.0, help="the limit's period in seconds")
    parser.add_argument("--batch", type=int, default=500, help="emails queued per transaction")
    parser.add_argument("--inline", type=int, default=200, help="emails sent inline with send_mail (baseline)")
    args = parser.parse_args(argv)
    setup_django()

    from django.conf import settings
    from django.core.mail import send_mail
    from django.db import transaction
    from django.test import override_settings

    from config.celery_app import app
    from emails.models import EmailMessage
    from emails.services import email_send
    from emails.smtp_catcher import SmtpCatcher
    from jobs.models import Job
    from jobs.public import RateLimiter
    from tests.emails.test_delivery_e2e import slot_granted_at
    from tests.jobs.test_ratelimit import max_in_any_window
    from tests.processes import CeleryProcess, database_url_for_subprocess, wait_for

    logs = Path(tempfile.mkdtemp(prefix="bench-emails-"))
    catcher = SmtpCatcher().start()
    workers: list[CeleryProcess] = []
    try:
        EmailMessage.objects.all().delete()
        Job.objects.all().delete()
        RateLimiter(name="email-provider", limit=args.limit, period=args.period).reset()
        smtp = {"EMAIL_HOST": catcher.host, "EMAIL_PORT": catcher.port}

        # Baseline: what sending inline (in the request) costs per email.
        with override_settings(EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend", **smtp):
            started = time.perf_counter()
            for n in range(args.inline):
                send_mail(f"Receipt {n}", "Thank you.", None, [f"inline{n}@example.com"])
            inline_ms = (time.perf_counter() - started) * 1000 / max(1, args.inline)
        catcher.reset()

        started = time.perf_counter()
        for start in range(0, args.count, args.batch):
            with transaction.atomic():
                for n in range(start, min(args.count, start + args.batch)):
                    email_send(template="export_ready", to=f"user{n}@example.com", key=f"bench:email:{n}:ready",
                               context={"export_id": str(n), "exports_url": "https://shop.example/exports/",
                                        "recipient_name": f"User {n}"})  # fmt: skip
        enqueue_ms = (time.perf_counter() - started) * 1000 / args.count

        env = {
            **os.environ, "DATABASE_URL": database_url_for_subprocess(), "REDIS_URL": settings.REDIS_URL,
            "LOG_LEVEL": "WARNING", "DEBUG": "0", "EMAIL_HOST": catcher.host, "EMAIL_PORT": str(catcher.port),
            "EMAIL_PROVIDER_RATE_LIMIT": str(args.limit), "EMAIL_PROVIDER_RATE_PERIOD": str(args.period),
        }  # fmt: skip
        workers = [
            CeleryProcess.worker(
                name=f"bench-emails-{i}",
                queues="emails",
                concurrency=PROCESSES_PER_WORKER,
                env=env,
                log_path=logs / f"worker{i}.log",
            )
            for i in range(WORKERS)
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.wait_ready(app=app)
        expected_seconds = args.count / args.limit * args.period
        catcher.wait_for_count(args.count, timeout=expected_seconds * 3 + 60)
        wait_for(lambda: not EmailMessage.objects.exclude(state="sent").exists(), timeout=60, interval=0.5,
                 message="every email row to say sent")  # fmt: skip
        time.sleep(1)  # anything sent twice arrives now
        received = catcher.messages
    finally:
        for worker in workers:
            worker.stop()
        catcher.stop()

    arrivals = sorted(int(message.received_at * 1000) for message in received)
    span = (arrivals[-1] - arrivals[0]) / 1000 if len(arrivals) > 1 else 0.0
    rate = (len(arrivals) - 1) / span if span else 0.0
    limit_per_second = args.limit / args.period
    duplicates = len(received) - len({message.message_id for message in received})
    not_sent = EmailMessage.objects.exclude(state="sent").count()
    granted = {email.message_id: slot_granted_at(email) for email in EmailMessage.objects.filter(state="sent")}
    delays = sorted(
        (message.received_at - granted[message.message_id]) * 1000
        for message in received
        if message.message_id in granted
    )
    print(f"{args.count} emails, limit {args.limit} per {args.period:g}s, {WORKERS} workers x {PROCESSES_PER_WORKER} "
          f"processes, {Path(settings.DATABASES['default']['NAME']).name} ({settings.DATABASES['default']['ENGINE']})")  # fmt: skip
    print(f"enqueue (email_send, batches of {args.batch}): {enqueue_ms:.2f} ms/email; "
          f"inline send_mail baseline: {inline_ms:.2f} ms/email ({inline_ms / enqueue_ms:.1f}x the enqueue)")  # fmt: skip
    print(f"sending: {span:.1f} s, {rate:.1f}/s achieved = {rate / limit_per_second:.3f} of the limit; "
          f"most in any 1 s at the server: {max_in_any_window(arrivals, 1000)}")  # fmt: skip
    if delays:
        print(f"slot to server: median {delays[len(delays) // 2]:.0f} ms, 95th percentile "
              f"{delays[int(len(delays) * 0.95)]:.0f} ms, most {delays[-1]:.0f} ms")  # fmt: skip
    print(f"received {len(received)}, duplicates {duplicates}, rows not sent {not_sent}")
    return 0 if duplicates == 0 and not_sent == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
