"""`python -m bench NAME [options]`: run one benchmark; with no name, list them."""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path

NOT_BENCHMARKS = {"harness", "jobtasks", "tasks", "__main__", "drainprobe", "stockapp", "stock_settings", "loadgen"}


def available() -> list[str]:
    folder = Path(__file__).parent
    return sorted(info.name for info in pkgutil.iter_modules([str(folder)]) if info.name not in NOT_BENCHMARKS)


def main(argv: list[str]) -> int:
    names = available()
    if not argv or argv[0] in {"-h", "--help"}:
        print('usage: python -m bench NAME [options]   (make bench BENCH_ARGS="NAME [options]")')
        for name in names:
            doc = (importlib.import_module(f"bench.{name}").__doc__ or "").strip().splitlines()[0]
            print(f"  {name:18} {doc}")
        return 0
    if argv[0] not in names:
        print(f"unknown benchmark {argv[0]!r}; available: {', '.join(names)}", file=sys.stderr)
        return 2
    status: int = importlib.import_module(f"bench.{argv[0]}").main(argv[1:])
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
