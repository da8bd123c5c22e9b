"""Runbook: abandon a stuck sync run so a new one can start."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from jobs.public import JobsError
from sync.models import SyncRun
from sync.services import sync_run_abandon


class Command(BaseCommand):
    help = "Mark a running sync run failed (its pending pages too); page jobs still queued then find nothing to do."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("run_id", type=int)

    def handle(self, *args: str, run_id: int, **options: Any) -> None:
        try:
            run = sync_run_abandon(run_id=run_id)
        except SyncRun.DoesNotExist:
            raise CommandError(f"no sync run {run_id}") from None
        except JobsError as error:
            raise CommandError(error.message) from None
        self.stdout.write(self.style.SUCCESS(f"abandoned: {run}"))
