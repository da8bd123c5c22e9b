"""Errors of the product sync, classified for the jobs platform's retry policy."""

from jobs.public import JobCancelled, PermanentJobError, RateLimited, TransientJobError


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


class SyncPageClosed(JobCancelled):
    """A page job found its page already failed, or its run finished: nothing to fetch, and not a success.

    Ends the job ``cancelled`` (visibly not a success, and not an alert-raising failure): a replay of a
    dead page job of a finished run does not reopen the run.
    """

    code = "sync_page_closed"


class SyncRunPartial(PermanentJobError):
    """The run ended with failed pages: its job ends failed saying so, rather than succeeded."""

    code = "sync_run_partial"
