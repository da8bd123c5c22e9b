#!/usr/bin/env python
import os
import sys
from pathlib import Path

# Written by `make run` while it runs (devtools/devstack.py): the embedded Redis's address and the
# database it uses, so commands run beside it reach the same ones. Variables already set win.
RUN_ENV_FILE = Path(os.environ.get("DEVSTACK_RUN_ENV_FILE") or Path(__file__).resolve().parent / "var" / "run.env")


def use_running_stack() -> None:
    try:
        lines = RUN_ENV_FILE.read_text().splitlines()
    except FileNotFoundError:
        return
    values = dict(line.split("=", 1) for line in lines if "=" in line)
    try:
        os.kill(int(values.pop("DEVSTACK_PID", "0")), 0)  # a file left by a stack that is gone is ignored
    except (ValueError, ProcessLookupError, PermissionError):
        return
    for key, value in values.items():
        os.environ.setdefault(key, value)


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
    use_running_stack()
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
