"""Product exports by a real worker: CSV throughput vs PostgreSQL's COPY, peak RSS growth, XLSX and JSONL rows/s.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/jobplatform make bench BENCH_ARGS="exports --rows 1000000"

Fills the product table with ``--rows`` products (one INSERT ... SELECT generate_series on
PostgreSQL), starts one exports worker (1 process, file system storage in a temporary
MEDIA_ROOT), then for each format requests one export of every product and times it from the
job's start to its end (file written, hashed and stored). The baseline, on the same rows in
the same run: ``COPY (SELECT the same columns ORDER BY id) TO STDOUT WITH CSV HEADER`` into a
file through psycopg, i.e. what someone would otherwise script. The worker's memory is sampled
every 50 ms (its pool process's RSS); the figure is the peak minus its RSS when idle, warm
(after a small export had run). XLSX is capped at a sheet's 1,048,575 rows.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.harness import database_label, ensure_bench_database, setup_django

COLUMNS = ("supplier_id", "sku", "name", "price", "currency", "stock", "is_active", "supplier_updated_at",
           "last_changed_at")  # fmt: skip


def _fill_products(rows: int) -> None:
    from django.db import connection

    from sync.models import Product

    Product.objects.all().delete()
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"""
                INSERT INTO sync_product (supplier_id, sku, name, description, price, currency, stock,
                    supplier_active, is_active, supplier_updated_at, content_hash, first_seen_at, last_changed_at,
                    deactivated_at)
                SELECT 'P' || lpad(n::text, 8, '0'), 'SKU-' || n, 'Product ' || n || CASE WHEN n % 97 = 0
                    THEN ', "quoted" =formula' ELSE '' END, '', (n % 10000) / 100.0 + 1, 'EUR', n % 500, true,
                    n % 10 <> 0, now() - (n || ' seconds')::interval, md5(n::text), now(), now(), NULL
                FROM generate_series(1, {int(rows)}) AS n
            """)  # fmt: skip
            cursor.execute("ANALYZE sync_product")
        return
    from django.utils import timezone

    now = timezone.now()
    for start in range(0, rows, 5000):
        Product.objects.bulk_create([
            Product(supplier_id=f"P{n:08d}", sku=f"SKU-{n}", name=f"Product {n}", price=n % 10000 / 100 + 1,
                    currency="EUR", stock=n % 500, is_active=n % 10 != 0, supplier_updated_at=now, content_hash="x",
                    last_changed_at=now)
            for n in range(start, min(rows, start + 5000))
        ])  # fmt: skip


def _copy_baseline(path: Path, *, rendered: bool = False) -> float:
    """Seconds for COPY of the same columns and rows to a file (PostgreSQL only); ``rendered``: with the
    export's own SQL rendering (formula escaping, ISO 8601 instants), to separate database from Python time."""
    from django.db import connection

    sql = f"COPY (SELECT {', '.join(COLUMNS)} FROM sync_product ORDER BY id) TO STDOUT WITH CSV HEADER"
    if rendered:
        from exports.formats import copy_csv_statement
        from exports.sources import sources_all

        source = sources_all()["products"]
        queryset = source.queryset(user=None, filters={})
        assert queryset is not None  # the products source offers a values_list QuerySet
        select_sql, params = queryset.query.sql_with_params()
        assert not params
        sql = copy_csv_statement(columns=source.columns, select_sql=select_sql)
    started = time.perf_counter()
    with connection.cursor() as cursor, open(path, "wb") as out:
        if rendered:  # the session settings the export's rendering relies on, as the export sets them
            from exports.formats import COPY_SETTINGS

            for name, value in COPY_SETTINGS.items():
                cursor.execute("SELECT set_config(%s, %s, false)", [name, value])
        with cursor.cursor.copy(sql) as copy:
            for block in copy:
                out.write(block)
    return time.perf_counter() - started


