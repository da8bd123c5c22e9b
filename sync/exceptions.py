"""Errors of the product sync, classified for the jobs platform's retry policy."""

from jobs.public import PermanentJobError, RateLimited, TransientJobError


class SupplierTransientError(TransientJobError):
    """The supplier timed out, refused the connection or answered 5xx: retrying later can succeed."""

    code = "supplier_unavailable"


class SupplierPermanentError(PermanentJobError):
    """The supplier refused the request itself (4xx other than 429): the same request will fail again."""

    code = "supplier_refused"


class SupplierRateLimited(RateLimited):
    """The supplier answered 429/503 with Retry-After; every worker now waits that long."""

    code = "supplier_rate_limited"


class SyncRunInProgress(PermanentJobError):
    """Another sync run is still running; runs never overlap."""

    code = "sync_run_in_progress"
