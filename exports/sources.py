"""Export sources: what can be exported, by whom, with which columns and filters.

A source is any object (usually a class) with these attributes, named by dotted path in
``EXPORTS_SOURCES``; the app providing the data defines it without importing ``exports``:

    name: str                      # in the API and the file name: letters, digits, '-' and '_'
    title: str                     # shown on the page
    staff_only: bool               # True: only staff may export it
    columns: Sequence[tuple[str, str]]   # (column name, kind); kind is text|int|decimal|bool|datetime|json
    filter_schema: dict            # a JSON Schema object (jobs.public.schema_validate's subset);
                                   # string properties with "format": "date-time" arrive as aware datetimes
    def rows(*, user, filters) -> Iterable[Sequence]   # streamed, one tuple per row, in column order
    def count(*, user, filters) -> int                 # the total, for progress (an estimate is fine; with a
                                                       # queryset on PostgreSQL, used below 100,000 planned rows)
    def authorize(*, user, filters) -> str             # optional: "" when allowed, else why not
    def queryset(*, user, filters) -> QuerySet         # optional: ``rows`` as a values_list QuerySet, so CSV
                                                       # can be written by PostgreSQL's COPY (much faster)

``rows`` must stream (a server-side cursor: ``QuerySet.iterator(chunk_size=...)``), never build a list.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.module_loading import import_string

from jobs.public import (
    audit_entry_list,
    job_error_message_visible_to,
    job_list_for,
    schema_validate,
    user_sees_all_jobs,
)

from .exceptions import ExportRequestInvalid, ExportSourceBroken, ExportSourceForbidden

COLUMN_KINDS = frozenset({"text", "int", "decimal", "bool", "datetime", "json"})
_SOURCE_NAME = re.compile(r"^[a-z0-9_-]{1,64}$")


class SourceDefinition(Protocol):
    name: str
    title: str
    staff_only: bool
    columns: Sequence[tuple[str, str]]
    filter_schema: dict[str, Any]

    def rows(self, *, user: Any, filters: dict[str, Any]) -> Iterable[Sequence[Any]]: ...

    def count(self, *, user: Any, filters: dict[str, Any]) -> int: ...


@dataclass(frozen=True)
class ExportSource:
    """A loaded, checked source."""

    name: str
    title: str
    staff_only: bool
    columns: tuple[tuple[str, str], ...]
    filter_schema: dict[str, Any]
    definition: SourceDefinition

    @property
    def column_names(self) -> list[str]:
        return [name for name, _ in self.columns]

    def rows(self, *, user: Any, filters: dict[str, Any]) -> Iterable[Sequence[Any]]:
        return self.definition.rows(user=user, filters=self.parse_filters(filters))

    def count(self, *, user: Any, filters: dict[str, Any]) -> int:
        return int(self.definition.count(user=user, filters=self.parse_filters(filters)))

    def queryset(self, *, user: Any, filters: dict[str, Any]) -> QuerySet[Any, tuple[Any, ...]] | None:
        """The rows as a values_list QuerySet (in column order) when the source offers one, else None."""
        make = getattr(self.definition, "queryset", None)
        return make(user=user, filters=self.parse_filters(filters)) if make else None

    def parse_filters(self, filters: dict[str, Any]) -> dict[str, Any]:
        """Checked filters with defaults applied and date-time strings turned into aware datetimes."""
        properties = self.filter_schema.get("properties", {})
        parsed = {name: spec["default"] for name, spec in properties.items() if "default" in spec}
        for name, value in filters.items():
            if properties.get(name, {}).get("format") == "date-time" and isinstance(value, str):
                value = _parse_instant(name, value)
            parsed[name] = value
        return parsed

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "title": self.title, "staff_only": self.staff_only,
                "columns": [{"name": name, "kind": kind} for name, kind in self.columns],
                "filters": self.filter_schema}  # fmt: skip


def _parse_instant(field: str, value: str) -> datetime:
    """``value`` as an aware datetime in UTC, or a 422 naming ``filters.<field>``.

    Refused: what is not ISO 8601, what is shaped like it but is no date (month 13, 30 February,
    year 0, hour 25), and an instant outside years 1 to 9999 once in UTC (``9999-12-31T23:59:59-23:59``),
    which neither Python nor the database can compare. In UTC, too, because PostgreSQL refuses UTC
    offsets beyond 15:59 that ISO 8601 allows.
    """

    def refused(problem: str) -> ExportRequestInvalid:
        return ExportRequestInvalid(f"filters.{field}: {problem}, got {value[:60]!r}",
                                    detail={"errors": [{"field": f"filters.{field}", "message": problem}]})  # fmt: skip

    try:
        instant = parse_datetime(value)
    except ValueError:  # well formed, but not a date or time of the calendar
        raise refused("not a real date and time (check the month, the day and the hour)") from None
    if instant is None:
        raise refused("expected an ISO 8601 date-time such as 2026-03-01T00:00:00Z")
    try:
        aware = instant if timezone.is_aware(instant) else timezone.make_aware(instant, timezone.get_default_timezone())
        return aware.astimezone(UTC)
    except OverflowError:
        raise refused("out of range: the instant must fall within years 1 to 9999 in UTC") from None


def _load(path: str) -> ExportSource:
    try:
        definition = import_string(path)
    except ImportError as exc:
        raise ExportSourceBroken(f"EXPORTS_SOURCES entry {path!r} cannot be imported: {exc}") from exc
    missing = [attr for attr in ("name", "title", "columns", "filter_schema", "rows", "count")
               if not hasattr(definition, attr)]  # fmt: skip
    if missing:
        raise ExportSourceBroken(f"export source {path!r} lacks {', '.join(missing)} (see exports/sources.py)")
    columns = tuple((str(name), str(kind)) for name, kind in definition.columns)
    bad = [kind for _, kind in columns if kind not in COLUMN_KINDS]
    if bad or not _SOURCE_NAME.match(definition.name):
        raise ExportSourceBroken(f"export source {path!r}: name must match {_SOURCE_NAME.pattern} and column kinds "
                                 f"be one of {sorted(COLUMN_KINDS)}; got {definition.name!r}, {bad}")  # fmt: skip
    return ExportSource(name=definition.name, title=definition.title, staff_only=bool(getattr(definition,
                        "staff_only", False)), columns=columns, filter_schema=definition.filter_schema,
                        definition=definition)  # fmt: skip


_loaded: dict[tuple[str, ...], dict[str, ExportSource]] = {}


def sources_all() -> dict[str, ExportSource]:
    """Every configured source by name (loaded once per EXPORTS_SOURCES value)."""
    paths = tuple(settings.EXPORTS_SOURCES)
    if paths not in _loaded:
        _loaded[paths] = {source.name: source for source in map(_load, paths)}
    return _loaded[paths]


def sources_for(*, user: Any) -> list[ExportSource]:
    """The sources ``user`` may export."""
    return [source for source in sources_all().values() if user.is_staff or not source.staff_only]


def source_check(*, name: Any, user: Any, filters: Any) -> ExportSource:
    """The source ``name`` if ``user`` may export it with ``filters``; 422 for bad input, 403 when not allowed."""
    sources = sources_all()
    source = sources.get(name) if isinstance(name, str) else None
    if source is None:
        allowed = [s.name for s in sources_for(user=user)]
        raise ExportRequestInvalid(f"'source' must be one of {allowed}, got {name!r}",
                                   detail={"errors": [{"field": "source", "message": "unknown source"}],
                                           "allowed": allowed})  # fmt: skip
    if source.staff_only and not user.is_staff:
        raise ExportSourceForbidden(f"the {source.name!r} export is for staff only", detail={"source": source.name})
    if not isinstance(filters, dict):
        raise ExportRequestInvalid("'filters' must be a JSON object",
                                   detail={"errors": [{"field": "filters", "message": "expected object"}]})  # fmt: skip
    errors = schema_validate(filters, source.filter_schema, path="filters")
    if errors:
        raise ExportRequestInvalid("; ".join(f"{e.field}: {e.message}" for e in errors),
                                   detail={"errors": [e.as_dict() for e in errors]})  # fmt: skip
    parsed = source.parse_filters(filters)
    authorize = getattr(source.definition, "authorize", None)
    reason = authorize(user=user, filters=parsed) if authorize else ""
    if reason:
        raise ExportSourceForbidden(reason, detail={"source": source.name})
    return source


# ---------------------------------------------------------------------------
# Built-in sources over the platform's own data (through jobs.public)
# ---------------------------------------------------------------------------


class JobHistoryExport:
    """The caller's own jobs; holders of the ``jobs.view_job`` permission may ask for everyone's (``all_users``)."""

    name = "jobs"
    title = "My job history"
    staff_only = False
    columns = (("id", "text"), ("type", "text"), ("queue", "text"), ("status", "text"), ("attempt", "int"),
               ("progress", "int"), ("error_code", "text"), ("error_message", "text"), ("created_at", "datetime"),
               ("started_at", "datetime"), ("finished_at", "datetime"))  # fmt: skip
    filter_schema = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "status": {"type": "string", "enum": ["queued", "running", "retrying", "succeeded", "failed", "dead",
                                                  "cancelled"], "description": "only jobs in this state"},
            "created_since": {"type": "string", "format": "date-time", "description": "only jobs created since"},
            "all_users": {"type": "boolean", "default": False, "description": "every user's jobs (needs the jobs.view_job permission)"},
        },
    }  # fmt: skip

    @staticmethod
    def authorize(*, user: Any, filters: dict[str, Any]) -> str:
        # The API's permission model (jobs.core.permissions), not is_staff: who sees every job may export them.
        if filters.get("all_users") and not user_sees_all_jobs(user):
            return "exporting every user's jobs needs the jobs.view_job permission (given in the admin)"
        return ""

    @staticmethod
    def _queryset(*, user: Any, filters: dict[str, Any]) -> QuerySet[Any]:
        jobs = job_list_for(user=user, status=filters.get("status"),
                            owner_id=None if filters.get("all_users") and user_sees_all_jobs(user) else user.pk)  # fmt: skip
        if filters.get("created_since"):
            jobs = jobs.filter(created_at__gte=filters["created_since"])
        return jobs.order_by("created_at", "id")

    @classmethod
    def queryset(cls, *, user: Any, filters: dict[str, Any]) -> QuerySet[Any, tuple[Any, ...]]:
        # An unexpected exception's text (it can quote data or SQL) only for operators, as the jobs API shows it.
        shown = {"error_message": job_error_message_visible_to(user=user)}
        return cls._queryset(user=user, filters=filters).values_list(
            *[shown.get(name, name) for name, _ in cls.columns]
        )

    @classmethod
    def rows(cls, *, user: Any, filters: dict[str, Any]) -> Iterable[Sequence[Any]]:
        return cls.queryset(user=user, filters=filters).iterator(chunk_size=2000)

    @classmethod
    def count(cls, *, user: Any, filters: dict[str, Any]) -> int:
        return cls._queryset(user=user, filters=filters).count()


class AuditExport:
    """Operator audit entries (who did what to which jobs): staff only."""

    name = "audit"
    title = "Operator audit trail"
    staff_only = True
    columns = (("created_at", "datetime"), ("actor", "text"), ("action", "text"), ("job_count", "int"),
               ("job_ids", "json"), ("detail", "json"))  # fmt: skip
    filter_schema = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "since": {"type": "string", "format": "date-time", "description": "entries from this instant"},
            "until": {"type": "string", "format": "date-time", "description": "entries before this instant"},
            "action": {"type": "string", "maxLength": 50, "description": "only this action (e.g. cancel, retry)"},
        },
    }

    @staticmethod
    def _queryset(*, filters: dict[str, Any]) -> QuerySet[Any]:
        entries = audit_entry_list()
        if filters.get("since"):
            entries = entries.filter(created_at__gte=filters["since"])
        if filters.get("until"):
            entries = entries.filter(created_at__lt=filters["until"])
        if filters.get("action"):
            entries = entries.filter(action=filters["action"])
        return entries

    @classmethod
    def rows(cls, *, user: Any, filters: dict[str, Any]) -> Iterable[Sequence[Any]]:
        fields = ("created_at", "actor_label", "action", "job_count", "job_ids", "detail")
        return cls._queryset(filters=filters).values_list(*fields).iterator(chunk_size=2000)

    @classmethod
    def count(cls, *, user: Any, filters: dict[str, Any]) -> int:
        return cls._queryset(filters=filters).count()
