"""Benchmarks: `make bench BENCH_ARGS="NAME [options]"` runs bench/NAME.py (see bench/README.md)."""
