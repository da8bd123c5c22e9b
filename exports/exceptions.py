"""Errors of the exports app: one base, small named subclasses, each with its HTTP status."""

from __future__ import annotations

from typing import Any

from jobs.public import ApiError, PermanentJobError


class ExportError(ApiError):
    """Base of every exports error; ``status`` is what the API answers (``api_view`` renders the one error shape)."""

    code = "export_error"
    status = 400
    retryable = False

    def __init__(
        self, message: str, *, detail: dict[str, Any] | None = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message, code=type(self).code, status=type(self).status, detail=detail,
                         retryable=type(self).retryable, headers=headers)  # fmt: skip


class ExportRequestInvalid(ExportError):
    """The request names an unknown source or format, or its filters break the source's schema."""

    code = "invalid_export"
    status = 422


class ExportIdempotencyKeyConflict(ExportError):
    """The Idempotency-Key was already used for a different export request (same code as /api/jobs answers)."""

    code = "idempotency_key_conflict"
    status = 422


class ExportSourceForbidden(ExportError):
    """The source (or the asked-for scope, e.g. every user's jobs) is for staff only."""

    code = "forbidden"
    status = 403


class ExportNotFound(ExportError):
    """No such export, or not the caller's."""

    code = "export_not_found"
    status = 404


class ExportLimitReached(ExportError):
    """The caller already has as many exports running as allowed; retry once one finished."""

    code = "export_limit_reached"
    status = 429
    retryable = True


class ExportNotReady(ExportError):
    """The export has no file to download (yet, or any more)."""

    code = "export_not_ready"
    status = 409


class ExportGone(ExportError):
    """The file was deleted (retention or by request); a new export makes a new file."""

    code = "export_gone"
    status = 410


class DownloadLinkInvalid(ExportError):
    """The signed download link was tampered with or belongs to someone else."""

    code = "invalid_link"
    status = 403


class DownloadLinkExpired(ExportError):
    """The signed download link is past its lifetime; ask the API for a new one."""

    code = "link_expired"
    status = 410


class ExportSourceBroken(PermanentJobError):
    """A source named in EXPORTS_SOURCES cannot be loaded or produced a row of the wrong shape."""

    code = "export_source_broken"


class ExportTooLarge(PermanentJobError):
    """The export has more rows than its format or EXPORTS_MAX_ROWS allows; retrying cannot help."""

    code = "export_too_large"
