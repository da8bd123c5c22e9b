"""Write the schedules declared in code into django-celery-beat's tables (run on every deploy)."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from jobs.delivery.schedules import declared, schedules_sync


class Command(BaseCommand):
    help = (
        "Create and update django-celery-beat entries for the schedules declared in code. An entry an operator "
        "edited in the admin since the last sync is left as the operator made it; pausing is always the operator's."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="report what would change, change nothing")
        parser.add_argument("--take-code", nargs="+", default=[], metavar="NAME",
                            help="drop the operator's edits of these schedules for the code's definition "
                                 "(a pause stays)")  # fmt: skip

    def handle(self, *args: str, dry_run: bool, take_code: list[str], **options: Any) -> None:
        unknown = sorted(set(take_code) - set(declared()))
        if unknown:
            raise CommandError(f"--take-code: no schedule declared as {', '.join(unknown)}")
        report = schedules_sync(dry_run=dry_run, take_code=tuple(take_code))
        prefix = "would be " if dry_run else ""
        for label, names in (
            ("created", report.created),
            ("updated", report.updated),
            ("unchanged", report.unchanged),
            ("disabled (removed from code)", report.disabled_removed),
        ):
            if names:
                self.stdout.write(f"{prefix}{label}: {', '.join(names)}")
        for name in report.kept_operator_edits:
            self.stdout.write(
                self.style.WARNING(
                    f"kept operator's edit of {name!r}: it was changed in the admin since the last sync, so the "
                    f"code's definition was not applied (run with --take-code {name} to take the code's again; a "
                    f"pause stays)"
                )
            )
        self.stdout.write(self.style.SUCCESS(f"{len(declared())} declared schedule(s) checked"))
