"""Exports: requesting one, building its file in a job, signed download links, cancel, expiry and cleanup."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import logging
import os
import secrets
import tempfile
import time
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core import signing
from django.core.files import File
from django.core.files.storage import Storage, storages
from django.db import IntegrityError, connections, transaction
from django.utils import timezone

from jobs.public import (
    JobCancelled,
    JobsError,
    LockNotAcquired,
    RedisLock,
    job_cancel,
    job_enqueue,
    job_get,
    job_type_is_declared,
)

from .exceptions import (
    DownloadLinkExpired,
    DownloadLinkInvalid,
    ExportGone,
    ExportIdempotencyKeyConflict,
    ExportLimitReached,
    ExportNotFound,
    ExportNotReady,
    ExportRequestInvalid,
    ExportTooLarge,
)
from .formats import COPY_SETTINGS, WRITERS, copy_csv_statement, write_csv_blocks
from .models import Export
from .sources import ExportSource, source_check

logger = logging.getLogger("exports")

BUILD_JOB = "exports.build"
READY_JOB = "emails.export_ready"  # declared by the emails app, if installed; enqueued by name only
LINK_SALT = "exports.download"
PROGRESS_INTERVAL_SECONDS = 0.5
# Below this many rows (by the planner's estimate) the progress total is counted exactly: cheap at that size, and
# the estimate of a small or freshly filled table can be far off. Above it, counting would read every row once more.
EXACT_COUNT_BELOW = 100_000
S = Export.Status


@lru_cache(maxsize=4)
def _storage_for(config: str) -> Storage:
    return storages.create_storage(json.loads(config))


def exports_storage() -> Storage:
    """The storage exports are kept in (settings.EXPORTS_STORAGE: file system or S3-compatible)."""
    return _storage_for(json.dumps(settings.EXPORTS_STORAGE, sort_keys=True))


# ---------------------------------------------------------------------------
# Requesting an export
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ExportRequest:
    source: str
    format: str
    filters: dict[str, Any]
    gzip: bool = False
    bom: bool = False

    def same_as(self, export: Export) -> bool:
        return (export.source, export.format, export.filters, export.gzip, export.bom) == (
            self.source, self.format, self.filters, self.gzip, self.bom)  # fmt: skip


def export_request_check(*, user: Any, wanted: ExportRequest) -> None:
    """Raise a 422/403 ExportError unless ``user`` may make this export (source, format, options, filters)."""
    if wanted.format not in Export.Format.values:
        raise ExportRequestInvalid(f"'format' must be one of {list(Export.Format.values)}, got {wanted.format!r}",
                                   detail={"errors": [{"field": "format", "message": "unknown format"}]})  # fmt: skip
    if wanted.gzip and wanted.format == Export.Format.XLSX:
        raise ExportRequestInvalid("'gzip' does not apply to xlsx (it is already compressed)",
                                   detail={"errors": [{"field": "gzip", "message": "not with xlsx"}]})  # fmt: skip
    if wanted.bom and wanted.format != Export.Format.CSV:
        raise ExportRequestInvalid("'bom' applies to csv only",
                                   detail={"errors": [{"field": "bom", "message": "csv only"}]})  # fmt: skip
    source_check(name=wanted.source, user=user, filters=wanted.filters)


def export_create(
    *,
    owner: Any,
    wanted: ExportRequest,
    idempotency_key: str | None = None,
    correlation_id: str | None = None,
    rerun_of: Export | None = None,
    enforce_limit: bool = True,
) -> tuple[Export, bool]:
    """Record an export and enqueue the job building it; returns ``(export, created)``.

    With ``idempotency_key`` the same request answers the original export again (``created`` False);
    the same key for a different request is a 422. Over EXPORTS_MAX_ACTIVE_PER_USER queued or running
    exports raises ExportLimitReached (429, Retry-After). Enqueued on commit: a rollback leaves nothing.
    """
    export_request_check(user=owner, wanted=wanted)
    if (existing := _export_holding_key(owner=owner, wanted=wanted, idempotency_key=idempotency_key)) is not None:
        return existing, False
    # One creation per user at a time, so two simultaneous requests cannot both pass the limit.
    lock = RedisLock(name=f"exports:owner:{owner.pk}:create", ttl=15)
    if not lock.acquire(blocking=True, timeout=5):
        raise LockNotAcquired("another export request of yours is being recorded; retry in a moment",
                              detail={"retry_after": 1})  # fmt: skip
    try:
        # Asked again under the lock: a request with the same key may have created it while this one waited.
        if (existing := _export_holding_key(owner=owner, wanted=wanted, idempotency_key=idempotency_key)) is not None:
            return existing, False
        if enforce_limit:
            active = Export.objects.filter(owner=owner, status__in=Export.ACTIVE).count()
            limit = settings.EXPORTS_MAX_ACTIVE_PER_USER
            if active >= limit:
                retry_after = settings.EXPORTS_LIMIT_RETRY_AFTER_SECONDS
                raise ExportLimitReached(
                    f"you already have {active} export(s) queued or running (limit {limit}); "
                    f"retry after one finished, in about {retry_after}s",
                    detail={"active": active, "limit": limit}, headers={"Retry-After": str(retry_after)},
                )  # fmt: skip
        try:
            with transaction.atomic():
                export = Export.objects.create(
                    owner=owner, source=wanted.source, format=wanted.format, filters=wanted.filters,
                    gzip=wanted.gzip, bom=wanted.bom, idempotency_key=idempotency_key or "", rerun_of=rerun_of,
                )  # fmt: skip
                job = job_enqueue(job_type=BUILD_JOB, payload={"export_id": export.pk}, owner=owner,
                                  idempotency_key=f"exports:export:{export.pk}:build",
                                  correlation_id=correlation_id).job  # fmt: skip
                export.job_id = job.id
                export.save(update_fields=["job_id"])
        except IntegrityError:
            # The lock is a courtesy with a lifetime, and inside a caller's transaction the holder commits only
            # after releasing it: the key's unique constraint decides. Losing it is a replay, not a fault.
            existing = _export_holding_key(owner=owner, wanted=wanted, idempotency_key=idempotency_key)
            if existing is None:
                raise  # another integrity error: a fault to see, not a replay to answer
            return existing, False
    finally:
        lock.release()
    return export, True


def _export_holding_key(*, owner: Any, wanted: ExportRequest, idempotency_key: str | None) -> Export | None:
    """The owner's export recorded under ``idempotency_key`` (None if none, or no key); a 422 if it was
    recorded for a different request."""
    if not idempotency_key:
        return None
    existing = Export.objects.filter(owner=owner, idempotency_key=idempotency_key).first()
    if existing is not None and not wanted.same_as(existing):
        raise ExportIdempotencyKeyConflict(
            f"Idempotency-Key {idempotency_key!r} was already used for export {existing.pk} with other "
            "options; use a new key for a different request",
            detail={"export_id": existing.pk, "idempotency_key": idempotency_key},
        )
    return existing


def export_rerun(*, export: Export, correlation_id: str | None = None) -> Export:
    """Build the same export again as a new export (an operator's action: the per-user limit does not apply)."""
    wanted = ExportRequest(source=export.source, format=export.format, filters=export.filters, gzip=export.gzip,
                           bom=export.bom)  # fmt: skip
    rerun, _ = export_create(owner=export.owner, wanted=wanted, rerun_of=export, enforce_limit=False,
                             correlation_id=correlation_id)  # fmt: skip
    return rerun


# ---------------------------------------------------------------------------
# Building the file (the exports.build job)
# ---------------------------------------------------------------------------


def _file_name(export: Export) -> str:
    extension = export.format + (".gz" if export.gzip else "")
    return f"{export.source}-{export.created_at:%Y%m%d-%H%M%S}-{export.pk}.{extension}"


def _prefix(export: Export) -> str:
    return f"exports/{export.pk}/"


def _delete_objects(*, export: Export) -> int:
    """Delete every stored object of ``export`` (its file, and leftovers of killed attempts)."""
    storage = exports_storage()
    deleted = 0
    try:
        folders, files = storage.listdir(_prefix(export))
    except FileNotFoundError:
        return 0
    for folder in folders:
        _, inner = storage.listdir(_prefix(export) + folder)
        for name in inner:
            storage.delete(f"{_prefix(export)}{folder}/{name}")
            deleted += 1
    for name in files:
        storage.delete(_prefix(export) + name)
        deleted += 1
    return deleted


class _Progress:
    """Rows written, reported to the export row and the job at most every PROGRESS_INTERVAL_SECONDS."""

    def __init__(self, *, export: Export, estimated: int, report: Callable[..., None]) -> None:
        self.export, self.estimated, self.report = export, estimated, report
        self.last = 0.0

    def __call__(self, rows: int) -> None:
        if rows > settings.EXPORTS_MAX_ROWS:
            raise ExportTooLarge(f"the export passed EXPORTS_MAX_ROWS ({settings.EXPORTS_MAX_ROWS:,} rows); narrow "
                                 "the filters")  # fmt: skip
        now = time.monotonic()
        if now - self.last < PROGRESS_INTERVAL_SECONDS:
            return
        self.last = now
        percent = min(99, int(100 * rows / self.estimated)) if self.estimated else 0
        Export.objects.filter(pk=self.export.pk, status=S.RUNNING).update(progress=percent, row_count=rows)
        # The job's progress write also checks for a cancel request (raises JobCancelled).
        self.report(percent, f"{rows:,} of about {self.estimated:,} rows")


def export_build(*, export_id: int, job_id: str, progress: Callable[..., None]) -> dict[str, Any]:
    """Write the export's file from its source, store it, and mark the export ready (the exports.build job).

    Each attempt starts from scratch into a fresh object name and sets ``storage_key`` only once
    the whole file is stored, so a killed attempt never leaves a downloadable partial file.
    A cancel request (raised by ``progress``) stops the export and deletes what it wrote.
    """
    export = Export.objects.select_related("owner").get(pk=export_id)
    if export.status not in Export.ACTIVE:
        return {"export_id": export.pk, "status": export.status, "skipped": "already finished"}
    Export.objects.filter(pk=export.pk).update(status=S.RUNNING, started_at=timezone.now(), job_id=job_id,
                                               progress=0, row_count=0, error_code="", error_message="")  # fmt: skip
    export.status = S.RUNNING
    try:
        return _export_write(export=export, progress=progress)
    except JobCancelled:
        export_mark_cancelled(export_id=export.pk)
        raise
    except Exception as error:
        export_record_retry(export_id=export.pk, error=error)
        raise


def _export_write(*, export: Export, progress: Callable[..., None]) -> dict[str, Any]:
    _delete_objects(export=export)  # a previous attempt's leftovers
    source = source_check(name=export.source, user=export.owner, filters=export.filters)
    queryset = source.queryset(user=export.owner, filters=export.filters)
    estimated = _rows_estimate(export=export, source=source, queryset=queryset)
    Export.objects.filter(pk=export.pk).update(rows_estimated=estimated)
    progress(0, f"0 of about {estimated:,} rows", force=True)
    on_rows = _Progress(export=export, estimated=estimated, report=progress)
    storage = exports_storage()
    file_name = _file_name(export)
    # A fresh name per attempt: a retry never writes over (or next to) a half-uploaded object.
    key = f"{_prefix(export)}{secrets.token_hex(8)}/{file_name}"
    with _local_file(storage=storage, key=key) as (local, local_path):
        hashed = _HashingWriter(local)  # the digest and size of the stored bytes, without reading them again
        # Level 6: nearly level 9's size at a third of its time, for files of hundreds of megabytes.
        target: Any = gzip.GzipFile(fileobj=hashed, mode="wb", mtime=0, compresslevel=6) if export.gzip else hashed
        copy = _copy_statement(queryset=queryset, source=source) if export.format == Export.Format.CSV else None
        if copy is not None:
            alias, statement, params = copy
            # A COPY holds its connection until it ends, and progress is written through the default one: the
            # COPY gets a connection of its own. Inside a transaction (which another connection could not see)
            # it shares this one, and progress is reported once it ended.
            separate = not connections[alias].in_atomic_block
            blocks = _copy_blocks(alias, statement, params, separate=separate)
            try:
                rows = write_csv_blocks(blocks=blocks, out=target, bom=export.bom,
                                        on_rows=on_rows if separate else lambda n: None)  # fmt: skip
            finally:
                blocks.close()  # a cancel mid-COPY ends the COPY and its connection now, not at garbage collection
            on_rows(rows)
        else:
            options = {"bom": export.bom} if export.format == Export.Format.CSV else {}
            rows = WRITERS[export.format](columns=source.columns, out=target, on_rows=on_rows, **options,
                                          rows=source.rows(user=export.owner, filters=export.filters))  # fmt: skip
        if export.gzip:
            target.close()
        local.flush()
        digest, size = hashed.sha256.hexdigest(), hashed.size
        progress(99, f"{rows:,} rows written; storing the file", force=True)
        key = storage.save(key, _stored_file(local, file_name, path=local_path))
    now = timezone.now()
    with transaction.atomic():
        finished = Export.objects.filter(pk=export.pk, status=S.RUNNING).update(
            status=S.SUCCEEDED,
            progress=100,
            row_count=rows,
            byte_size=size,
            sha256=digest,
            storage_key=key,
            file_name=file_name,
            finished_at=now,
            expires_at=now + timedelta(seconds=settings.EXPORTS_RETENTION_SECONDS),
        )
        if finished and job_type_is_declared(READY_JOB):
            # What is ready, in the words of the page: the email names it (the id means nothing to its owner).
            ready = {"export_id": export.pk, "user_id": export.owner_id, "what": source.title, "rows": rows,
                     "format": export.format.upper() + (".gz" if export.gzip else "")}  # fmt: skip
            job_enqueue(job_type=READY_JOB, payload=ready, idempotency_key=f"exports:export:{export.pk}:ready")
    if not finished:  # cancelled or expired by an operator while it was being stored
        storage.delete(key)
        return {"export_id": export.pk, "status": Export.objects.get(pk=export.pk).status}
    logger.info("export %s ready: %s rows, %s bytes, %s", export.pk, rows, size, key)
    return {"export_id": export.pk, "status": S.SUCCEEDED, "rows": rows, "bytes": size, "sha256": digest}


def _rows_estimate(*, export: Export, source: ExportSource, queryset: Any) -> int:
    """The progress total: PostgreSQL's planner estimate for a source with a queryset when it expects
    EXACT_COUNT_BELOW rows or more (no second pass over the rows), else the source's count."""
    if queryset is not None and connections[queryset.db].vendor == "postgresql":
        explained = json.loads(queryset.explain(format="json"))  # [{"Plan": ...}]: one statement's plan
        planned = int((explained[0] if isinstance(explained, list) else explained)["Plan"]["Plan Rows"])
        if planned >= EXACT_COUNT_BELOW:
            return planned
    return source.count(user=export.owner, filters=export.filters)


@contextmanager
def _local_file(*, storage: Storage, key: str) -> Iterator[tuple[Any, str | None]]:
    """A temporary file to build the export in, and its path when the storage can move it into place.

    On the file system it is a hidden ``.partial-*`` file in the folder ``key`` goes to (same file system,
    so storing it is a rename, not a copy of hundreds of megabytes); only ``storage_key``, set once it is
    stored, makes a file downloadable, and a killed attempt's leftover goes with the next attempt's (or
    the give-up's) ``_delete_objects``. Elsewhere (S3) it is an anonymous temporary file, uploaded.
    """
    try:
        final_path = storage.path(key)
    except NotImplementedError:
        with tempfile.TemporaryFile(prefix="export-") as anonymous:
            yield anonymous, None
        return
    os.makedirs(os.path.dirname(final_path), exist_ok=True)
    descriptor, path = tempfile.mkstemp(prefix=".partial-", dir=os.path.dirname(final_path))
    try:
        with os.fdopen(descriptor, "w+b") as local:
            yield local, path
    finally:
        try:
            os.unlink(path)  # left only when the build failed: once stored, the file was moved away
        except FileNotFoundError:
            pass


def _stored_file(local: Any, name: str, *, path: str | None) -> File[bytes]:
    """The built file for ``Storage.save``: with its path FileSystemStorage moves it (``temporary_file_path``),
    without one the storage reads it from the start."""
    if path is None:
        local.seek(0)
        return File(local, name)
    return _MovableFile(local, name, path=path)


if TYPE_CHECKING:
    _BinaryFile = File[bytes]
else:  # Django's File is generic only in its stubs
    _BinaryFile = File


class _MovableFile(_BinaryFile):
    def __init__(self, file: Any, name: str, *, path: str) -> None:
        super().__init__(file, name)
        self._path = path

    def temporary_file_path(self) -> str:
        return self._path


class _HashingWriter(io.BufferedIOBase):
    """Writes through to ``out``, keeping the SHA-256 and size of what passed."""

    def __init__(self, out: Any) -> None:
        super().__init__()
        self._out = out
        self.sha256 = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.sha256.update(data)
        self.size += len(data)
        return int(self._out.write(data))


def _copy_statement(*, queryset: Any, source: ExportSource) -> tuple[str, str, tuple[Any, ...]] | None:
    """``(database alias, COPY statement, params)`` when PostgreSQL can write this CSV itself, else None."""
    if queryset is None or connections[queryset.db].vendor != "postgresql":
        return None
    select_sql, params = queryset.query.sql_with_params()
    statement = copy_csv_statement(columns=source.columns, select_sql=select_sql)
    return (queryset.db, statement, tuple(params)) if statement else None


def _copy_blocks(
    alias: str, statement: str, params: tuple[Any, ...], *, separate: bool
) -> Generator[bytes, None, None]:
    """COPY's output in blocks, streamed from the server (memory stays flat), on a connection of its own if asked.

    The statement's rendering needs COPY_SETTINGS: set for the session on a connection of its own (closed after),
    or for the caller's transaction on a shared one, and put back once the COPY ended.
    """
    connection = connections.create_connection(alias) if separate else connections[alias]
    try:
        with connection.cursor() as cursor:
            saved: dict[str, str] = {}
            if not separate:
                cursor.execute("SELECT " + ", ".join(["current_setting(%s)"] * len(COPY_SETTINGS)), list(COPY_SETTINGS))
                saved = dict(zip(COPY_SETTINGS, cursor.fetchone(), strict=True))
            _set_config(cursor, COPY_SETTINGS, local=not separate)
            with cursor.cursor.copy(statement, params or None) as copy:
                yield from copy
            if saved:
                _set_config(cursor, saved, local=True)
    finally:
        if separate:
            connection.close()


def _set_config(cursor: Any, values: dict[str, str], *, local: bool) -> None:
    """Set PostgreSQL settings for the session, or (``local``) for the current transaction only."""
    cursor.execute("SELECT " + ", ".join(["set_config(%s, %s, %s)"] * len(values)),
                   [arg for name, value in values.items() for arg in (name, value, local)])  # fmt: skip


def export_mark_cancelled(*, export_id: int) -> bool:
    """The export's job stopped on a cancel request: record it (its objects are deleted)."""
    changed = Export.objects.filter(pk=export_id, status__in=Export.ACTIVE).update(
        status=S.CANCELLED, finished_at=timezone.now(), error_code="cancelled", error_message="cancelled on request"
    )
    _delete_objects(export=Export(pk=export_id))
    return bool(changed)


def export_record_retry(*, export_id: int, error: BaseException) -> None:
    """An attempt failed and the job will decide whether to retry: the export waits, with the error shown."""
    code = getattr(error, "code", type(error).__name__)
    Export.objects.filter(pk=export_id, status=S.RUNNING).update(
        status=S.QUEUED, error_code=str(code)[:64], error_message=str(error)[:5000]
    )


def export_give_up(*, export_id: int, error_code: str, error_message: str) -> None:
    """The export's job ended failed or dead: the export failed, and whatever it stored goes."""
    Export.objects.filter(pk=export_id, status__in=Export.ACTIVE).update(
        status=S.FAILED, finished_at=timezone.now(), error_code=error_code[:64], error_message=error_message[:5000]
    )
    _delete_objects(export=Export(pk=export_id))


# ---------------------------------------------------------------------------
# Cancel, delete, expire, clean up
# ---------------------------------------------------------------------------


def export_cancel_or_delete(*, export: Export, actor: Any) -> str:
    """Cancel a queued export, ask a running one to stop, or delete a finished export's file.

    Returns what happened: ``cancelled``, ``cancel_requested``, ``deleted`` or ``unchanged``.
    """
    if export.is_active and export.job_id:
        try:
            outcome = job_cancel(job=job_get(job_id=export.job_id), actor=actor)
        except JobsError:  # the job just finished; the export follows in a moment
            export.refresh_from_db()
            return export_cancel_or_delete(export=export, actor=actor) if not export.is_active else "unchanged"
        if outcome == "cancelled":
            export_mark_cancelled(export_id=export.pk)
            return "cancelled"
        return "cancel_requested"
    if export.status == S.SUCCEEDED:
        export_expire(export=export)
        return "deleted"
    return "unchanged"


def export_expire(*, export: Export) -> bool:
    """Delete a ready export's file now (retention, the owner's request or an operator); links then answer 410."""
    if not Export.objects.filter(pk=export.pk, status=S.SUCCEEDED).update(status=S.EXPIRED,
                                                                            expired_at=timezone.now()):  # fmt: skip
        return False
    _delete_objects(export=export)
    export.refresh_from_db()
    return True


def exports_cleanup(*, now: datetime | None = None, limit: int = 1000) -> int:
    """Expire the ready exports past their retention (the hourly exports.cleanup job). Returns how many."""
    now = now or timezone.now()
    due = list(Export.objects.filter(status=S.SUCCEEDED, expires_at__lte=now).order_by("expires_at")[:limit])
    return sum(export_expire(export=export) for export in due)


# ---------------------------------------------------------------------------
# Signed, expiring download links
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class DownloadLink:
    path: str
    expires_at: datetime


def download_link_issue(*, export: Export) -> DownloadLink:
    """A link to the file, bound to the export, its owner and its content; valid EXPORTS_LINK_MAX_AGE_SECONDS."""
    if export.status != S.SUCCEEDED:
        raise ExportNotReady(f"export {export.pk} is {export.status}; a link is issued once it succeeded")
    token = signing.dumps({"e": export.pk, "u": export.owner_id, "h": export.sha256[:16]}, salt=LINK_SALT)
    expires_at = timezone.now() + timedelta(seconds=settings.EXPORTS_LINK_MAX_AGE_SECONDS)
    return DownloadLink(path=f"/exports/download/{token}", expires_at=expires_at)


def download_link_open(*, token: str, user: Any) -> Export:
    """The export a download link names, if ``user`` is its owner and the link is intact, current and its file kept.

    Tampered or someone else's: 403. Expired link or deleted file: 410. Export deleted: 404.
    """
    try:
        claims = signing.loads(token, salt=LINK_SALT, max_age=settings.EXPORTS_LINK_MAX_AGE_SECONDS)
    except signing.SignatureExpired:
        raise DownloadLinkExpired("this download link has expired; ask for a new one (GET /api/exports/<id>)") from None
    except signing.BadSignature:
        raise DownloadLinkInvalid("this download link is not valid (altered or truncated)") from None
    if not getattr(user, "is_authenticated", False) or claims.get("u") != user.pk:
        raise DownloadLinkInvalid("this download link belongs to another user; log in as its owner")
    export = Export.objects.filter(pk=claims.get("e"), owner_id=user.pk).first()
    if export is None:
        raise ExportNotFound("the export behind this link no longer exists")
    if export.status == S.EXPIRED or (export.status == S.SUCCEEDED and export.sha256[:16] != claims.get("h")):
        raise ExportGone(f"the file of export {export.pk} was deleted; request a new export")
    if export.status != S.SUCCEEDED:
        raise ExportNotReady(f"export {export.pk} is {export.status}")
    return export


def export_local_path(*, export: Export) -> str | None:
    """The file's path when the storage is the local file system, else None (then redirect to a presigned URL)."""
    try:
        return exports_storage().path(export.storage_key)
    except NotImplementedError:
        return None


def export_presigned_url(*, export: Export, content_disposition: str) -> str:
    """A short-lived URL of the object in S3-compatible storage that downloads it under its own file name."""
    # S3Storage.url takes expire and parameters; django-storages has no types, so mypy sees only Storage.url.
    return exports_storage().url(export.storage_key, expire=settings.EXPORTS_PRESIGNED_URL_SECONDS,  # type: ignore[call-arg]
                                 parameters={"ResponseContentDisposition": content_disposition})  # fmt: skip
