"""Runbook operations on the dead-letter queue and single jobs, from a shell.

manage.py jobs_replay --dead [--type TYPE] [--dry-run]   replay every dead job (of a type) as new jobs
manage.py jobs_replay --retry JOB_ID [JOB_ID ...]        retry failed/dead jobs in place
manage.py jobs_replay --job JOB_ID [JOB_ID ...]          replay finished jobs as new jobs
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from jobs.core.audit import Action, audit_record
from jobs.core.lifecycle import job_retry
from jobs.foundation.exceptions import JobsError
from jobs.models import Job
from jobs.ops.operations import job_bulk_replay, job_bulk_replay_dead
from jobs.ops.selectors import job_get


class Command(BaseCommand):
    help = "Replay the dead-letter queue, or retry/replay given jobs. Every run is written to the audit log."

    def add_arguments(self, parser: CommandParser) -> None:
        target = parser.add_mutually_exclusive_group(required=True)
        target.add_argument("--dead", action="store_true", help="replay every dead job (see --type)")
        target.add_argument("--retry", nargs="+", metavar="JOB_ID", help="retry these failed or dead jobs in place")
        target.add_argument("--job", nargs="+", metavar="JOB_ID", help="replay these finished jobs as new jobs")
        parser.add_argument("--type", help="with --dead: only dead jobs of this type")
        parser.add_argument("--dry-run", action="store_true", help="list what would happen, change nothing")
        parser.add_argument("--actor", default="manage.py jobs_replay", help="name recorded in the audit log")

    def handle(
        self,
        *args: str,
        dead: bool,
        retry: list[str] | None,
        job: list[str] | None,
        type: str | None,
        dry_run: bool,
        actor: str,
        **options: Any,
    ) -> None:
        if dead:
            return self._replay_dead(job_type=type, dry_run=dry_run, actor=actor)
        ids = retry or job
        assert ids is not None  # the required group gives --dead, --retry or --job
        jobs = []
        for job_id in ids:
            try:
                jobs.append(job_get(job_id=job_id))
            except JobsError as error:
                raise CommandError(error.message) from error
        if dry_run:
            for item in jobs:
                self.stdout.write(f"would {'retry' if retry else 'replay'} {item.id} ({item.type}, {item.status})")
            return
        with transaction.atomic():
            if retry:
                done = [item for item in jobs if job_retry(job=item, audit=False)]
                for item in set(jobs) - set(done):
                    self.stderr.write(
                        f"skipped {item.id}: it is {item.status}, only failed or dead jobs can be retried"
                    )
                audit_record(actor=None, actor_label=actor, action=Action.RETRY, jobs=done)
                self.stdout.write(self.style.SUCCESS(f"retried {len(done)} job(s)"))
            else:
                try:
                    new = job_bulk_replay(jobs=jobs)
                except JobsError as error:
                    raise CommandError(error.message) from error
                audit_record(
                    actor=None,
                    actor_label=actor,
                    action=Action.REPLAY,
                    jobs=jobs,
                    detail={"new_job_ids": [n.id for n in new]},
                )
                for original, replay in zip(jobs, new, strict=True):
                    self.stdout.write(f"replayed {original.id} as {replay.id}")

    def _replay_dead(self, *, job_type: str | None, dry_run: bool, actor: str) -> None:
        dead = Job.objects.dead_letter()
        if job_type:
            dead = dead.filter(type=job_type)
        if dry_run:
            count = dead.count()
            self.stdout.write(f"would replay {count} dead job(s){f' of type {job_type}' if job_type else ''}")
            return

        def progress(done: int, total: int) -> None:
            self.stdout.write(f"replayed {done}/{total}")

        # Chunk by chunk, each committed and published on its own: after a failure, run it again
        # and it carries on with the jobs still in the dead-letter queue.
        try:
            new_jobs = job_bulk_replay_dead(job_type=job_type, actor=None, actor_label=actor, on_progress=progress)
        except JobsError as error:
            raise CommandError(error.message) from error
        self.stdout.write(self.style.SUCCESS(f"replayed {len(new_jobs)} dead job(s) as new jobs"))
