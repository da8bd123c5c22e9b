"""Product sync: runs, pages, upserts, deactivation, webhook fan-out and freshness notifications."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from jobs.public import (
    JobsError,
    JsonRefused,
    PermanentJobError,
    job_bulk_enqueue,
    job_enqueue,
    job_get,
    schema_validate,
    strict_json_loads,
)

from .client import SupplierClient
from .exceptions import SyncPageClosed, SyncRunInProgress
from .models import Product, SyncPage, SyncRun, WebhookEvent

logger = logging.getLogger("sync")

PAGE_JOB = "sync.fetch_page"
PRODUCT_JOB = "sync.fetch_product"
FRESHNESS_JOB = "sync.notify_freshness"
WEBHOOK_FAN_OUT_JOB = "sync.webhook_fan_out"
FAN_OUT_BATCH = 500
PRODUCT_FIELDS = ("sku", "name", "description", "price", "currency", "stock", "supplier_active", "supplier_updated_at")


# ---------------------------------------------------------------------------
# Validation and upsert
# ---------------------------------------------------------------------------


def product_clean(record: dict[str, Any]) -> tuple[dict[str, Any] | None, str]:
    """The record as Product fields, or (None, reason) when it fails validation."""
    if not isinstance(record, dict):
        return None, "record is not an object"
    supplier_id = record.get("id")
    if not isinstance(supplier_id, str) or not supplier_id or len(supplier_id) > 64:
        return None, "missing or invalid id"
    name = record.get("name")
    if not isinstance(name, str) or not name.strip():
        return None, "missing name"
    try:
        price = Decimal(str(record.get("price")))
    except InvalidOperation:
        return None, f"price {record.get('price')!r} is not a number"
    if not price.is_finite() or price < 0:
        return None, f"price {record.get('price')!r} is not a non-negative amount"
    stock = record.get("stock")
    if not isinstance(stock, int) or isinstance(stock, bool) or stock < 0:
        return None, f"stock {stock!r} is not a non-negative integer"
    currency = record.get("currency")
    if not isinstance(currency, str) or len(currency) != 3:
        return None, f"currency {currency!r} is not a 3-letter code"
    updated = parse_datetime(record["updated_at"]) if isinstance(record.get("updated_at"), str) else None
    fields = {
        "supplier_id": supplier_id,
        "sku": str(record.get("sku") or "")[:64],
        "name": name.strip()[:255],
        "description": str(record.get("description") or ""),
        "price": price.quantize(Decimal("0.01")),
        "currency": currency.upper(),
        "stock": stock,
        "supplier_active": bool(record.get("active", True)),
        "supplier_updated_at": updated,
    }
    fields["content_hash"] = hashlib.blake2b(
        json.dumps({k: str(v) for k, v in fields.items()}, sort_keys=True).encode(), digest_size=16
    ).hexdigest()
    return fields, ""


@dataclass
class UpsertCounts:
    created: int = 0
    updated: int = 0
    unchanged: int = 0


def products_upsert(*, records: list[dict[str, Any]]) -> UpsertCounts:
    """Insert new products and update changed ones; an unchanged record writes nothing."""
    counts = UpsertCounts()
    if not records:
        return counts
    now = timezone.now()
    by_id = {record["supplier_id"]: record for record in records}
    existing = {p.supplier_id: p for p in Product.objects.filter(supplier_id__in=by_id)}
    to_create, to_update = [], []
    for supplier_id, record in by_id.items():
        product = existing.get(supplier_id)
        if product is None:
            to_create.append(Product(**record, last_changed_at=now))
        elif product.content_hash != record["content_hash"] or not product.is_active:
            for name, value in record.items():
                setattr(product, name, value)
            product.is_active, product.deactivated_at, product.last_changed_at = True, None, now
            to_update.append(product)
        else:
            counts.unchanged += 1
    # ignore_conflicts: a webhook job may insert the same product concurrently; it is then an update next time.
    Product.objects.bulk_create(to_create, batch_size=500, ignore_conflicts=True)
    if to_update:
        Product.objects.bulk_update(
            to_update,
            [*PRODUCT_FIELDS, "content_hash", "is_active", "deactivated_at", "last_changed_at"],
            batch_size=500,
        )
    counts.created, counts.updated = len(to_create), len(to_update)
    return counts


# ---------------------------------------------------------------------------
# Runs and pages
# ---------------------------------------------------------------------------


def sync_run_for_job(*, job_id: str, full: bool) -> SyncRun:
    """The run driven by job ``job_id``, created on the job's first attempt.

    Raises SyncRunInProgress when another run is running: the database allows one.
    """
    run = SyncRun.objects.filter(job_id=job_id).first()
    if run is not None:
        return run
    for _ in range(2):
        try:
            with transaction.atomic():
                return SyncRun.objects.create(job_id=job_id, full=full, page_size=settings.SUPPLIER_PAGE_SIZE)
        except IntegrityError:
            # The running run may belong to a job that ended without ending it (cancelled while it
            # waited between polls, say): end it, then try once more.
            if not sync_run_end_orphaned():
                break
    running = SyncRun.objects.filter(status=SyncRun.Status.RUNNING).first()
    raise SyncRunInProgress(
        f"sync run {running.pk if running else '?'} is still running; a new run starts after it finishes",
        detail={"running_run": running.pk if running else None},
    )


def sync_run_end_orphaned(*, reason: str = "") -> list[int]:
    """End (as failed) every running run whose driving job has ended or no longer exists.

    ``sync.run``'s give-up hook calls this when its job fails or dies, before or during its
    fan-out, so the run does not block every later sync until an operator abandons it. A run
    whose job still lives (running, or waiting between polls) is left alone. Returns the ids ended.
    """
    ended = []
    for run in SyncRun.objects.filter(status=SyncRun.Status.RUNNING):
        try:
            job = job_get(job_id=run.job_id)
        except JobsError:  # JobNotFound: pruned, or never committed
            job = None
        if job is not None and not job.is_finished:
            continue
        error = f"its job {run.job_id} ended ({job.status if job else 'gone'})" + (f": {reason}" if reason else "")
        if _sync_run_fail(run_id=run.pk, error=error[:1000]):
            ended.append(run.pk)
    if ended:
        logger.warning("ended sync run(s) %s: their jobs ended without finishing them", ended)
    return ended


def _sync_run_fail(*, run_id: int, error: str) -> bool:
    """running -> failed, its pending pages failed with ``error``; False if it was no longer running."""
    with transaction.atomic():
        run = SyncRun.objects.select_for_update().get(pk=run_id)
        if run.status != SyncRun.Status.RUNNING:
            return False
        failed = run.pages.filter(status=SyncPage.Status.PENDING).update(status=SyncPage.Status.FAILED, error=error)
        SyncRun.objects.filter(pk=run_id).update(
            status=SyncRun.Status.FAILED, finished_at=timezone.now(), pages_failed=F("pages_failed") + failed
        )
    return True


def sync_run_fan_out(*, run: SyncRun, client: SupplierClient | None = None) -> None:
    """Fetch page 1 (learning the catalog's size), then enqueue one job per remaining page.

    Safe to repeat: page jobs have idempotency keys, page rows are created once.
    """
    if run.total_pages == 0:
        body = (client or SupplierClient()).fetch_page(page=1, page_size=run.page_size)
        total_pages = max(1, body["total_pages"])
        with transaction.atomic():
            SyncPage.objects.bulk_create(
                [SyncPage(run=run, number=n) for n in range(1, total_pages + 1)], ignore_conflicts=True, batch_size=1000
            )
            SyncRun.objects.filter(pk=run.pk, total_pages=0).update(
                total_pages=total_pages, catalog_total=body.get("total") or 0
            )
        run.refresh_from_db()
        sync_page_store(run=run, number=1, body=body)
    pending = list(run.pages.filter(status=SyncPage.Status.PENDING, number__gt=1).values_list("number", flat=True))
    for start in range(0, len(pending), FAN_OUT_BATCH):
        batch = pending[start : start + FAN_OUT_BATCH]
        with transaction.atomic():
            job_bulk_enqueue(
                job_type=PAGE_JOB,
                payloads=[{"run_id": run.pk, "page": number} for number in batch],
                idempotency_keys=[f"sync-run:{run.pk}:page:{number}" for number in batch],
            )


def sync_page_fetch(*, run_id: int, number: int, client: SupplierClient | None = None) -> str:
    """Fetch, validate and store one page, unless it is already done (a resumed run never refetches).

    Raises SyncPageClosed when the page already failed or its run is over (a replayed page job of a
    finished run): nothing happens, and the job must not say it succeeded.
    """
    page = SyncPage.objects.select_related("run").get(run_id=run_id, number=number)
    if page.status == SyncPage.Status.FAILED or page.run.status != SyncRun.Status.RUNNING:
        raise SyncPageClosed(
            f"page {number} of sync run {run_id} is {page.status} and the run is {page.run.status}: nothing was "
            "fetched. A finished run is not reopened; start a new run (sync.run) to fetch its pages again",
            detail={"run_id": run_id, "page": number, "page_status": page.status, "run_status": page.run.status},
        )
    if page.status != SyncPage.Status.PENDING:
        return f"page {number} already {page.status}"
    body = (client or SupplierClient()).fetch_page(page=number, page_size=page.run.page_size)
    return sync_page_store(run=page.run, number=number, body=body)


def sync_page_store(*, run: SyncRun, number: int, body: dict[str, Any]) -> str:
    cleaned, rejections, seen = [], [], []
    for record in body.get("products", []):
        fields, reason = product_clean(record)
        raw_id = record.get("id") if isinstance(record, dict) else None
        if isinstance(raw_id, str):
            seen.append(raw_id)
        if fields is None:
            rejections.append({"supplier_id": raw_id, "reason": reason})
        else:
            cleaned.append(fields)
    with transaction.atomic():
        # Only the first to finish this page records it (a duplicate delivery changes nothing).
        claimed = SyncPage.objects.filter(run=run, number=number, status=SyncPage.Status.PENDING).update(
            status=SyncPage.Status.DONE, fetched_at=timezone.now(), rejected=len(rejections),
            rejections=rejections, seen_ids=seen,
        )  # fmt: skip
        if not claimed:
            return f"page {number} was stored by another delivery"
        counts = products_upsert(records=cleaned)
        SyncPage.objects.filter(run=run, number=number).update(
            created=counts.created, updated=counts.updated, unchanged=counts.unchanged
        )
        SyncRun.objects.filter(pk=run.pk).update(
            pages_done=F("pages_done") + 1, products_created=F("products_created") + counts.created,
            products_updated=F("products_updated") + counts.updated,
            products_unchanged=F("products_unchanged") + counts.unchanged,
            records_rejected=F("records_rejected") + len(rejections),
        )  # fmt: skip
    if rejections:
        logger.warning(
            "sync run %s page %s: %d record(s) rejected, e.g. %s", run.pk, number, len(rejections), rejections[0]
        )
    sync_run_finish_if_done(run_id=run.pk)
    return f"page {number}: {counts.created} created, {counts.updated} updated, {counts.unchanged} unchanged, {len(rejections)} rejected"


def sync_page_give_up(*, run_id: int, number: int, error: str) -> None:
    """A page's job ended failed or dead: record it, so the run can finish as partial."""
    with transaction.atomic():
        if SyncPage.objects.filter(run_id=run_id, number=number, status=SyncPage.Status.PENDING).update(
            status=SyncPage.Status.FAILED, error=error[:5000]
        ):
            SyncRun.objects.filter(pk=run_id).update(pages_failed=F("pages_failed") + 1)
    sync_run_finish_if_done(run_id=run_id)


def sync_run_finish_if_done(*, run_id: int) -> SyncRun | None:
    """Close the run once every page is done or failed (exactly once, by a conditional update)."""
    run = SyncRun.objects.get(pk=run_id)
    if (
        run.status != SyncRun.Status.RUNNING
        or not run.total_pages
        or run.pages_done + run.pages_failed < run.total_pages
    ):
        return None
    complete = run.pages_failed == 0
    status = SyncRun.Status.COMPLETED if complete else SyncRun.Status.PARTIAL
    with transaction.atomic():
        if not SyncRun.objects.filter(pk=run_id, status=SyncRun.Status.RUNNING).update(
            status=status, finished_at=timezone.now()
        ):
            return None
        # Vanished products are marked inactive only when the run saw the whole catalog.
        deactivated = products_deactivate_unseen(run=run) if complete and run.full else 0
        SyncRun.objects.filter(pk=run_id).update(products_deactivated=deactivated)
    run.refresh_from_db()
    logger.info("sync run %s finished %s: %s", run.pk, run.status, run)
    if run.products_created or run.products_updated or run.products_deactivated:
        freshness_notify(reason=f"sync run {run.pk}", product_ids=None)
    return run


def products_deactivate_unseen(*, run: SyncRun, chunk: int = 1000) -> int:
    seen: set[str] = set()
    for ids in run.pages.values_list("seen_ids", flat=True):
        seen.update(ids)
    active = Product.objects.filter(is_active=True).values_list("supplier_id", flat=True)
    missing = [supplier_id for supplier_id in active.iterator(chunk_size=5000) if supplier_id not in seen]
    now = timezone.now()
    for start in range(0, len(missing), chunk):
        Product.objects.filter(supplier_id__in=missing[start : start + chunk]).update(
            is_active=False, deactivated_at=now, last_changed_at=now
        )
    return len(missing)


def product_sync_one(*, supplier_id: str, client: SupplierClient | None = None) -> str:
    """Refresh one product from the supplier (webhook fan-out); gone upstream → inactive."""
    record = (client or SupplierClient()).fetch_product(supplier_id=supplier_id)
    if record is None:
        now = timezone.now()
        gone = Product.objects.filter(supplier_id=supplier_id, is_active=True).update(
            is_active=False, deactivated_at=now, last_changed_at=now
        )
        if gone:
            freshness_notify(reason=f"product {supplier_id} removed", product_ids=[supplier_id])
        return "gone upstream"
    fields, reason = product_clean(record)
    if fields is None:
        return f"rejected: {reason}"
    counts = products_upsert(records=[fields])
    if counts.created or counts.updated:
        freshness_notify(
            reason=f"product {supplier_id} changed", product_ids=[supplier_id], version=fields["content_hash"]
        )
        return "changed"
    return "unchanged"


# ---------------------------------------------------------------------------
# Freshness hooks: tell frontends their pages are stale
# ---------------------------------------------------------------------------


def freshness_notify(*, reason: str, product_ids: list[str] | None, version: str = "") -> int:
    """Enqueue one notification job per configured hook URL. Returns how many."""
    hooks = settings.SYNC_FRESHNESS_HOOKS
    if not hooks:
        return 0
    scope = "products" if product_ids else "catalog"
    payload = {"reason": reason, "scope": scope, "product_ids": product_ids or []}
    with transaction.atomic():
        for index in range(len(hooks)):
            key = f"freshness:{index}:{scope}:{','.join(product_ids or [])}:{version or reason}"[:255]
            job_enqueue(job_type=FRESHNESS_JOB, payload={**payload, "hook": index}, idempotency_key=key)
    return len(hooks)


def freshness_call(*, hook_index: int, payload: dict[str, Any]) -> int:
    """POST the notification to hook ``hook_index`` with its secret; raises for the retry policy."""
    import http.client
    from urllib.parse import urlsplit

    from .exceptions import SupplierPermanentError, SupplierTransientError

    hook = settings.SYNC_FRESHNESS_HOOKS[hook_index]
    url = urlsplit(hook["url"])
    body = json.dumps({k: v for k, v in payload.items() if k != "hook"}).encode()
    connection_class = http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection
    if url.hostname is None:
        raise SupplierPermanentError(f"freshness hook {hook['url']} has no host")
    connection = connection_class(url.hostname, url.port, timeout=settings.SUPPLIER_CONNECT_TIMEOUT)
    try:
        connection.request("POST", url.path or "/", body=body, headers={
            "Content-Type": "application/json", "Authorization": f"Bearer {hook['secret']}",
        })  # fmt: skip
        status = connection.getresponse().status
    except OSError as exc:
        raise SupplierTransientError(f"freshness hook {hook['url']} unreachable: {exc}") from exc
    finally:
        connection.close()
    if status >= 500 or status == 429:
        raise SupplierTransientError(f"freshness hook {hook['url']} answered {status}; will retry")
    if status >= 400:
        raise SupplierPermanentError(f"freshness hook {hook['url']} refused the call with {status}")
    return status


# ---------------------------------------------------------------------------
# Inbound webhooks
# ---------------------------------------------------------------------------


class WebhookRejected(Exception):
    def __init__(self, message: str, *, code: str, status: int, detail: dict[str, Any] | None = None):
        super().__init__(message)
        self.message, self.code, self.status, self.detail = message, code, status, detail or {}


@dataclass(frozen=True)
class WebhookOutcome:
    event_id: str
    duplicate: bool
    products: int
    fan_out_job_id: str | None = None


@dataclass(frozen=True)
class WebhookSignature:
    timestamp: int
    signatures: tuple[str, ...]


@dataclass(frozen=True)
class WebhookEventData:
    event_id: str
    event_type: str
    product_ids: tuple[str, ...]
    payload: dict[str, Any]


SIGNATURE_FORMAT = "t=<unix seconds>,v1=<64 hex digits of HMAC-SHA256(secret, t + '.' + body)>"
# Bounded by the columns they are stored in (WebhookEvent.event_id/event_type, Product.supplier_id).
EVENT_ID_MAX_LENGTH = WebhookEvent._meta.get_field("event_id").max_length
EVENT_TYPE_MAX_LENGTH = WebhookEvent._meta.get_field("event_type").max_length
PRODUCT_ID_MAX_LENGTH = Product._meta.get_field("supplier_id").max_length
_MAX_TIMESTAMP_DIGITS = 12  # 12 digits reach year 33658: anything longer is not a timestamp
_BIGINT_MAX = 2**63 - 1


def _id_schema(max_length: int | None) -> dict[str, Any]:
    return {"oneOf": [{"type": "string", "minLength": 1, "maxLength": max_length, "pattern": "^[^\\x00-\\x1f]+$"},
                      {"type": "integer", "minimum": 0, "maximum": _BIGINT_MAX,
                       "description": "written as an integer: 1, not 1.0 or 1e0 (refused)"}]}  # fmt: skip


def webhook_event_schema() -> dict[str, Any]:
    """The JSON Schema (2020-12) of a supplier event: validated here and published in the OpenAPI document."""
    return {
        "type": "object",
        "required": ["id", "type"],
        "properties": {
            "id": {**_id_schema(EVENT_ID_MAX_LENGTH), "description": "Unique per event; redeliveries repeat it."},
            "type": {"type": "string", "minLength": 1, "maxLength": EVENT_TYPE_MAX_LENGTH,
                     "pattern": "^[A-Za-z0-9_.:-]+$", "examples": ["products.updated"]},
            "data": {"type": "object", "properties": {"product_ids": {
                "type": "array", "maxItems": settings.SUPPLIER_WEBHOOK_MAX_PRODUCT_IDS,
                "items": _id_schema(PRODUCT_ID_MAX_LENGTH),
                "description": "Products to refresh; one sync.fetch_product job each (duplicates once).",
            }}},
        },
    }  # fmt: skip


def webhook_signature_parse(header: str) -> WebhookSignature:
    """Read ``X-Supplier-Signature`` once, strictly; raises WebhookRejected (401) saying what was expected.

    Empty segments (a trailing comma) and unknown keys (a future ``v2``) are skipped; ``t`` must
    appear exactly once (two mean two headers were joined) as ASCII digits, each ``v1`` as 64 hex digits.
    """
    timestamps: list[str] = []
    signatures: list[str] = []
    for segment in header.split(","):
        key, equals, value = segment.strip().partition("=")
        if not key and not equals:
            continue
        if not equals:
            raise _bad_signature(f"segment {segment.strip()[:40]!r} is not key=value")
        if key == "t":
            timestamps.append(value)
        elif key == "v1":
            signatures.append(value.lower())
    if len(timestamps) != 1 or not signatures:
        found = "no t=" if not timestamps else "t= twice (one header expected)" if len(timestamps) > 1 else "no v1="
        raise _bad_signature(found)
    timestamp = timestamps[0]
    if not (0 < len(timestamp) <= _MAX_TIMESTAMP_DIGITS and timestamp.isascii() and timestamp.isdigit()):
        raise _bad_signature(f"t must be unix seconds (1 to {_MAX_TIMESTAMP_DIGITS} ASCII digits)")
    for signature in signatures:
        if len(signature) != 64 or not all(char in "0123456789abcdef" for char in signature):
            raise _bad_signature("v1 must be 64 hex digits")
    return WebhookSignature(timestamp=int(timestamp), signatures=tuple(signatures))


def _bad_signature(problem: str) -> WebhookRejected:
    return WebhookRejected(f"malformed X-Supplier-Signature ({problem}); expected {SIGNATURE_FORMAT}",
                           code="invalid_signature", status=401, detail={"expected": SIGNATURE_FORMAT})  # fmt: skip


def webhook_verify(*, body: bytes, signature_header: str, now: float | None = None) -> WebhookSignature:
    """Check ``X-Supplier-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "t.body">``; return it parsed.

    Raises WebhookRejected for a missing/malformed header, a stale timestamp (replays of
    old deliveries) or a wrong signature; the comparison is constant-time.
    """
    secret = settings.SUPPLIER_WEBHOOK_SECRET
    if not secret:
        raise WebhookRejected(
            "webhooks are switched off: set SUPPLIER_WEBHOOK_SECRET", code="webhooks_disabled", status=503
        )
    parsed = webhook_signature_parse(signature_header)
    age = (now if now is not None else time.time()) - parsed.timestamp
    if abs(age) > settings.SUPPLIER_WEBHOOK_TOLERANCE_SECONDS:
        raise WebhookRejected(
            f"signature timestamp is {age:.0f}s off (tolerance {settings.SUPPLIER_WEBHOOK_TOLERANCE_SECONDS}s): stale or replayed",
            code="stale_signature", status=401,
        )  # fmt: skip
    expected = hmac.new(secret.encode(), f"{parsed.timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    # Every v1 is compared (a supplier rotating secrets signs with both), each in constant time.
    if not any([hmac.compare_digest(expected, signature) for signature in parsed.signatures]):  # noqa: C419 - all compared
        raise WebhookRejected("signature does not match the body", code="invalid_signature", status=401)
    return parsed


def webhook_event_parse(body: bytes) -> WebhookEventData:
    """The event in ``body``, or WebhookRejected (422) naming each field and what was expected."""
    try:
        # Numbers as written: an id must be an integer literal, and 1.0 would otherwise arrive as 1.
        event = strict_json_loads(body, floats_as_written=True)
    except JsonRefused as refused:
        raise WebhookRejected(f"the event is not acceptable JSON: {refused.message}", code="invalid_event",
                              status=422, detail={"errors": [{"field": refused.field or "body",
                                                              "message": refused.message}]}) from None  # fmt: skip
    # Counted before the schema, which checks every id against every alternative before it reports
    # maxItems: 100,000 ids took seconds only to be refused. The answer is the schema's own.
    errors = _too_many_product_ids(event) or [
        *(error.as_dict() for error in schema_validate(event, webhook_event_schema(), path="")),
        *_ids_not_written_as_integers(event),
    ]
    if errors:
        raise WebhookRejected(
            "the event does not match the webhook schema (see /api/openapi.json): "
            + "; ".join(f"{error['field']}: {error['message']}" for error in errors[:5]),
            code="invalid_event", status=422, detail={"errors": errors[:50]},
        )  # fmt: skip
    product_ids = (event.get("data") or {}).get("product_ids", [])
    return WebhookEventData(event_id=str(event["id"]), event_type=event["type"],
                            product_ids=tuple(dict.fromkeys(str(pid) for pid in product_ids)), payload=event)  # fmt: skip


def _product_ids_of(event: Any) -> list[Any] | None:
    data = event.get("data") if isinstance(event, dict) else None
    product_ids = data.get("product_ids") if isinstance(data, dict) else None
    return product_ids if isinstance(product_ids, list) else None


def _too_many_product_ids(event: Any) -> list[dict[str, str]]:
    limit = settings.SUPPLIER_WEBHOOK_MAX_PRODUCT_IDS
    product_ids = _product_ids_of(event) or []
    if len(product_ids) <= limit:
        return []
    return [{"field": "data.product_ids", "message": f"expected at most {limit} items, got {len(product_ids)}"}]


def _ids_not_written_as_integers(event: Any) -> list[dict[str, str]]:
    """Ids written ``1.0`` or ``1e0``: JSON Schema calls them integers, the webhook's contract does not
    (is ``1.0`` event ``"1"`` or ``"1.0"``?). Other fractions already fail the schema."""
    ids = {"id": event.get("id")} if isinstance(event, dict) else {}
    ids.update((f"data.product_ids[{index}]", value) for index, value in enumerate(_product_ids_of(event) or []))
    return [{"field": field, "message": f"expected an integer written without a fraction or exponent, or a "
             f"string; got {value!r}"} for field, value in ids.items()
            if isinstance(value, float) and value.is_integer()]  # fmt: skip


def webhook_accept(*, body: bytes, signature_header: str) -> WebhookOutcome:
    """Verify, parse strictly, and record the event once; its fan-out to product jobs is a job of its own.

    The request only inserts the event and one ``sync.webhook_fan_out`` job in one transaction, so a
    large event answers fast and cannot be half fanned out. A redelivery (same event id) is told
    apart from any other integrity error, which is not swallowed.
    """
    signature = webhook_verify(body=body, signature_header=signature_header)
    event = webhook_event_parse(body)
    try:
        with transaction.atomic():
            record = WebhookEvent.objects.create(
                event_id=event.event_id, event_type=event.event_type,
                signed_at=datetime.fromtimestamp(signature.timestamp, tz=UTC), payload=event.payload,
            )  # fmt: skip
            fan_out = job_enqueue(job_type=WEBHOOK_FAN_OUT_JOB, payload={"event": record.pk},
                                  idempotency_key=f"sync:webhook-event:{record.pk}:fan-out")  # fmt: skip
    except IntegrityError:
        if WebhookEvent.objects.filter(event_id=event.event_id).exists():
            # The same event id again (a redelivery, or a replay within the tolerance): nothing more to do.
            return WebhookOutcome(event_id=event.event_id, duplicate=True, products=0)
        raise  # anything else is a fault to see (500, logged), not a duplicate to drop silently
    return WebhookOutcome(event_id=event.event_id, duplicate=False, products=len(event.product_ids),
                          fan_out_job_id=fan_out.job.id)  # fmt: skip


def webhook_fan_out(*, event_pk: int) -> int:
    """Enqueue one product job per id of a recorded event, in batches; safe to repeat (keys per product)."""
    record = WebhookEvent.objects.get(pk=event_pk)
    product_ids = webhook_event_parse(json.dumps(record.payload).encode()).product_ids
    for start in range(0, len(product_ids), FAN_OUT_BATCH):
        batch = product_ids[start : start + FAN_OUT_BATCH]
        with transaction.atomic():
            job_bulk_enqueue(
                job_type=PRODUCT_JOB,
                payloads=[{"supplier_id": pid, "event_id": record.event_id} for pid in batch],
                idempotency_keys=[f"webhook:{record.event_id}:{pid}" for pid in batch],
            )
    WebhookEvent.objects.filter(pk=record.pk).update(jobs_enqueued=len(product_ids))
    return len(product_ids)


def sync_run_abandon(*, run_id: int) -> SyncRun:
    """Give up a running run (operator's call): pending pages become failed, the run failed, so a new one can start."""
    if not _sync_run_fail(run_id=run_id, error="abandoned by an operator"):
        status = SyncRun.objects.get(pk=run_id).status
        raise PermanentJobError(f"sync run {run_id} is {status}, not running; nothing to abandon")
    return SyncRun.objects.get(pk=run_id)