class RssSampler:
    """The peak RSS of a worker's pool processes, sampled in a thread."""

    def __init__(self, pid: int) -> None:
        import psutil

        self.parent = psutil.Process(pid)
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def current(self) -> int:
        return max((child.memory_info().rss for child in self.parent.children(recursive=True)), default=0)

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            try:
                self.peak = max(self.peak, self.current())
            except Exception:  # a child may exit between listing and reading it
                continue

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def main(argv: list[str]) -> int:
    exit_code = ensure_bench_database("exports", argv)
    if exit_code is not None:
        return exit_code
    parser = argparse.ArgumentParser(prog="bench exports")
    parser.add_argument("--rows", type=int, default=1_000_000, help="products to export (the spec: 1,000,000)")
    parser.add_argument("--formats", default="csv,jsonl,xlsx")
    args = parser.parse_args(argv)
    setup_django()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.db import connection

    from config.celery_app import app
    from exports.models import Export
    from exports.services import ExportRequest, export_create
    from tests.processes import CeleryProcess, database_url_for_subprocess, wait_for

    workdir = Path(tempfile.mkdtemp(prefix="bench-exports-"))
    settings.MEDIA_ROOT = str(workdir / "media")
    started = time.perf_counter()
    _fill_products(args.rows)
    print(f"{database_label()}: {args.rows:,} products inserted in {time.perf_counter() - started:.1f}s")
    user, _ = get_user_model().objects.get_or_create(username="bench-exports")
    env = {**os.environ, "DATABASE_URL": database_url_for_subprocess(), "REDIS_URL": settings.REDIS_URL,
           "MEDIA_ROOT": settings.MEDIA_ROOT, "LOG_LEVEL": "WARNING", "DEBUG": "0",
           "EXPORTS_MAX_ROWS": str(max(args.rows, 10_000_000))}  # fmt: skip
    worker = CeleryProcess.worker(name="bench-exports", queues="exports", concurrency=1, env=env,
                                  log_path=workdir / "worker.log")  # fmt: skip
    results: list[tuple[str, int, float, int, int]] = []
    worker.start()
    try:
        worker.wait_ready(app=app)

        def run(format: str, filters: dict[str, Any]) -> Export:
            wanted = ExportRequest(source="products", format=format, filters=filters)
            export, _ = export_create(owner=user, wanted=wanted, enforce_limit=False)
            ended: Export = wait_for(lambda: Export.objects.filter(pk=export.pk, status__in=["succeeded", "failed"]).first(),
                                     timeout=3600, interval=0.2, message=f"the {format} export")  # fmt: skip
            return ended

        # Warm the worker (imports, connections) so the idle figure is the steady state, not a cold process.
        run("csv", {"updated_since": "2999-01-01T00:00:00Z"})
        sampler = RssSampler(worker.pid)
        idle = sampler.current()
        for format in args.formats.split(","):
            if format == "xlsx" and args.rows > 1_048_575:
                print(f"xlsx: skipped at {args.rows:,} rows (a sheet holds 1,048,575); run with --rows 1000000")
                continue
            sampler = RssSampler(worker.pid)
            with sampler:
                export = run(format, {})
            assert export.status == "succeeded", f"{format} export failed: {export.error_message}"
            assert export.finished_at is not None and export.started_at is not None  # set on success
            seconds = (export.finished_at - export.started_at).total_seconds()
            results.append((format, export.row_count, seconds, export.byte_size, sampler.peak - idle))
    finally:
        worker.stop()

    copy_seconds = None
    if connection.vendor == "postgresql":
        _copy_baseline(workdir / "warm.csv")  # same cache state as the exports had
        copy_seconds = _copy_baseline(workdir / "copy.csv")
        copy_bytes = (workdir / "copy.csv").stat().st_size
        rendered_seconds = _copy_baseline(workdir / "rendered.csv", rendered=True)
    print(f"worker idle RSS {idle / 2**20:.0f} MB (1 process)")
    print(f"{'format':8} {'rows':>10} {'seconds':>8} {'rows/s':>9} {'MB':>7} {'RSS growth MB':>14} {'vs COPY':>8}")
    for format, rows, seconds, size, growth in results:
        ratio = f"{copy_seconds / seconds:.2f}" if copy_seconds and format == "csv" else ""
        print(f"{format:8} {rows:>10,} {seconds:>8.2f} {rows / seconds:>9,.0f} {size / 2**20:>7.1f} "
              f"{growth / 2**20:>14.1f} {ratio:>8}")  # fmt: skip
    if copy_seconds:
        print(f"{'COPY':8} {args.rows:>10,} {copy_seconds:>8.2f} {args.rows / copy_seconds:>9,.0f} "
              f"{copy_bytes / 2**20:>7.1f} {'(in-process)':>14}")  # fmt: skip
        print(f"COPY with the export's SQL rendering (escaping, ISO instants): {rendered_seconds:.2f}s, "
              f"{args.rows / rendered_seconds:,.0f} rows/s: the database's share of the CSV export's time")  # fmt: skip
    return 0
