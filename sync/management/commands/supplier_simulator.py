"""Run the supplier simulator (sync/simulator.py) from Django: same options."""

import argparse
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from sync.simulator import add_arguments, config_from_args, serve


class Command(BaseCommand):
    help = "Serve the simulated, rate-limited supplier catalog over HTTP (for development, tests and benchmarks)."

    def add_arguments(self, parser: CommandParser) -> None:
        add_arguments(parser)

    def handle(self, *args: str, **options: Any) -> None:
        try:
            config = config_from_args(argparse.Namespace(**options))
        except (ValueError, TypeError) as exc:
            raise CommandError(str(exc)) from exc
        serve(config, host=options["host"], port=options["port"])
