"""Operator admin: jobs and the dead-letter queue (``job``), the records around them (``records``),
and the view-only bases domain apps reuse (``bases``, through ``jobs.public``)."""

from typing import cast

from django.contrib import admin
from django.urls import reverse_lazy

from jobs.admin import job, records, schedules

# "View site" leads somewhere real: the API's interactive documentation (there is no site at /).
admin.site.site_url = cast(str, reverse_lazy("jobs:docs"))
admin.site.site_header = "Jobs platform administration"
admin.site.site_title = "Jobs platform"

__all__ = ["job", "records", "schedules"]
