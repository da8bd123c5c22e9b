"""Admin bases for records nobody edits by hand; domain apps reuse them through ``jobs.public``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from django.contrib import admin
from django.core.paginator import Paginator
from django.db import connections
from django.db.models import Model, QuerySet
from django.http import HttpRequest
from django.utils.functional import cached_property

if TYPE_CHECKING:
    # django-stubs makes these generic (by model, by item); Django's classes take no subscript at run time.
    # Any: the shared bases serve every model, and their subclasses' methods take their own model's rows.
    _ModelAdmin = admin.ModelAdmin[Any]
    _Paginator = Paginator[Model]
    _TabularInline = admin.TabularInline[Any, Any]
else:
    _ModelAdmin, _Paginator, _TabularInline = admin.ModelAdmin, Paginator, admin.TabularInline


class ViewOnlyAdmin(_ModelAdmin):
    """Records nobody edits by hand: jobs change through services (actions), audit entries never."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class EstimatedCountPaginator(_Paginator):
    """The unfiltered job list's size from PostgreSQL's statistics once the table is large.

    An exact ``COUNT(*)`` reads every row: seconds on tens of millions of jobs, on every
    page view. A filtered list (a search for a common word can match a few per cent of a
    million jobs) is counted up to ``FILTERED_COUNT_CAP`` only; past it ``count_capped`` is
    set and the pages say "more than" (bench/job_search.py: the exact count was most of
    such a search's time).
    """

    EXACT_BELOW = 100_000
    FILTERED_COUNT_CAP = 10_000
    count_capped = False

    @cached_property
    def count(self) -> int:
        queryset = cast(QuerySet[Any], self.object_list)  # the admin pages querysets
        query = queryset.query
        connection = connections[queryset.db]
        if connection.vendor == "postgresql" and not query.where:
            with connection.cursor() as cursor:
                cursor.execute("SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass",
                               [queryset.model._meta.db_table])  # fmt: skip
                row: tuple[int] | None = cursor.fetchone()
            if row and row[0] >= self.EXACT_BELOW:
                return row[0]
        if query.where:
            # COUNT(*) over a subquery that stops at the cap; its order is irrelevant to a count.
            counted = queryset.order_by()[: self.FILTERED_COUNT_CAP + 1].count()
            self.count_capped = counted > self.FILTERED_COUNT_CAP
            return counted
        return super().count


class ReadOnlyInline(_TabularInline):
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
