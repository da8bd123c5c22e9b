"""The synced catalog as an export source (named in settings.EXPORTS_SOURCES; imports nothing from exports)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from django.db.models import QuerySet

from .models import Product


class ProductsExport:
    """Every synced product, optionally only active or inactive ones, or those changed since an instant."""

    name = "products"
    title = "Products (synced catalog)"
    staff_only = False
    columns = (("supplier_id", "text"), ("sku", "text"), ("name", "text"), ("price", "decimal"),
               ("currency", "text"), ("stock", "int"), ("is_active", "bool"), ("supplier_updated_at", "datetime"),
               ("last_changed_at", "datetime"))  # fmt: skip
    filter_schema = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "state": {"type": "string", "enum": ["all", "active", "inactive"], "default": "all",
                      "description": "active: still offered by the supplier; inactive: vanished upstream"},
            "updated_since": {"type": "string", "format": "date-time",
                              "description": "only products changed at or after this instant"},
        },
    }  # fmt: skip

    @staticmethod
    def _queryset(filters: dict[str, Any]) -> QuerySet[Product]:
        products = Product.objects.all()
        if filters.get("state") in ("active", "inactive"):
            products = products.filter(is_active=filters["state"] == "active")
        if filters.get("updated_since"):
            products = products.filter(last_changed_at__gte=filters["updated_since"])
        return products.order_by("id")

    @classmethod
    def queryset(cls, *, user: Any, filters: dict[str, Any]) -> QuerySet[Product, tuple[Any, ...]]:
        """The rows as a QuerySet too: CSV exports on PostgreSQL are then written by COPY."""
        return cls._queryset(filters).values_list(*[name for name, _ in cls.columns])

    @classmethod
    def rows(cls, *, user: Any, filters: dict[str, Any]) -> Iterable[Sequence[Any]]:
        # A server-side cursor on PostgreSQL: memory stays flat however many products there are.
        return cls.queryset(user=user, filters=filters).iterator(chunk_size=5000)

    @classmethod
    def count(cls, *, user: Any, filters: dict[str, Any]) -> int:
        return cls._queryset(filters).count()
