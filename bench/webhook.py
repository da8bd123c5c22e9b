"""The supplier webhook: time to refuse a signed event with too many product ids, vs accepting a small one.

    make bench BENCH_ARGS="webhook --ids 100000 --repeat 5"

Signs each body as the supplier would and posts it through Django's whole request path (middleware,
the view, ``webhook_accept``) in this process, ``--repeat`` times each, reporting the median and the
worst:
- refuse: one event naming ``--ids`` product ids (over SUPPLIER_WEBHOOK_MAX_PRODUCT_IDS), answered 422;
- accept: one event naming ``--small`` ids, a new event id each time (recorded, a fan-out job enqueued), 202;
- and, for reference, what validating the large event against the full schema costs (what the refusal
  cost before the ids were counted first; issue 22 measured 8.5 s for 100,000 ids).
A refusal should cost about what an acceptance does: parsing the body, not checking each id.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import statistics
import time
from typing import Any

from bench.harness import database_label, ensure_bench_database, setup_django

SECRET = "bench-webhook-secret"


def main(argv: list[str]) -> int:
    os.environ.setdefault("SUPPLIER_WEBHOOK_SECRET", SECRET)
    exit_code = ensure_bench_database("webhook", argv)
    if exit_code is not None:
        return exit_code
    parser = argparse.ArgumentParser(prog="bench webhook")
    parser.add_argument("--ids", type=int, default=100_000, help="product ids in the refused event")
    parser.add_argument("--small", type=int, default=10, help="product ids in the accepted event")
    parser.add_argument("--repeat", type=int, default=5, help="requests of each kind")
    args = parser.parse_args(argv)
    setup_django()
    import logging

    logging.getLogger("django.request").setLevel(logging.ERROR)  # a line per 422 is the point, not news
    from django.conf import settings
    from django.test import Client

    from jobs.public import schema_validate
    from sync.services import webhook_event_schema

    secret = settings.SUPPLIER_WEBHOOK_SECRET
    client = Client(HTTP_HOST="localhost")

    def post(event: dict[str, Any], expected: int) -> float:
        body = json.dumps(event).encode()
        at = int(time.time())
        signature = hmac.new(secret.encode(), f"{at}.".encode() + body, hashlib.sha256).hexdigest()
        started = time.perf_counter()
        response = client.post("/api/webhooks/supplier", data=body, content_type="application/json",
                               HTTP_X_SUPPLIER_SIGNATURE=f"t={at},v1={signature}")  # fmt: skip
        elapsed = time.perf_counter() - started
        if response.status_code != expected:
            raise SystemExit(f"expected {expected}, got {response.status_code}: {response.content[:300]!r}")
        return elapsed

    large = {"id": "evt-large", "type": "products.updated",
             "data": {"product_ids": [f"SUP-{n}" for n in range(args.ids)]}}  # fmt: skip
    post({"id": "evt-warm", "type": "products.updated", "data": {"product_ids": ["SUP-1"]}}, 202)  # warm-up
    refused = [post(large, 422) for _ in range(args.repeat)]
    accepted = [
        post({"id": f"evt-small-{time.time_ns()}", "type": "products.updated",
              "data": {"product_ids": [f"SUP-{n}" for n in range(args.small)]}}, 202)
        for _ in range(args.repeat)
    ]  # fmt: skip
    started = time.perf_counter()
    errors = schema_validate(large, webhook_event_schema(), path="")
    schema_seconds = time.perf_counter() - started

    body_kib = len(json.dumps(large)) / 1024
    print(f"{database_label()}: SUPPLIER_WEBHOOK_MAX_PRODUCT_IDS={settings.SUPPLIER_WEBHOOK_MAX_PRODUCT_IDS}")

    def line(label: str, times: list[float]) -> str:
        return f"  {label:44} median {statistics.median(times) * 1000:8.1f} ms   worst {max(times) * 1000:8.1f} ms"

    print(line(f"refuse {args.ids:,} ids ({body_kib:,.0f} KiB), 422", refused))
    print(line(f"accept {args.small} ids, 202", accepted))
    print(f"  {'full schema validation of the large event':44} {schema_seconds * 1000:8.1f} ms "
          f"({len(errors)} error(s); what each refusal cost before the count)")  # fmt: skip
    return 0
