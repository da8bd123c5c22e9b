"""Operator admin: jobs and the dead-letter queue (``job``), the records around them (``records``),
and the view-only bases domain apps reuse (``bases``, through ``jobs.public``)."""

from . import job, records

__all__ = ["job", "records"]
