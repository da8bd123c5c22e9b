"""Inserting many rows that share most of their columns, in one statement per batch.

Bulk enqueue writes thousands of job rows that differ only in a few columns (id, payload,
idempotency key). Django's ``bulk_create`` prepares every column of every row in Python
and sends them all (on SQLite in batches of a few dozen rows, to stay under its parameter
limit). Here each shared column is sent once, as a parameter, and only the varying columns
row by row:

- PostgreSQL: ``INSERT INTO t (a, b, c) SELECT v.a, %s::b_type, v.c FROM unnest(%s::a_type[], %s::c_type[]) ...``
- SQLite: ``INSERT INTO t (a, b, c) SELECT json_extract(rows.value, '$[0]'), ?, ... FROM json_each(?) ...``

The values are the model's own: the shared ones come from a template instance (so field
defaults and ``get_db_prep_save`` apply as in ``save()``), and rows come back as model
instances built the way the ORM builds loaded rows.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, TypeVar

from django.db import NotSupportedError, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Field, Model

M = TypeVar("M", bound=Model)
# (SQL, a function turning the prepared varying columns of a batch into its row parameters)
Statement = tuple[str, Callable[[list[list[Any]]], list[Any]]]


def bulk_insert_varying(
    *,
    template: M,
    varying: Mapping[str, Sequence[Any]],
    using: str = "default",
    batch_size: int = 5000,
    skip_conflicts: bool = False,
) -> list[M]:
    """Insert one row per index of ``varying``'s columns; every other column is ``template``'s.

    ``varying`` maps field attnames to equal-length sequences of Python values (a
    ``JSONField``'s values are JSON-compatible objects). Rows are written in input order, so
    callers can choose the order in which unique keys are locked. ``skip_conflicts`` leaves out rows
    that collide with a unique constraint (``ON CONFLICT DO NOTHING``). Returns the inserted
    rows as saved instances (``_state.adding`` is False), in input order, without the skipped
    ones. Auto fields are not supported: the primary key must be among ``varying`` or
    have a default the template fills.
    """
    model = type(template)
    fields = model._meta.concrete_fields
    attnames = [field.attname for field in fields]
    unknown = set(varying) - set(attnames)
    if unknown:
        raise ValueError(f"{model.__name__} has no columns {sorted(unknown)}; expected some of {attnames}")
    lengths = {len(values) for values in varying.values()}
    if len(lengths) > 1:
        raise ValueError(f"varying columns have different lengths {sorted(lengths)}; expected one length")
    count = lengths.pop() if lengths else 0
    if count == 0:
        return []
    if model._meta.pk.attname not in varying:
        raise ValueError("the primary key must vary: each row needs its own")
    connection = connections[using]
    build_statement = _STATEMENT_BUILDERS.get(connection.vendor)
    if build_statement is None:
        raise NotSupportedError(
            f"bulk insert supports {' and '.join(sorted(_STATEMENT_BUILDERS))}, not {connection.vendor}; "
            "the platform runs on PostgreSQL (SQLite for development)"
        )

    # Shared columns: prepared once, exactly as save() would prepare them.
    shared_params = _prepared_values(template, [field for field in fields if field.attname not in varying], connection)
    varying_fields = [field for field in fields if field.attname in varying]
    sql, rows_param = build_statement(model, connection, varying_fields, skip_conflicts)
    prepared_columns = [_prepare_column(field, varying[field.attname], connection) for field in varying_fields]
    inserted: set[Any] = set()
    with connection.cursor() as cursor:
        for start in range(0, count, batch_size):
            batch = [column[start : start + batch_size] for column in prepared_columns]
            cursor.execute(sql, [*shared_params, *rows_param(batch)])
            inserted.update(row[0] for row in cursor.fetchall())
    return _instances(template, varying, count, using=using, keep=inserted)


def _prepared_values(instance: Model, fields: Sequence[Field[Any, Any]], connection: BaseDatabaseWrapper) -> list[Any]:
    """``fields``' values of ``instance`` as save() prepares them for an INSERT (auto_now fields are set here)."""
    for field in fields:
        field.pre_save(instance, add=True)
    return [field.get_db_prep_save(getattr(instance, field.attname), connection=connection) for field in fields]


def insert_one_statement(instance: Model, *, condition: str, using: str = "default") -> tuple[str, list[Any]]:
    """PostgreSQL: an ``INSERT`` of ``instance`` that writes it only while the SQL ``condition`` holds and
    skips a unique-key collision, ``RETURNING`` its primary key; the statement and its parameters (the
    condition's ``%s`` come last), for callers that send it with other statements in one round trip.

    The values are prepared as ``save()`` prepares them. After a returned row, the caller marks the
    instance saved (``instance._state.adding = False``).
    """
    connection = connections[using]
    if connection.vendor != "postgresql":
        raise NotSupportedError(f"insert_one_statement is written for PostgreSQL, not {connection.vendor}")
    model = type(instance)
    head = _insert_one_heads.get((model, using))
    if head is None:
        # Written once per model: asking every field for its column type cost more than the rest of the call.
        quote = connection.ops.quote_name
        fields = model._meta.concrete_fields
        head = _insert_one_heads[(model, using)] = (
            f"INSERT INTO {quote(model._meta.db_table)} ({', '.join(quote(field.column) for field in fields)}) "
            f"SELECT {', '.join(f'%s::{field.db_type(connection)}' for field in fields)} WHERE "
        )
    sql = f"{head}{condition} ON CONFLICT DO NOTHING RETURNING {connection.ops.quote_name(model._meta.pk.column)}"
    return sql, _prepared_values(instance, model._meta.concrete_fields, connection)


_insert_one_heads: dict[tuple[type[Model], str], str] = {}


def _postgresql_statement(
    model: type[Model], connection: BaseDatabaseWrapper, varying_fields: list[Field[Any, Any]], skip_conflicts: bool
) -> Statement:
    """Shared columns as typed parameters, varying ones as one typed array each, unnested together."""
    quote = connection.ops.quote_name
    varying_names = {field.attname for field in varying_fields}
    fields = model._meta.concrete_fields
    select_list = ", ".join(
        f"v.{quote(field.column)}" if field.attname in varying_names else f"%s::{field.db_type(connection)}"
        for field in fields
    )
    unnest_args = ", ".join(f"%s::{field.db_type(connection)}[]" for field in varying_fields)
    alias_list = ", ".join(quote(field.column) for field in varying_fields)
    # ORDER BY the array position: rows are written, and unique-index entries locked, in input order.
    sql = (
        f"INSERT INTO {quote(model._meta.db_table)} ({', '.join(quote(field.column) for field in fields)}) "
        f"SELECT {select_list} FROM unnest({unnest_args}) WITH ORDINALITY AS v({alias_list}, row_position) "
        "ORDER BY v.row_position"
        + (" ON CONFLICT DO NOTHING" if skip_conflicts else "")
        + f" RETURNING {quote(model._meta.pk.column)}"
    )
    return sql, lambda columns: columns


def _sqlite_statement(
    model: type[Model], connection: BaseDatabaseWrapper, varying_fields: list[Field[Any, Any]], skip_conflicts: bool
) -> Statement:
    """Shared columns as parameters, varying ones as one JSON array of rows read back with json_each.

    SQLite allows only so many parameters per statement (Django assumes 999), which made the
    ORM split 5,000 jobs into about 150 INSERTs; one JSON parameter has no such limit.
    """
    quote = connection.ops.quote_name
    position = {field.attname: index for index, field in enumerate(varying_fields)}
    fields = model._meta.concrete_fields
    select_list = ", ".join(
        f"json_extract(rows.value, '$[{position[field.attname]}]')" if field.attname in position else "%s"
        for field in fields
    )
    sql = (
        f"INSERT INTO {quote(model._meta.db_table)} ({', '.join(quote(field.column) for field in fields)}) "
        # WHERE true: SQLite's grammar needs it before an upsert clause on INSERT ... SELECT.
        f"SELECT {select_list} FROM json_each(%s) AS rows WHERE true ORDER BY rows.key"
        + (" ON CONFLICT DO NOTHING" if skip_conflicts else "")
        + f" RETURNING {quote(model._meta.pk.column)}"
    )
    return sql, lambda columns: [json.dumps(list(zip(*columns, strict=True)), default=str)]


_STATEMENT_BUILDERS: dict[str, Callable[..., Statement]] = {
    "postgresql": _postgresql_statement,
    "sqlite": _sqlite_statement,
}


def _prepare_column(field: Field[Any, Any], values: Sequence[Any], connection: BaseDatabaseWrapper) -> list[Any]:
    if field.get_internal_type() == "JSONField":
        # Sent as json text (cast to jsonb on PostgreSQL): an array of adapter objects cannot be dumped.
        encoder = getattr(field, "encoder", None)
        return [None if value is None else json.dumps(value, cls=encoder) for value in values]
    return [field.get_db_prep_save(value, connection=connection) for value in values]


def _instances(
    template: M, varying: Mapping[str, Sequence[Any]], count: int, *, using: str, keep: Collection[Any]
) -> list[M]:
    """Saved instances built from the template's values and each row's varying ones."""
    model = type(template)
    fields = model._meta.concrete_fields
    base = [getattr(template, field.attname) for field in fields]
    positions = [(index, varying[field.attname]) for index, field in enumerate(fields) if field.attname in varying]
    pk_values = varying[model._meta.pk.attname]
    rows = []
    for row in range(count):
        if pk_values[row] not in keep:
            continue
        values = list(base)
        for index, column in positions:
            values[index] = column[row]
        # from_db is how the ORM builds a loaded row: positional and without running defaults.
        rows.append(model.from_db(using, None, values))  # type: ignore[arg-type]  # None: all fields, in order
    return rows
