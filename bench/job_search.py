"""The admin's job search (words in the error, payload fields) on 1,000,000 jobs: p50/p95 with and without its index.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/jobplatform make bench BENCH_ARGS="job_search --rows 1000000"

PostgreSQL only: the figure is about its trigram index (``jobs_search_trgm_idx``); SQLite has none and
scans. Fills ``jobs_job`` with ``--rows`` jobs in one ``INSERT ... SELECT generate_series`` (85 % succeeded
with no error, the rest failed or dead with one of a dozen error codes and messages naming hosts, pages
and SKUs; every payload has a SKU, a page and an export id), then builds the index as the migration does
(``CREATE INDEX CONCURRENTLY``, timed). Each search term is then asked ``--repeat`` times, in shuffled
order, through the admin's job list exactly as an operator does (a logged-in GET of
``/admin/jobs/job/?q=...``: the search, the page of 100 jobs, the filtered count, the rendering), and
its SQL alone (``job_search``'s first page and the admin paginator's count, capped at 10,000). The baseline, same rows, same run: the same
requests with the index dropped (``--baseline-repeat`` times each, they scan the table).
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable
from typing import Any

from bench.harness import database_label, ensure_bench_database, setup_django

ERRORS = [  # (error_code, message template): {n} is the row number, {h} a host, {p} a page
    ("supplier_unavailable", "Supplier answered 503 Service Unavailable for page {p}"),
    ("supplier_timeout", "Supplier did not answer page {p} within 30 s"),
    ("sync_page_closed", "The sync run of page {p} was closed before it was fetched"),
    ("smtp_timeout", "SMTP server {h} timed out after 30 s"),
    ("smtp_refused", "SMTP server {h} refused the recipient: 550 mailbox unavailable"),
    ("export_too_large", "Export {n} has more rows than a sheet holds"),
    ("ConnectionResetError", "connection reset by peer while talking to {h}"),
    ("KeyError", "KeyError: 'price' in the supplier's product SKU-{n}"),
    ("rate_limited", "The supplier's rate limit was hit; postponed"),
    ("validation_failed", "payload field 'sku' is not a SKU: got {n}"),
    ("webhook_rejected", "The webhook signature did not match for delivery {n}"),
    ("lock_unavailable", "Another run holds the lock export:{n}"),
]
# (label, term): from one match to several percent of the table, and a miss.
TERMS = [
    ("a host in the message", "mx17.example.net"),
    ("an error code", "smtp_refused"),
    ("two words of a message", "signature delivery"),
    ("a common word", "supplier"),
    ("a SKU in the payload (1 row)", "SKU-654321"),
    ("a payload field (1 row)", "export_id=424242"),
    ("a payload field and an error word", "page=77 unavailable"),
    ("no match", "zzyzx-not-there"),
]


def _fill_jobs(rows: int) -> float:
    from django.db import connection

    codes = "ARRAY[" + ", ".join(f"'{code}'" for code, _ in ERRORS) + "]"
    messages = "ARRAY[" + ", ".join("'" + message.replace("'", "''") + "'" for _, message in ERRORS) + "]"
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("DROP INDEX IF EXISTS jobs_search_trgm_idx")
        cursor.execute("TRUNCATE jobs_job CASCADE")
        cursor.execute(f"""
            INSERT INTO jobs_job (id, type, queue, status, attempt, max_attempts, payload, payload_fingerprint,
                correlation_id, progress, progress_message, error_code, error_message, error_traceback,
                cancel_requested, worker, celery_task_id, created_at, enqueued_at, started_at, finished_at,
                updated_at)
            SELECT 'bench' || lpad(n::text, 17, '0'), 'tests.record', 'default', s.status, 1, 3,
                jsonb_build_object('sku', 'SKU-' || n, 'page', n % 1000, 'export_id', n),
                '', 'req-' || n, 100, '', s.code, s.message, '', false, 'bench@host', '',
                now() - (n || ' seconds')::interval, now() - (n || ' seconds')::interval,
                now() - (n || ' seconds')::interval, now() - (n || ' seconds')::interval, now()
            FROM generate_series(1, {int(rows)}) AS n
            CROSS JOIN LATERAL (
                SELECT CASE WHEN n % 100 < 85 THEN 'succeeded' WHEN n % 100 < 97 THEN 'failed' ELSE 'dead' END
                           AS status,
                       CASE WHEN n % 100 < 85 THEN '' ELSE ({codes})[1 + n % 12] END AS code,
                       CASE WHEN n % 100 < 85 THEN '' ELSE replace(replace(replace(({messages})[1 + n % 12],
                           '{{n}}', n::text), '{{p}}', (n % 1000)::text),
                           '{{h}}', 'mx' || (n % 997) || '.example.net') END AS message
            ) AS s
        """)  # noqa: S608 - every value is ours
    return time.perf_counter() - started


def _build_index() -> float:
    """The migration's index, built the way it does (CONCURRENTLY), through its own operation's SQL."""
    from django.db import connection

    from jobs.models import Job

    index = next(index for index in Job._meta.indexes if index.name == "jobs_search_trgm_idx")
    started = time.perf_counter()
    with connection.schema_editor(atomic=False) as editor:
        editor.add_index(Job, index, concurrently=True)  # type: ignore[call-arg]
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE jobs_job")
    return time.perf_counter() - started


def _timings(ask: Callable[[str], Any], terms: list[tuple[str, str]], repeat: int) -> dict[str, list[float]]:
    order = [term for term in terms for _ in range(repeat)]
    random.Random(29).shuffle(order)
    found: dict[str, list[float]] = {label: [] for label, _ in terms}
    for label, term in order:
        started = time.perf_counter()
        ask(term)
        found[label].append((time.perf_counter() - started) * 1000)
    return found


def _p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20, method="inclusive")[18] if len(values) > 1 else values[0]


def main(argv: list[str]) -> int:
    exit_code = ensure_bench_database("job_search", argv)
    if exit_code is not None:
        return exit_code
    parser = argparse.ArgumentParser(prog="bench job_search")
    parser.add_argument("--rows", type=int, default=1_000_000, help="jobs in the table (the issue: 1,000,000)")
    parser.add_argument("--repeat", type=int, default=20, help="times each term is searched with the index")
    parser.add_argument("--baseline-repeat", type=int, default=3, help="times each term is searched without it")
    args = parser.parse_args(argv)
    setup_django()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client

    from jobs.admin.bases import EstimatedCountPaginator
    from jobs.models import Job
    from jobs.ops.selectors import job_search

    if connection.vendor != "postgresql":
        print("job_search measures PostgreSQL's trigram index: set DATABASE_URL to a PostgreSQL database")
        return 2
    print(f"database: {database_label()}, {args.rows:,} jobs")
    print(f"fill (INSERT ... SELECT generate_series): {_fill_jobs(args.rows):.1f} s")
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE jobs_job")
    get_user_model().objects.create_superuser("bench", "bench@example.com", "bench")
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    client = Client()
    client.login(username="bench", password="bench")

    def admin_list(term: str) -> None:
        response = client.get("/admin/jobs/job/", {"q": term})
        assert response.status_code == 200, response.status_code

    def sql_only(term: str) -> None:
        found = job_search(jobs=Job.objects.order_by("-created_at"), term=term)
        list(found[:100])
        EstimatedCountPaginator(found, 100).count  # noqa: B018 -- the admin's count, capped like the page's

    # Without the index first (the migration's state before 0010), then with it.
    terms = TERMS
    baseline = {name: _timings(ask, terms, args.baseline_repeat) for name, ask in
                (("admin", admin_list), ("sql", sql_only))}  # fmt: skip
    print(f"index build (CREATE INDEX CONCURRENTLY): {_build_index():.1f} s")
    for _label, term in terms[:1]:  # warm the index's pages once, as a running server has them
        sql_only(term)
    indexed = {name: _timings(ask, terms, args.repeat) for name, ask in (("admin", admin_list), ("sql", sql_only))}
    # The plan after the repeats (prepared by now: server-side binding keeps a query run 5 times).
    plan = job_search(jobs=Job.objects.order_by("-created_at"), term=terms[0][1])[:100].explain()
    print("plan of the first term's page:", " / ".join(line.strip() for line in plan.splitlines() if "Index" in line))
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM jobs_job")
        print(f"rows: {cursor.fetchone()[0]:,}")
        counts = {label: job_search(jobs=Job.objects.all(), term=term).count() for label, term in terms}

    print(f"\n{'term':40} {'matches':>8}  admin page ms p50 / p95   SQL ms p50 / p95   no index: admin p50, SQL p50")
    for label, term in terms:
        admin_ms, sql_ms = indexed["admin"][label], indexed["sql"][label]
        base_admin, base_sql = baseline["admin"][label], baseline["sql"][label]
        print(f"{label:40} {counts[label]:>8,}  {statistics.median(admin_ms):8.1f} / {_p95(admin_ms):7.1f}"
              f"   {statistics.median(sql_ms):7.1f} / {_p95(sql_ms):7.1f}"
              f"   {statistics.median(base_admin):8.1f}, {statistics.median(base_sql):8.1f}"
              f"   ({term})")  # fmt: skip
    every_admin = [ms for values in indexed["admin"].values() for ms in values]
    every_base = [ms for values in baseline["admin"].values() for ms in values]
    print(f"\nall terms, admin page: p95 {_p95(every_admin):.1f} ms with the index (goal <= 200 ms), "
          f"{_p95(every_base):.1f} ms without it: {_p95(every_base) / _p95(every_admin):.1f}x")  # fmt: skip
    return 0
