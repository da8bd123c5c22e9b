"""Run the supplier simulator (sync/simulator.py) from Django: same options."""

from django.core.management.base import BaseCommand

from sync.simulator import add_arguments, config_from_args, serve


class Command(BaseCommand):
    help = "Serve the simulated, rate-limited supplier catalog over HTTP (for development, tests and benchmarks)."

    def add_arguments(self, parser):
        add_arguments(parser)

    def handle(self, *args, **options):
        import argparse

        namespace = argparse.Namespace(**options)
        serve(config_from_args(namespace), host=namespace.host, port=namespace.port)
