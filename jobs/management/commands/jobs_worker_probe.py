"""Liveness/readiness probe of one Celery worker, for container healthchecks."""

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from jobs.ops.workerprobe import worker_probe


class Command(BaseCommand):
    help = (
        "Exit 0 when worker NODE answers a ping and it can reach the database and the broker; "
        "exit 1 naming what failed otherwise."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--node", required=True, help="the worker's -n name, e.g. default@%%h (%%h: this host)")
        parser.add_argument("--timeout", type=float, default=3.0, help="seconds to wait for the ping reply")

    def handle(self, *args: str, node: str, timeout: float, **options: Any) -> None:
        result = worker_probe(node=node, timeout=timeout)
        self.stdout.write(json.dumps(result.as_dict()))
        if not result.ok:
            raise CommandError(
                "; ".join(f"{name}: {reason}" for name, reason in result.checks.items() if reason), returncode=1
            )
