"""Reads: the exports a user may see."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from .exceptions import ExportNotFound
from .models import Export


def export_list_for(*, user: Any, status: str | None = None) -> QuerySet[Export]:
    """The user's own exports, newest first (staff too: the admin is where operators see everyone's)."""
    exports = Export.objects.filter(owner=user).order_by("-created_at", "-id")
    return exports.filter(status=status) if status else exports


def export_get_for(*, user: Any, export_id: Any) -> Export:
    """The user's export ``export_id``; another user's export is 'not found', so ids are not confirmed."""
    export = None
    # ASCII digits only: str.isdigit() is true of "١" and "１" too, and int() reads them as 1.
    if isinstance(export_id, int) or (
        isinstance(export_id, str) and export_id.isascii() and export_id.isdigit() and len(export_id) < 19
    ):
        export = Export.objects.filter(owner=user, pk=int(export_id)).first()
    if export is None:
        raise ExportNotFound(f"no export with id {export_id!r} that is yours", detail={"export_id": str(export_id)})
    return export
